"""`reorder-loops{einsum=QK order=P1,M1,E}`: change one Einsum's loop order.

The order must be a permutation of the Einsum's loop ranks (its ranks after the mapping's
partitioning); the verifier then checks the rest (iterative ranks temporal, running values not
read ahead of their production). An Einsum without a mapping gets the default mapping with this
order. Every loop keeps the storage level its mapping's `at` gave it, unless the new order
would put a loop outside one of a shallower level: then the levels are left to
lower-to-dataflow. Loop order decides what stays resident across which loops, so the cost
model sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException, VerifyException

from einsum_opt.dialects.einsum import EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import (
    MAPPING_ATTR,
    MappingAttr,
    check_mapping,
    loop_ranks,
    ordered_loops,
)
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.lowering.einsum_to_loopnest import mapping_of


def _levels_kept(mapping: MappingAttr, old: list[str], order: list[str]) -> dict[str, str]:
    """The `at` boundaries of `order` when every loop keeps its storage level, or {} (levels
    left to the lowering) when the new order would put a loop outside one of a shallower
    level, or when the mapping placed no loop."""
    bounds = mapping.boundaries
    if not bounds:
        return {}
    level_of: dict[str, str] = {}
    current = ""
    for rank in old:
        current = bounds.get(rank, current)
        level_of[rank] = current
    depth = {lv: i for i, lv in enumerate(dict.fromkeys(level_of[r] for r in old))}
    levels = [level_of[r] for r in order]
    if any(depth[a] > depth[b] for a, b in zip(levels, levels[1:], strict=False)):
        return {}
    out: dict[str, str] = {}
    previous = ""
    for rank, level in zip(order, levels, strict=True):
        if level != previous:
            out[rank] = level
            previous = level
    return out


def reorder_loops(op: EinsumOp, order: list[str], sizes: dict[str, int]) -> None:
    """Give `op` the loop order `order` (outermost first); raises VerifyException if invalid.
    Each loop keeps its storage level when the order allows it; otherwise the mapping's
    levels are dropped and lower-to-dataflow places the loops."""
    mapping = mapping_of(op)
    expected = loop_ranks(op, mapping)
    if sorted(order) != sorted(expected):
        raise VerifyException(
            f"einsum {op.tensor_name}: loop order [{', '.join(order)}] is not a permutation of "
            f"its loop ranks [{', '.join(expected)}]"
        )
    at = _levels_kept(mapping, ordered_loops(op, mapping), order)
    new = MappingAttr.make(
        mapping.unit_name,
        order,
        mapping.partitions,
        mapping.spatial,
        mapping.levels,
        mapping.kernel_name,
        at,
        mapping.keeps,
    )
    check_mapping(op, new, sizes)
    op.attributes[MAPPING_ATTR] = new


@dataclass(frozen=True)
class ReorderLoopsPass(ModulePass):
    """Set one Einsum's loop order: `reorder-loops{einsum=QK order=P1,M1,E}`."""

    name = "reorder-loops"
    einsum: str
    order: tuple[str, ...] | str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        order = [self.order] if isinstance(self.order, str) else list(self.order)
        found = False
        for cascade in cascades_in(op):
            for einsum in cascade.einsums():
                if einsum.tensor_name == self.einsum:
                    found = True
                    try:
                        reorder_loops(einsum, order, cascade.rank_sizes())
                    except VerifyException as e:
                        raise OpPassFailedException(einsum, f"reorder-loops: {e}") from None
        if not found:
            raise PassFailedException(f"reorder-loops: no einsum named {self.einsum}")
