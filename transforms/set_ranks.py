"""`set-ranks`: give declared ranks new sizes in every cascade of a module."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException, VerifyException

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_attrs import RANK_NAME
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.support.errors import integer_of

RANKS_HELP = (
    "override declared rank sizes, e.g. M=512,P=256 (derived sizes such as M1 = M / M0 follow)"
)
"""Help text of the tools' `--ranks` option."""

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_rank_sizes(text: str) -> dict[str, int]:
    """`"M=512, P=256"` -> `{"M": 512, "P": 256}`; ValueError naming the bad entry.

    Names must be rank names (upper-case first letter) given once each; sizes positive integers.
    Whether the ranks exist is checked against a cascade when they are applied.
    """
    sizes: dict[str, int] = {}
    entries = [e.strip() for e in text.split(",")]
    if not any(entries):
        raise ValueError("expected NAME=SIZE[,NAME=SIZE...], got an empty value")
    for entry in entries:
        if not entry:
            raise ValueError(f"'{text}': empty entry (expected NAME=SIZE[,NAME=SIZE...])")
        name, eq, size_text = (part.strip() for part in entry.partition("="))
        if not eq:
            raise ValueError(f"'{entry}': expected NAME=SIZE")
        if not RANK_NAME.fullmatch(name):
            raise ValueError(
                f"'{entry}': '{name}' is not a rank name (an upper-case letter, then "
                "letters, digits or _)"
            )
        if not _INTEGER.fullmatch(size_text):
            raise ValueError(f"'{entry}': size '{size_text}' is not an integer")
        try:
            size = integer_of(size_text)
        except ValueError as e:
            raise ValueError(f"rank {name}: size is an {e}") from None
        if size <= 0:
            raise ValueError(f"'{entry}': rank {name} must have a positive size")
        if name in sizes:
            raise ValueError(f"rank {name} is given twice ({sizes[name]} and {size})")
        sizes[name] = size
    return sizes


def set_rank_sizes(module: ModuleOp | CascadeOp, sizes: Mapping[str, int]) -> None:
    """Resize ranks in every cascade that declares them; a rank no cascade declares is an error."""
    cascades = cascades_in(module)
    unknown = [n for n in sizes if not any(n in c.ranks.names for c in cascades)]
    if unknown:
        declared = sorted({n for c in cascades for n in c.ranks.names})
        raise PassFailedException(
            f"set-ranks: rank {', '.join(unknown)} is not declared "
            f"(declared: {', '.join(declared) or 'none'})"
        )
    for cascade in cascades:
        try:
            cascade.set_rank_sizes({n: s for n, s in sizes.items() if n in cascade.ranks.names})
        except VerifyException as e:
            message = f"set-ranks: @{cascade.cascade_name}: {e}"
            raise OpPassFailedException(cascade, message) from None


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
