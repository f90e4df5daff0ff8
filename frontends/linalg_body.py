"""The body of a `linalg.generic` (or of a named structured op) as Extended Einsum parts: a
scalar expression per yielded value, and the reduce operator that combines it with the output.

Leaves of the expressions are the body's block arguments by position (`Access(i)`: the i-th
operand, inputs first, then outputs), constants and the ops of `einsum_map.FLOAT_OPS` /
`INT_OPS`. `arith.maxnumf` / `arith.minnumf` read as `max` / `min` (they differ from
`maximumf` / `minimumf` only on NaN), `arith.extf` as the implicit widening the einsum
dialect applies to narrower accesses.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.ir import Block, Operation, SSAValue

from einsum_opt.dialects.einsum_map import FLOAT_OPS, INT_OPS
from einsum_opt.dialects.einsum_syntax import Access, Call, Const, Expr

_OPERATORS: dict[type[Operation], str] = {
    **{cls: name for name, cls in FLOAT_OPS.items()},
    **{cls: name for name, cls in INT_OPS.items()},
    arith.MaxnumfOp: "max",
    arith.MinnumfOp: "min",
}

REDUCE_OPERATORS = ("add", "mul", "max", "min")
"""Operators that may combine a value with the output of a reduction."""


class LinalgImportError(Exception):
    """Upstream MLIR that has no Extended Einsum form (the message names the op)."""


def yielded_expressions(block: Block, where: str) -> list[Expr]:
    """The expression of each value the body yields, over its block arguments."""
    values: dict[SSAValue, Expr] = {arg: Access(i) for i, arg in enumerate(block.args)}
    last = block.last_op
    if last is None:
        raise LinalgImportError(f"{where}: empty body")
    for op in block.ops:
        if op is not last:
            values.update(_expression(op, values, where))
    return [values[v] if v in values else _captured(v, last, where) for v in last.operands]


def _expression(op: Operation, values: dict[SSAValue, Expr], where: str) -> dict[SSAValue, Expr]:
    if isinstance(op, arith.ConstantOp):
        value = op.value
        if isinstance(value, FloatAttr | IntegerAttr):
            return {op.result: Const(value.value.data)}
        raise LinalgImportError(f"{where}: constant {value} is not a scalar")
    for v in op.operands:
        if v not in values:
            values[v] = _captured(v, op, where)
    args = tuple(values[v] for v in op.operands)
    if isinstance(op, arith.ExtFOp):
        return {op.results[0]: args[0]}
    name = _OPERATORS.get(type(op))
    if name is None:
        raise LinalgImportError(
            f"{where}: {op.name} has no Extended Einsum form (known: arith and math ops on "
            "scalars: add, sub, mul, div, max, min, neg, exp, log, sqrt, abs)"
        )
    return {op.results[0]: Call(name, args)}


def _captured(value: SSAValue, user: Operation, where: str) -> Expr:
    """A value the body takes from outside: a scalar constant."""
    owner = value.owner
    if isinstance(owner, arith.ConstantOp) and isinstance(owner.value, FloatAttr | IntegerAttr):
        return Const(owner.value.value.data)
    raise LinalgImportError(
        f"{where}: {user.name} reads a value defined outside the body that is not a constant"
    )


@dataclass(frozen=True)
class Reduction:
    """`output = operator(output, value)`: the value reduced into an output."""

    operator: str
    value: Expr


def as_reduction(expr: Expr, output: int) -> Reduction | None:
    """`expr` as `op(Access(output), value)` (either order), or None."""
    if not isinstance(expr, Call) or expr.fn not in REDUCE_OPERATORS or len(expr.args) != 2:
        return None
    left, right = expr.args
    if left == Access(output) and Access(output) not in leaves(right):
        return Reduction(expr.fn, right)
    if right == Access(output) and Access(output) not in leaves(left):
        return Reduction(expr.fn, left)
    return None


def leaves(expr: Expr) -> list[Access]:
    """The accesses of an expression, in order of first appearance."""
    found: list[Access] = []

    def go(e: Expr) -> None:
        if isinstance(e, Access):
            if e not in found:
                found.append(e)
        elif isinstance(e, Call):
            for a in e.args:
                go(a)

    go(expr)
    return found


def renumbered(expr: Expr, order: list[Access]) -> Expr:
    """`expr` with `order[k]` replaced by `Access(k)`."""
    position = {a: k for k, a in enumerate(order)}

    def go(e: Expr) -> Expr:
        if isinstance(e, Access):
            return Access(position[e])
        if isinstance(e, Call):
            return Call(e.fn, tuple(go(a) for a in e.args))
        return e

    return go(expr)
