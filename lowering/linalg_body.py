"""The body of an exported `linalg.generic`: an Einsum's map region, then its reduce operator.

The map region's scalar `arith`/`math` ops are cloned; `einsum.size` becomes the rank's size
as a constant and `einsum.yield v` becomes `linalg.yield v`, or `linalg.yield op(acc, v)` when
the generic reduces with `op` into its output `acc`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from xdsl.dialects import arith
from xdsl.dialects.builtin import AnyFloat
from xdsl.dialects.linalg.ops import YieldOp as LinalgYieldOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint

from einsum_opt.dialects.einsum import SizeOp
from einsum_opt.dialects.einsum import YieldOp as EinsumYieldOp
from einsum_opt.dialects.einsum_map import constant_attr
from einsum_opt.lowering.linalg_ir import IRBuilder
from einsum_opt.lowering.linalg_views import ViewError

_FLOAT_COMBINERS: dict[str, Callable[[SSAValue, SSAValue], Operation]] = {
    "add": arith.AddfOp,
    "mul": arith.MulfOp,
    "max": arith.MaximumfOp,
    "min": arith.MinimumfOp,
}
_INT_COMBINERS: dict[str, Callable[[SSAValue, SSAValue], Operation]] = {
    "add": arith.AddiOp,
    "mul": arith.MuliOp,
    "max": arith.MaxSIOp,
    "min": arith.MinSIOp,
}


def combiner(operator: str, element: Attribute) -> Callable[[SSAValue, SSAValue], Operation]:
    """The scalar op applying a reduce operator to two values of `element` type."""
    table = _FLOAT_COMBINERS if isinstance(element, AnyFloat) else _INT_COMBINERS
    return table[operator]


def map_body(
    map_region: Region,
    arg_types: Sequence[Attribute],
    access_args: Sequence[int],
    out_type: Attribute,
    reduce: str | None,
    sizes: Mapping[str, int],
    where: str,
) -> Region:
    """A generic body computing the map region: block arguments of `arg_types` (the inputs,
    then the output), access i reading argument `access_args[i]`; combined into the output
    with `reduce` when given."""
    block = Block(arg_types=[*arg_types, out_type])
    b = IRBuilder(InsertPoint.at_end(block))
    values: dict[SSAValue, SSAValue] = {}
    source = map_region.block
    for arg, position in zip(source.args, access_args, strict=True):
        target = block.args[position]
        if arg.type != target.type:
            raise ViewError(
                f"{where}: its map region reads a {arg.type} where the tensor holds {target.type}"
            )
        values[arg] = target
    for op in source.ops:
        if isinstance(op, SizeOp):
            values[op.result] = b.value(
                arith.ConstantOp(constant_attr(sizes[op.rank.data], op.result.type))
            )
        elif isinstance(op, EinsumYieldOp):
            result = values[op.value]
            if reduce is not None:
                result = b.value(combiner(reduce, out_type)(block.args[-1], result))
            b.add(LinalgYieldOp(result))
        else:
            clone = op.clone(value_mapper=values)
            b.add(clone)
            values.update(zip(op.results, clone.results, strict=True))
    return Region(block)


def combine_body(element: Attribute, operator: str) -> Region:
    """A generic body reducing its input into its output with `operator`."""
    block = Block(arg_types=[element, element])
    b = IRBuilder(InsertPoint.at_end(block))
    b.add(LinalgYieldOp(b.value(combiner(operator, element)(block.args[1], block.args[0]))))
    return Region(block)
