"""`reorder-loops{einsum=QK order=P1,M1,E}`: change one Einsum's loop order.

The order must be a permutation of the Einsum's loop ranks (its ranks after the mapping's
partitioning); the verifier then checks the rest (iterative ranks temporal, running values not
read ahead of their production). An Einsum without a mapping gets the default mapping with this
order. Loop order decides what stays resident across which loops, so the cost model sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException, VerifyException

from einsum_opt.dialects.einsum import EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, check_mapping, loop_ranks
from einsum_opt.lowering.einsum_to_loopnest import mapping_of


def reorder_loops(op: EinsumOp, order: list[str], sizes: dict[str, int]) -> None:
    """Give `op` the loop order `order` (outermost first); raises VerifyException if invalid."""
    mapping = mapping_of(op)
    expected = loop_ranks(op, mapping)
    if sorted(order) != sorted(expected):
        raise VerifyException(
            f"einsum {op.tensor_name}: loop order [{', '.join(order)}] is not a permutation of "
            f"its loop ranks [{', '.join(expected)}]"
        )
    new = mapping.with_loops(order)
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
                        raise PassFailedException(f"reorder-loops: {e}") from None
        if not found:
            raise PassFailedException(f"reorder-loops: no einsum named {self.einsum}")
