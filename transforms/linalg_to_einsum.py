"""`linalg-to-einsum`: every upstream `func.func` on tensors (linalg.generic, linalg.fill, the
named structured ops, linalg.softmax) becomes a cascade of Extended Einsums
(`frontends.linalg`), which the other passes can count, fuse, map and cost."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException


@dataclass(frozen=True)
class LinalgToEinsumPass(ModulePass):
    """Import upstream linalg functions as einsum cascades (same names; inputs named by the
    function's argument names)."""

    name = "linalg-to-einsum"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from einsum_opt.frontends.linalg import LinalgImportError, import_linalg

        try:
            import_linalg(op)
        except LinalgImportError as e:
            raise PassFailedException(f"linalg-to-einsum: {e}") from e
