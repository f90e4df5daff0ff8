"""Map computations: scalar expressions <-> regions of `arith`/`math` ops.

An Einsum's map computation is a single-block region: one block argument per tensor access
(the scalar value at the current point), a tree of scalar ops, and an `einsum.yield`. The
text form prints it as an expression whenever building the expression back gives the very
same region, so printing and parsing round-trip exactly; anything else prints as a region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from xdsl.dialects import arith, math
from xdsl.dialects.builtin import (
    AnyFloat,
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue

from einsum_opt.dialects.einsum_syntax import Access, Call, Const, Expr, Size

FLOAT_OPS: dict[str, type[Operation]] = {
    "add": arith.AddfOp,
    "sub": arith.SubfOp,
    "mul": arith.MulfOp,
    "div": arith.DivfOp,
    "max": arith.MaximumfOp,
    "min": arith.MinimumfOp,
    "neg": arith.NegfOp,
    "exp": math.ExpOp,
    "log": math.LogOp,
    "sqrt": math.SqrtOp,
    "abs": math.AbsFOp,
}
"""Expression operator -> op on floating-point scalars."""

INT_OPS: dict[str, type[Operation]] = {
    "add": arith.AddiOp,
    "sub": arith.SubiOp,
    "mul": arith.MuliOp,
    "div": arith.DivSIOp,
    "max": arith.MaxSIOp,
    "min": arith.MinSIOp,
    "abs": math.AbsIOp,
}
"""Expression operator -> op on signless integer scalars (negation is `0 - x`)."""

_FLOAT_WIDTH: dict[type[Attribute], int] = {
    Float16Type: 16,
    BFloat16Type: 16,
    Float32Type: 32,
    Float64Type: 64,
}


class MapBuildError(Exception):
    """An expression cannot be built for the given element types."""


def is_float(t: Attribute) -> bool:
    """Whether `t` is a floating-point scalar type."""
    return isinstance(t, AnyFloat)


def widens_to(source: Attribute, target: Attribute) -> bool:
    """Whether a value of float type `source` is implicitly extended to float type `target`."""
    ws, wt = _FLOAT_WIDTH.get(type(source)), _FLOAT_WIDTH.get(type(target))
    return ws is not None and wt is not None and ws < wt


def constant_attr(value: float | int, elt: Attribute) -> FloatAttr | IntegerAttr:
    """A constant of element type `elt`."""
    if isinstance(elt, AnyFloat):
        return FloatAttr(float(value), cast(Any, elt))
    if isinstance(elt, IntegerType):
        if isinstance(value, float) and not value.is_integer():
            raise MapBuildError(f"constant {value} is not an integer of type {elt}")
        return IntegerAttr(int(value), elt)
    raise MapBuildError(f"unsupported element type {elt}")


def build_map_region(expr: Expr, arg_types: Sequence[Attribute], result_type: Attribute) -> Region:
    """Build the map region computing `expr` over block arguments of `arg_types`."""
    from einsum_opt.dialects.einsum import SizeOp, YieldOp

    block = Block(arg_types=arg_types)
    ops: list[Operation] = []
    converted: dict[int, SSAValue] = {}
    table = FLOAT_OPS if is_float(result_type) else INT_OPS

    def arg(i: int) -> SSAValue:
        if i not in converted:
            value: SSAValue = block.args[i]
            if value.type != result_type:
                if not (is_float(value.type) and widens_to(value.type, result_type)):
                    raise MapBuildError(
                        f"access {i} has element type {value.type}, which does not convert "
                        f"implicitly to {result_type}"
                    )
                ext = arith.ExtFOp(value, cast(Any, result_type))
                ops.append(ext)
                value = ext.result
            converted[i] = value
        return converted[i]

    def emit(e: Expr) -> SSAValue:
        if isinstance(e, Access):
            return arg(e.index)
        if isinstance(e, Const):
            op: Operation = arith.ConstantOp(constant_attr(e.value, result_type))
            ops.append(op)
            return op.results[0]
        if isinstance(e, Size):
            op = SizeOp(e.rank, result_type)
            ops.append(op)
            return op.results[0]
        args = [emit(a) for a in e.args]
        if e.fn == "neg" and table is INT_OPS:
            zero = arith.ConstantOp(constant_attr(0, result_type))
            ops.append(zero)
            op = arith.SubiOp(zero.result, args[0])
        elif e.fn not in table:
            raise MapBuildError(f"{e.fn} is not defined on {result_type}")
        else:
            op = table[e.fn](*args)
        ops.append(op)
        return op.results[0]

    result = emit(expr)
    block.add_ops([*ops, YieldOp(result)])
    return Region(block)


_REVERSE: dict[type[Operation], str] = {
    **{cls: name for name, cls in FLOAT_OPS.items()},
    **{cls: name for name, cls in INT_OPS.items()},
}


def extract_expr(region: Region) -> Expr | None:
    """The expression whose `build_map_region` is exactly `region`, or None if there is none."""
    from einsum_opt.dialects.einsum import SizeOp, YieldOp

    if len(region.blocks) != 1:
        return None
    block = region.block
    values: dict[SSAValue, Expr] = {a: Access(i) for i, a in enumerate(block.args)}
    result: Expr | None = None
    for op in block.ops:
        if isinstance(op, YieldOp):
            if len(op.operands) != 1 or op.operands[0] not in values:
                return None
            result = values[op.operands[0]]
        elif isinstance(op, SizeOp):
            values[op.result] = Size(op.rank.data)
        elif isinstance(op, arith.ExtFOp) and op.input in block.args:
            values[op.result] = values[op.input]
        elif isinstance(op, arith.ConstantOp):
            value = op.value
            if isinstance(value, FloatAttr | IntegerAttr):
                values[op.result] = Const(value.value.data)
            else:
                return None
        elif type(op) in _REVERSE and all(o in values for o in op.operands):
            values[op.results[0]] = Call(_REVERSE[type(op)], tuple(values[o] for o in op.operands))
        else:
            return None
    if result is None:
        return None
    result = _fold_integer_negation(result)
    rebuilt = _try_build(result, [a.type for a in block.args], _yield_type(region))
    if rebuilt is None or not rebuilt.is_structurally_equivalent(region):
        return None
    return result


def _yield_type(region: Region) -> Attribute:
    last = region.block.last_op
    assert last is not None and last.operands
    return last.operands[0].type


def _fold_integer_negation(e: Expr) -> Expr:
    """`0 - x` on integers is how `-x` is built; show it as `-x` again."""
    if isinstance(e, Call):
        args = tuple(_fold_integer_negation(a) for a in e.args)
        if (
            e.fn == "sub"
            and isinstance(args[0], Const)
            and args[0].value == 0
            and isinstance(args[0].value, int)
        ):
            return Call("neg", (args[1],))
        return Call(e.fn, args)
    return e


def _try_build(expr: Expr, arg_types: Sequence[Attribute], result_type: Attribute) -> Region | None:
    try:
        return build_map_region(expr, arg_types, result_type)
    except MapBuildError:
        return None


def map_expression_printer(region: Region, access_text: Callable[[int], str]) -> str | None:
    """The expression text of a map region, or None when it must print as a region."""
    from einsum_opt.dialects.einsum_syntax import accesses_in_order, format_expr, format_number

    expr = extract_expr(region)
    if expr is None or accesses_in_order(expr) != list(range(len(region.block.args))):
        return None
    elt = _yield_type(region)

    def number(value: float | int) -> str:
        return format_number(value, lambda v: shortest_float(v, elt))

    return format_expr(expr, access_text, number)


def shortest_float(value: float, elt: Attribute) -> str:
    """The shortest decimal that reads back as the same constant of float type `elt`."""
    for digits in range(1, 18):
        text = f"{value:.{digits}g}"
        try:
            if constant_attr(float(text), elt) == constant_attr(value, elt):
                return text
        except OverflowError:  # rounded up past the largest finite value of the type
            continue
    return repr(value)
