"""`lower-to-loopnest`: every Einsum becomes the loop nest its mapping describes.

Partitioned ranks become one loop per level (P with shapes [4096, 256] -> p2, p1, p0) and every
index is rewritten over the loop variables (`p` -> `4096*p2+256*p1+p0`); loops follow the
mapping's order, spatial ones carry their array axis and every loop the storage level the
mapping's `at` gives it (none without `at`: lower-to-dataflow places them); storage levels (or
the exact levels keeping a tensor, `[DRAM, PE]`) come from the mapping.
An Einsum without a mapping gets the default one: unit `default`, its ranks in order (output
ranks, then reduced ranks), all temporal, cascade inputs and outputs in DRAM and everything
else in the global buffer (GLB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import (
    MAPPING_ATTR,
    MappingAttr,
    einsum_ranks,
    loop_extents,
    ordered_loops,
    partition_names,
)
from einsum_opt.dialects.einsum_syntax import IndexExpr, IndexTerm, rank_of, variable_of
from einsum_opt.dialects.loopnest import LoopAttr, NestOp, keep_entry

DEFAULT_UNIT = "default"
"""The unit of an Einsum that has no mapping."""


def mapping_of(op: EinsumOp) -> MappingAttr:
    """The Einsum's mapping, or the default one."""
    mapping = op.attributes.get(MAPPING_ATTR)
    return mapping if isinstance(mapping, MappingAttr) else MappingAttr.make(DEFAULT_UNIT)


def default_level(cascade: CascadeOp, op: EinsumOp, tensor: str) -> str:
    """DRAM for the cascade's inputs and outputs, the global buffer for the rest."""
    inputs = {n for n, _ in cascade.inputs()}
    if tensor in inputs or (tensor == op.tensor_name and cascade.returns(op.result)):
        return "DRAM"
    return "GLB"


def _partition_substitution(
    op: EinsumOp, mapping: MappingAttr, extents: Mapping[str, int]
) -> dict[str, IndexExpr]:
    """Rank variable -> its value over the loop variables of its partition levels."""
    subst: dict[str, IndexExpr] = {}
    for rank in einsum_ranks(op):
        shapes = mapping.partitions.get(rank)
        if not shapes:
            continue
        terms: list[IndexTerm] = []
        stride = 1
        for level in reversed(partition_names(rank, len(shapes))):
            terms.append(IndexTerm(stride, variable_of(level)))
            stride *= extents[level]
        subst[variable_of(rank)] = IndexExpr.normalised(list(reversed(terms)), 0)
    return subst


def lower_einsum(cascade: CascadeOp, op: EinsumOp) -> NestOp:
    """The loop nest of one Einsum (not yet inserted)."""
    mapping = mapping_of(op)
    extents = loop_extents(op, mapping, cascade.rank_sizes())
    bounds = mapping.boundaries
    loops: list[LoopAttr] = []
    level = ""
    for r in ordered_loops(op, mapping):
        level = bounds.get(r, level)
        loops.append(LoopAttr.make(variable_of(r), extents[r], mapping.spatial.get(r), level))
    subst = _partition_substitution(op, mapping, extents)
    output = [ix.substituted(subst) for ix in op.output_indices]
    accesses = [(v, [ix.substituted(subst) for ix in idx]) for v, idx in op.accesses()]
    first_use = [v for _, idx in accesses for ix in idx for v in ix.variables]
    reduce = []
    for var, operator in op.reduce.data:
        shapes = mapping.partitions.get(rank_of(var))
        names = (
            [variable_of(n) for n in partition_names(rank_of(var), len(shapes))]
            if shapes
            else [var]
        )
        reduce += [(n, operator) for n in names]
    reduce.sort(key=lambda item: first_use.index(item[0]))
    stored = mapping.levels
    kept = mapping.keeps
    tensors = [op.access_name(v) for v, _ in accesses] + [op.tensor_name]
    levels = [
        keep_entry(kept[t])
        if t in kept
        else stored.get(t) or default_level(cascade, op, t)
        for t in tensors
    ]
    return NestOp.from_einsum(
        op,
        mapping.unit_name,
        loops,
        levels,
        output,
        accesses,
        reduce,
        op.body.clone(),
        mapping.kernel_name,
    )


def lower_to_loopnest(cascade: CascadeOp) -> None:
    """Replace every Einsum of `cascade` by its loop nest."""
    for op in cascade.einsums():
        nest = lower_einsum(cascade, op)
        block = op.parent_block()
        assert block is not None
        block.insert_op_before(nest, op)
        op.result.replace_all_uses_with(nest.result)
        op.detach()
        op.erase()


@dataclass(frozen=True)
class LowerToLoopnestPass(ModulePass):
    """Lower every mapped (or default-mapped) Einsum to a `loopnest.nest`."""

    name = "lower-to-loopnest"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            lower_to_loopnest(cascade)
