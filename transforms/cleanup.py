"""`cleanup`: remove Einsums whose values reach no output, and forward plain copies.

A plain copy `E[o] = X[o]` (same ranks in the same order, read at its own output variables)
is replaced by X everywhere it is read; copies that re-index (transpose, block, read a final
value) change layout and are kept. Returned tensors are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
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
    """Forward copies and remove dead Einsums; returns the names removed."""
    return forward_copies(cascade) + remove_dead_einsums(cascade)


@dataclass(frozen=True)
class CleanupPass(ModulePass):
    """Remove dead Einsums and forward plain copies (`cleanup`)."""

    name = "cleanup"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            cleanup(cascade)
