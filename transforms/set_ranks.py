"""`set-ranks`: give declared ranks new sizes in every cascade of a module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp


def parse_rank_sizes(text: str) -> dict[str, int]:
    """`M=512,P=256` -> {"M": 512, "P": 256}; raises ValueError with a readable message."""
    sizes: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not eq or not name or not value:
            raise ValueError(f"bad rank size '{item}': expected NAME=SIZE")
        try:
            size = int(value)
        except ValueError:
            raise ValueError(f"bad rank size '{item}': {value!r} is not an integer") from None
        if size <= 0:
            raise ValueError(f"bad rank size '{item}': sizes must be positive")
        if name in sizes:
            raise ValueError(f"rank {name} is given two sizes")
        sizes[name] = size
    if not sizes:
        raise ValueError("no rank sizes given (expected NAME=SIZE,...)")
    return sizes


def set_rank_sizes(module: ModuleOp | CascadeOp, sizes: Mapping[str, int]) -> None:
    """Resize ranks in every cascade that declares them; a rank no cascade declares is an error."""
    cascades = (
        [module]
        if isinstance(module, CascadeOp)
        else [op for op in module.walk() if isinstance(op, CascadeOp)]
    )
    unknown = [n for n in sizes if not any(n in c.ranks.names for c in cascades)]
    if unknown:
        declared = sorted({n for c in cascades for n in c.ranks.names})
        raise PassFailedException(
            f"set-ranks: rank {', '.join(unknown)} is not declared "
            f"(declared: {', '.join(declared) or 'none'})"
        )
    for cascade in cascades:
        cascade.set_rank_sizes({n: s for n, s in sizes.items() if n in cascade.ranks.names})


@dataclass(frozen=True)
class SetRanksPass(ModulePass):
    """Set rank sizes: `set-ranks{sizes="M=512,P=256"}` (what `einsum-opt --ranks` runs first).

    Derived sizes such as `M1 = M / M0` follow their parents.
    """

    name = "set-ranks"
    sizes: str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            parsed = parse_rank_sizes(self.sizes)
        except ValueError as e:
            raise PassFailedException(f"set-ranks: {e}") from None
        set_rank_sizes(op, parsed)
