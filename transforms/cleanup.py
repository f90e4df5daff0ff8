"""`cleanup`: canonicalise a cascade and remove what it does not need.

- Scalar factors move out of sum-reductions (`hoist_factors`): `Q*K / sqrt(E)` summed over e
  becomes the sum of `Q*K`, divided once per result.
- A plain copy `E[o] = X[o]` (same ranks in the same order, read at its own output variables)
  is replaced by X everywhere it is read; copies that re-index (transpose, block, read a final
  value) change layout and are kept. Returned tensors are kept as they are.
- Einsums computing the same value from the same reads are merged (`cse`), so a fused cascade
  computes each exponential once.
- Einsums whose values reach no output are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.transforms.cse import eliminate_common_einsums
from einsum_opt.transforms.hoist_factors import hoist_scalar_factors
from einsum_opt.transforms.rewriting import (
    Read,
    erase_einsums,
    invalidate_analyses,
    is_returned,
    remove_dead_einsums,
    resolved,
)


def forward_copies(cascade: CascadeOp) -> list[str]:
    """Replace plain whole-tensor copies by their source; returns the removed names."""
    removed: list[str] = []
    for op in cascade.einsums():
        body = resolved(op)
        if not isinstance(body, Read) or body.value is None or is_returned(cascade, op.result):
            continue
        if body.value.type != op.result.type or body.indices != op.output_indices:
            continue
        op.result.replace_all_uses_with(body.value)
        erase_einsums([op])
        removed.append(op.tensor_name)
    if removed:
        invalidate_analyses(cascade)
    return removed


def cleanup(cascade: CascadeOp) -> list[str]:
    """Hoist scalar factors, forward copies, merge common Einsums and remove dead ones;
    returns the names of the Einsums changed or removed."""
    changed = hoist_scalar_factors(cascade)
    changed += forward_copies(cascade)
    changed += eliminate_common_einsums(cascade)
    return changed + remove_dead_einsums(cascade)


@dataclass(frozen=True)
class CleanupPass(ModulePass):
    """Hoist scalar factors out of sums, forward plain copies, merge Einsums that compute the
    same value and remove dead ones (`cleanup`)."""

    name = "cleanup"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            cleanup(cascade)
