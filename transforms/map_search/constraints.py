"""Honouring mapspace constraints (`hardware.mapspace`: what a Timeloop import attaches from
its `architecture_constraints` and `mapspace_constraints`) in an Einsum's own loops and kept
levels: fixed temporal and spatial factors per level, the innermost loop order of a level,
the ranks each array axis may take, and tensors kept or bypassed. An empty `Constraints`
allows everything.

`adjust` brings a level table into the constraints (fixed factors placed, the table's other
choices kept where they still fit, what is left of a rank at the outermost level free for
it, levels ordered); `allows` checks a table, `allows_spatial` a spatial assignment,
`allows_keep` and `kept` the levels keeping a tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from einsum_opt.hardware.mapspace import LevelConstraints, MapspaceConstraints, attached_mapspace
from einsum_opt.transforms.map_search.chains import UnitChain
from einsum_opt.transforms.map_search.own_loops import Assignment, LevelTable, OwnContext


@dataclass(frozen=True)
class Constraints:
    """The constraints map-search honours (none by default)."""

    mapspace: MapspaceConstraints = field(default_factory=MapspaceConstraints)

    def _at(self, chain: UnitChain, index: int) -> LevelConstraints | None:
        return self.mapspace.of(chain.levels[index].name)

    def permits(self, ctx: OwnContext, slot: tuple[int, int], rank: str, trips: int) -> bool:
        """Whether `trips` of `rank` may go spatial at a slot (level, axis)."""
        c = self._at(ctx.chain, slot[0])
        if c is None:
            return True
        fixed = dict(c.spatial).get(rank)
        return _axis_allows(c, slot[1], rank) and (fixed is None or fixed == trips or fixed > 1)

    def allows_spatial(self, ctx: OwnContext, assignment: Assignment) -> bool:
        """Whether a spatial assignment respects the axes and fixed spatial factors."""
        for (level, axis), rank, trips in assignment:
            c = self._at(ctx.chain, level)
            if c is None:
                continue
            if not _axis_allows(c, axis, rank):
                return False
            fixed = dict(c.spatial).get(rank)
            if fixed is not None and trips != fixed:
                return False
        return True

    def allows(self, ctx: OwnContext, table: LevelTable) -> bool:
        """Whether a level table respects every constraint of its levels."""
        if not self.mapspace.levels:
            return True
        for i, (temporal, spatial) in enumerate(zip(table.temporal, table.spatial, strict=True)):
            c = self._at(ctx.chain, table.start + i)
            if c is None:
                continue
            for rank, fixed in c.temporal:
                if rank in ctx.extents and _product(temporal, rank) != fixed:
                    return False
            for rank, fixed in c.spatial:
                if rank in ctx.extents and _product(spatial, rank) != fixed:
                    return False
            for rank, trips, axis in spatial:
                if trips > 1 and not _axis_allows(c, axis, rank):
                    return False
            if c.order and list(temporal) != _ordered(list(temporal), c.order):
                return False
        return True

    def adjust(self, ctx: OwnContext, table: LevelTable) -> LevelTable:
        """`table` brought into the constraints (see the module docstring); `table` itself
        when they cannot all hold."""
        if not self.mapspace.levels:
            return table
        depth = len(table.temporal)
        constraints = [self._at(ctx.chain, table.start + i) for i in range(depth)]
        left = dict(ctx.extents)
        temporal: list[list[tuple[str, int]]] = [[] for _ in range(depth)]
        spatial: list[list[tuple[str, int, int]]] = [[] for _ in range(depth)]
        fixed_t = [dict(c.temporal) if c else {} for c in constraints]
        fixed_s = [dict(c.spatial) if c else {} for c in constraints]
        for i in range(depth):
            for rank, trips in fixed_s[i].items():
                if rank in left and trips > 1:
                    c = constraints[i]
                    assert c is not None
                    axis = 0 if _axis_allows(c, 0, rank) else 1
                    spatial[i].append((rank, trips, axis))
            for rank, trips in fixed_t[i].items():
                if rank in left and trips > 1:
                    temporal[i].append((rank, trips))
        for rank, size in ctx.extents.items():
            fixed = math.prod(x for s in spatial for r, x, _ in s if r == rank) * math.prod(
                x for t in temporal for r, x in t if r == rank
            )
            if size % fixed:
                return table
            left[rank] = size // fixed
        for i in range(depth):
            room = list(ctx.chain.levels[table.start + i].fanout)
            for _, trips, axis in spatial[i]:
                room[axis] //= trips
            for rank, trips, axis in table.spatial[i]:
                c = constraints[i]
                if rank in fixed_s[i] or (c is not None and not _axis_allows(c, axis, rank)):
                    continue
                g = math.gcd(trips, left[rank])
                while g > 1 and g > room[axis]:
                    g = max(d for d in range(1, g) if g % d == 0)
                if g > 1:
                    spatial[i].append((rank, g, axis))
                    left[rank] //= g
                    room[axis] //= g
            for rank, trips in table.temporal[i]:
                if rank in fixed_t[i]:
                    continue
                g = math.gcd(trips, left[rank])
                if g > 1:
                    temporal[i].append((rank, g))
                    left[rank] //= g
        for rank, trips in left.items():
            pieces = any(r == rank for t in temporal for r, _ in t) or any(
                r == rank for s in spatial for r, _, _ in s
            )
            if trips == 1 and pieces:
                continue
            free = next((i for i in range(depth) if rank not in fixed_t[i]), None)
            if free is None:
                if trips > 1:
                    return table
                free = 0
            for n, (r, x) in enumerate(temporal[free]):
                if r == rank:
                    temporal[free][n] = (r, x * trips)
                    break
            else:
                temporal[free].insert(0, (rank, trips))
        for i, c in enumerate(constraints):
            if c is not None and c.order:
                temporal[i] = _ordered(temporal[i], c.order)
        return LevelTable(
            table.start, tuple(tuple(t) for t in temporal), tuple(tuple(s) for s in spatial)
        )

    def allows_keep(self, unit: str, tensor: str, chain: tuple[str, ...]) -> bool:
        """Whether `tensor` may be kept exactly at the levels of `chain`."""
        del unit
        for c in self.mapspace.levels:
            if tensor in c.keep and c.level not in chain and _below(c.level, chain):
                return False
            if tensor in c.bypass and c.level in chain[1:]:
                return False
        return True

    def kept(self, tensor: str, chain: tuple[str, ...], levels: tuple[str, ...]) -> tuple[str, ...]:
        """`chain` (the levels keeping `tensor`, its home first) with the levels the
        constraints keep it at added and those they bypass removed (never its home);
        `levels` is the unit's chain, outermost first."""
        home = chain[0]
        keep = set(chain)
        for c in self.mapspace.levels:
            if c.level not in levels or levels.index(c.level) <= levels.index(home):
                continue
            if tensor in c.keep:
                keep.add(c.level)
            if tensor in c.bypass:
                keep.discard(c.level)
        return tuple(n for n in levels if n in keep)


def _below(level: str, chain: tuple[str, ...]) -> bool:
    """Whether `level` may hold a tensor of this chain (it is not above its home)."""
    return bool(chain) and level != chain[0]


def _axis_allows(c: LevelConstraints, axis: int, rank: str) -> bool:
    allowed = c.spatial_x if axis == 0 else c.spatial_y
    return allowed is None or rank in allowed


def _product(pieces: Sequence[tuple[object, ...]], rank: str) -> int:
    return math.prod(int(p[1]) for p in pieces if p[0] == rank)  # type: ignore[call-overload]


def _ordered(pieces: list[tuple[str, int]], order: Sequence[str]) -> list[tuple[str, int]]:
    """Temporal pieces (outermost first) with the ranks of `order` (innermost first)
    innermost, in that order, the others outside them as they were; one-trip pieces where
    they are."""
    listed = [p for p in pieces if p[0] in order and p[1] > 1]
    others = [p for p in pieces if p not in listed]
    listed.sort(key=lambda p: -order.index(p[0]))
    return others + listed


def attached_constraints(module: object, pass_name: str) -> Constraints:
    """The constraints attached to `module` (a Timeloop import attaches its spec's), else
    none."""
    del pass_name
    found = attached_mapspace(module)  # type: ignore[arg-type]
    return Constraints(found) if found is not None else Constraints()
