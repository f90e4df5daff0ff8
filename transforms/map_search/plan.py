"""A candidate mapping as plain, hashable data, and its `#einsum.mapping` form.

A `Loop` is one piece of a rank: its trip count, its array axis when it is spatial, and the
storage level of the unit's chain it sits at (Timeloop's per-level loops). An `EinsumMap` is
one Einsum's complete mapping: its unit, its loops outermost first (the pieces of a rank in
order of decreasing stride), the home level of each tensor it touches, the exact levels that
keep a tensor where they differ from the default, and its kernel. A `CascadeMap` has one per
Einsum, in program order. Plans pickle, so workers on other processes or machines can
evaluate them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from einsum_opt.dialects.einsum import EinsumOp
from einsum_opt.dialects.einsum_mapping import (
    MappingAttr,
    einsum_ranks,
    loop_extents,
    ordered_loops,
    partition_names,
)
from einsum_opt.transforms.map_search.hashing import CachedHash


@dataclass(frozen=True)
class Loop(CachedHash):
    """One loop: a piece of `rank` of `extent` trips, spatial on `axis` (None: temporal), at
    storage level `level`."""

    __hash__ = CachedHash.__hash__

    rank: str
    extent: int
    axis: int | None
    level: str


@dataclass(frozen=True)
class EinsumMap(CachedHash):
    """One Einsum's mapping (see the module docstring)."""

    __hash__ = CachedHash.__hash__

    unit: str
    loops: tuple[Loop, ...]
    homes: tuple[tuple[str, str], ...]
    keeps: tuple[tuple[str, tuple[str, ...]], ...] = ()
    kernel: str = ""

    def nest_key(self) -> tuple[object, ...]:
        """What the nest's analysis depends on (everything but the kernel name)."""
        return (self.unit, self.loops, self.homes, self.keeps)

    def home(self, tensor: str) -> str:
        """The home level of `tensor`."""
        return dict(self.homes)[tensor]

    def pieces(self, rank: str) -> tuple[Loop, ...]:
        """The loops over `rank`, outermost first."""
        return tuple(lp for lp in self.loops if lp.rank == rank)


CascadeMap = tuple[EinsumMap, ...]
"""One `EinsumMap` per Einsum of a cascade, in program order."""


def loop_names(loops: tuple[Loop, ...]) -> list[str]:
    """The loop rank of each loop as the mapping names it: the rank itself when it has one
    piece, else `R2, R1, R0` (partition_names) in order."""
    found = _NAMES.get(loops)
    if found is None:
        if len(_NAMES) > 100_000:
            _NAMES.clear()
        found = _NAMES[loops] = _loop_names(loops)
    return found


_NAMES: dict[tuple[Loop, ...], list[str]] = {}


def _loop_names(loops: tuple[Loop, ...]) -> list[str]:
    count: dict[str, int] = {}
    for lp in loops:
        count[lp.rank] = count.get(lp.rank, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for lp in loops:
        k = count[lp.rank]
        i = seen.get(lp.rank, 0)
        seen[lp.rank] = i + 1
        names.append(lp.rank if k == 1 else partition_names(lp.rank, k - 1)[i])
    return names


def clashes(loops: tuple[Loop, ...], declared: frozenset[str]) -> bool:
    """Whether a partition loop name would clash with a declared rank."""
    names = loop_names(loops)
    return any(n != lp.rank and n in declared for n, lp in zip(names, loops, strict=True))


def partitions(loops: tuple[Loop, ...]) -> dict[str, list[int]]:
    """Rank -> its uniform shapes, outer to inner, for the ranks with several pieces."""
    out: dict[str, list[int]] = {}
    ranks = list(dict.fromkeys(lp.rank for lp in loops))
    for rank in ranks:
        extents = [lp.extent for lp in loops if lp.rank == rank]
        if len(extents) > 1:
            out[rank] = [math.prod(extents[i:]) for i in range(1, len(extents))]
    return out


def to_attr(plan: EinsumMap) -> MappingAttr:
    """The `#einsum.mapping` of one Einsum's plan: every loop placed (`at`), every tensor
    homed, the kept levels where given."""
    names = loop_names(plan.loops)
    at: dict[str, str] = {}
    previous = ""
    for name, lp in zip(names, plan.loops, strict=True):
        if lp.level != previous:
            at[name] = lp.level
            previous = lp.level
    space = {n: lp.axis for n, lp in zip(names, plan.loops, strict=True) if lp.axis is not None}
    keeps: Mapping[str, tuple[str, ...]] = dict(plan.keeps)
    return MappingAttr.make(
        plan.unit,
        names,
        partitions(plan.loops),
        space,
        dict(plan.homes),
        plan.kernel,
        at,
        {t: list(chain) for t, chain in keeps.items()},
    )


def from_attr(
    op: EinsumOp,
    attr: MappingAttr,
    sizes: Mapping[str, int],
    level_name: Callable[[str, str], str],
    default_home: Callable[[str], str],
) -> EinsumMap | None:
    """The plan of an existing, fully placed mapping (every loop at a level through `at`);
    None when it is not one a plan can express (loops unplaced, or the pieces of a rank out of
    stride order). `level_name(unit, name)` resolves a level or role name on the unit's
    chain; `default_home(tensor)` is the home of a tensor the mapping does not place."""
    order = ordered_loops(op, attr)
    bounds = attr.boundaries
    if not order or order[0] not in bounds:
        return None
    extents = loop_extents(op, attr, sizes)
    unit = attr.unit_name
    ranks = {}
    for rank in einsum_ranks(op):
        shapes = attr.partitions.get(rank)
        names = partition_names(rank, len(shapes)) if shapes else [rank]
        for name in names:
            ranks[name] = (rank, names.index(name))
    seen: dict[str, int] = {}
    loops = []
    level = ""
    for name in order:
        rank, piece = ranks[name]
        if piece != seen.get(rank, 0):
            return None
        seen[rank] = piece + 1
        level = level_name(unit, bounds.get(name, level)) if name in bounds else level
        loops.append(Loop(rank, extents[name], attr.spatial.get(name), level))
    tensors = [op.access_name(v) for v, _ in op.accesses()] + [op.tensor_name]
    stored = attr.levels
    homes = tuple(
        (t, level_name(unit, stored[t]) if t in stored else default_home(t))
        for t in dict.fromkeys(tensors)
    )
    keeps = tuple(
        (t, tuple(level_name(unit, lv) for lv in chain)) for t, chain in attr.keeps.items()
    )
    return EinsumMap(unit, tuple(loops), homes, keeps, attr.kernel_name)
