"""An Einsum's own loops (those after its kernel's skeleton) as a table per storage level, and
the choices that build them: which rank pieces go on which array axes, and where the rest
iterate in time.

A `LevelTable` lists, for each level of the unit's chain at or below the skeleton's deepest
level, the temporal pieces (outermost first) and then the spatial pieces that fan out from it
(Timeloop's per-level loops); the loops it gives are the levels in order. Three kinds of rank
are constrained (`OwnContext`): a *standard* rank (one the skeleton has pieces of, with trips
left) has exactly two pieces, an outer one in time and an inner one in time or on an axis,
with the trips the kernel gives them, so that its skeleton pieces keep their names and its
pieces their trips in every Einsum of the kernel; a *split* rank (the iterative
rank of a running value whose final value the Einsum reads) has at least two pieces, so that
no loop of the Einsum is the iterative loop; a *single* rank (the Einsum's own iterative rank,
outside a skeleton) is one temporal piece.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial

from einsum_opt.transforms.map_search.chains import UnitChain
from einsum_opt.transforms.map_search.plan import Loop


@dataclass(frozen=True)
class OwnContext:
    """What an Einsum's own loops must cover on one unit (see the module docstring)."""

    ranks: tuple[str, ...]
    """The Einsum's ranks with trips left, in the order spatial assignments try them."""
    trips: tuple[int, ...]
    """The trips left of each rank of `ranks`."""
    chain: UnitChain
    start: int
    """The first level (index in the chain) own loops may sit at."""
    standard: frozenset[str] = frozenset()
    """Standard ranks; `inner` gives the trips of each one's inner piece (the same in every
    Einsum of the kernel), its outer piece taking the rest."""
    inner: tuple[tuple[str, int], ...] = ()
    split: frozenset[str] = frozenset()
    single: frozenset[str] = frozenset()
    no_spatial: frozenset[str] = frozenset()

    @cached_property
    def extents(self) -> Mapping[str, int]:
        """Rank -> the trips left of it."""
        return dict(zip(self.ranks, self.trips, strict=True))

    @cached_property
    def inner_trips(self) -> Mapping[str, int]:
        """Standard rank -> the trips of its inner piece."""
        return dict(self.inner)


@dataclass(frozen=True)
class LevelTable:
    """Own loops per level: `temporal[i]` and `spatial[i]` for the level `start + i`."""

    start: int
    temporal: tuple[tuple[tuple[str, int], ...], ...]
    spatial: tuple[tuple[tuple[str, int, int], ...], ...]

    def loops(self, chain: UnitChain) -> tuple[Loop, ...]:
        """The loops, outermost first."""
        out = []
        for i, (temporal, spatial) in enumerate(zip(self.temporal, self.spatial, strict=True)):
            level = chain.levels[self.start + i].name
            out += [Loop(r, x, None, level) for r, x in temporal]
            out += [Loop(r, x, a, level) for r, x, a in spatial]
        return tuple(out)


def divisors(n: int) -> list[int]:
    """The divisors of n, ascending."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def prime_factors(n: int) -> list[int]:
    """The prime factors of n with multiplicity, ascending."""
    out = []
    d = 2
    while d * d <= n:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    if n > 1:
        out.append(n)
    return out


Slot = tuple[int, int]
"""A level index of the chain and an array axis (0: X, 1: Y) that fans out there."""


def slots(ctx: OwnContext) -> list[tuple[Slot, int]]:
    """Every (level, axis) with a fan-out above one at or below `start`, and its fan-out."""
    out = []
    for i in range(ctx.start, len(ctx.chain.levels)):
        fanout = ctx.chain.levels[i].fanout
        for axis in (0, 1):
            if fanout[axis] > 1:
                out.append(((i, axis), fanout[axis]))
    return out


Assignment = tuple[tuple[Slot, str, int], ...]
"""Spatial pieces: (slot, rank, trips), in slot order."""


def spatial_assignments(
    ctx: OwnContext,
    limit: int = 6,
    permits: Callable[[Slot, str, int], bool] = lambda slot, rank, trips: True,
) -> list[Assignment]:
    """Up to `limit` ways to put rank pieces on the array's axes, the ones using the most PEs
    first: each slot takes up to two ranks (a standard rank at most one slot), each a divisor
    of what is left of it that fits what is left of the slot and that `permits` allows."""
    allowed = [r for r in ctx.ranks if r not in ctx.no_spatial and r not in ctx.single]
    found: list[tuple[int, Assignment]] = []
    seen: set[Assignment] = set()

    def go(k: int, left: dict[str, int], chosen: list[tuple[Slot, str, int]]) -> None:
        if k == len(all_slots):
            key = tuple(chosen)
            if key not in seen:
                seen.add(key)
                used = math.prod(x for _, _, x in chosen)
                found.append((used, key))
            return
        slot, room = all_slots[k]
        for first in allowed:
            for f in _choices(ctx, first, left[first], room):
                if first in ctx.standard and any(r == first for _, r, _ in chosen):
                    continue
                if not permits(slot, first, f):
                    continue
                rest = dict(left)
                rest[first] //= f
                chosen.append((slot, first, f))
                go(k + 1, rest, chosen)
                space = room // f
                for second in allowed:
                    if allowed.index(second) <= allowed.index(first) or space < 2:
                        continue
                    if second in ctx.standard and any(r == second for _, r, _ in chosen):
                        continue
                    for g in _choices(ctx, second, rest[second], space):
                        if not permits(slot, second, g):
                            continue
                        more = dict(rest)
                        more[second] //= g
                        chosen.append((slot, second, g))
                        go(k + 1, more, chosen)
                        chosen.pop()
                chosen.pop()
        go(k + 1, left, chosen)

    all_slots = slots(ctx)
    go(0, {r: ctx.extents[r] for r in ctx.ranks}, [])
    found.sort(key=lambda item: -item[0])
    return [a for _, a in found[:limit]] or [()]


def _choices(ctx: OwnContext, rank: str, extent: int, room: int) -> list[int]:
    """The spatial trips a rank may take in a slot: a standard rank exactly its inner piece
    (if it fits), any other the best divisors that fit."""
    if rank in ctx.standard:
        inner = ctx.inner_trips.get(rank, 1)
        return [inner] if 1 < inner <= room and extent % inner == 0 else []
    return _fitting(extent, room)


def _fitting(extent: int, room: int) -> list[int]:
    """The best two divisors of `extent` above one that fit `room`, largest first."""
    fits = [d for d in divisors(extent) if 1 < d <= room]
    return fits[::-1][:2]


def build_table(
    ctx: OwnContext,
    assignment: Assignment,
    level_of: Mapping[str, int] | None = None,
    order: Sequence[str] | None = None,
) -> LevelTable:
    """The level table with `assignment`'s spatial pieces and every rank's other trips in one
    temporal piece, at `level_of[rank]` (default: `start`) in `order` (default: the
    Einsum's); a standard rank its outer piece there and its inner piece in time beside it
    unless the assignment puts it on an axis, a split rank a second piece of one trip."""
    temporal, spatial, left, spatial_level = _spatial_part(ctx, assignment)
    for rank in order or ctx.ranks:
        trips = left[rank]
        level = (level_of or {}).get(rank, ctx.start)
        if rank in spatial_level:
            level = min(level, spatial_level[rank])
        if rank in ctx.standard:
            inner = ctx.inner_trips.get(rank, 1)
            temporal[level - ctx.start].append((rank, ctx.extents[rank] // inner))
            if rank not in spatial_level:
                temporal[level - ctx.start].append((rank, inner))
            continue
        if rank in ctx.split and rank not in spatial_level:
            temporal[level - ctx.start] += [(rank, trips), (rank, 1)]
            continue
        if rank in ctx.single or trips > 1 or rank not in spatial_level:
            temporal[level - ctx.start].append((rank, trips))
    return LevelTable(
        ctx.start, tuple(tuple(t) for t in temporal), tuple(tuple(s) for s in spatial)
    )


def _spatial_part(
    ctx: OwnContext, assignment: Assignment
) -> tuple[
    list[list[tuple[str, int]]], list[list[tuple[str, int, int]]], dict[str, int], dict[str, int]
]:
    """Empty temporal levels, the assignment's spatial pieces per level, the trips each rank
    has left, and the outermost level each rank is spatial at."""
    depth = len(ctx.chain.levels) - ctx.start
    temporal: list[list[tuple[str, int]]] = [[] for _ in range(depth)]
    spatial: list[list[tuple[str, int, int]]] = [[] for _ in range(depth)]
    left = dict(ctx.extents)
    spatial_level: dict[str, int] = {}
    for (level, axis), rank, trips in assignment:
        spatial[level - ctx.start].append((rank, trips, axis))
        left[rank] //= trips
        spatial_level[rank] = min(spatial_level.get(rank, level), level)
    return temporal, spatial, left, spatial_level


def table_of(ctx: OwnContext, loops: Sequence[Loop]) -> LevelTable:
    """The level table of own loops (the inverse of `LevelTable.loops`)."""
    depth = len(ctx.chain.levels) - ctx.start
    temporal: list[list[tuple[str, int]]] = [[] for _ in range(depth)]
    spatial: list[list[tuple[str, int, int]]] = [[] for _ in range(depth)]
    for lp in loops:
        i = ctx.chain.index(lp.level) - ctx.start
        if lp.axis is None:
            temporal[i].append((lp.rank, lp.extent))
        else:
            spatial[i].append((lp.rank, lp.extent, lp.axis))
    return LevelTable(
        ctx.start, tuple(tuple(t) for t in temporal), tuple(tuple(s) for s in spatial)
    )


def table_moves(ctx: OwnContext, table: LevelTable) -> Iterator[LevelTable]:
    """The tables one step from `table`: a temporal piece one level in or out, two adjacent
    temporal pieces swapped, a prime factor of a free rank's temporal piece moved to another
    level or between it and the rank's spatial piece (where the axis has room), a standard
    rank's inner piece moved between time and an axis with room; a standard rank's outer piece
    always before its inner one."""
    for moved in _moves(ctx, table):
        if _standard_order(ctx, moved):
            yield moved


def retilings(ctx: OwnContext, table: LevelTable, limit: int = 64) -> list[LevelTable]:
    """The tables with `table`'s pieces (the same ranks at the same levels, in time or on the
    same axes, in the same order) and other trips: each free rank's trips redistributed over
    its pieces, every piece keeping at least two, each axis within its room; at most `limit`,
    the nearest first: those re-tiling one rank, then two, and so on, each group by how many
    pieces change, then in a fixed order. `table` itself is not among them. Candidates that
    differ only in trips share their nests' structure, so they are costed together."""
    constrained = ctx.standard | ctx.split | ctx.single
    places: dict[str, list[tuple[str, int, int]]] = {}  # rank -> (kind, level, position)
    for i, pieces in enumerate(table.temporal):
        for k, (rank, _) in enumerate(pieces):
            places.setdefault(rank, []).append(("t", i, k))
    for i, spieces in enumerate(table.spatial):
        for k, (rank, _, _) in enumerate(spieces):
            places.setdefault(rank, []).append(("s", i, k))
    free = [r for r, at in places.items() if r not in constrained and len(at) > 1]
    current = {r: _trips_at(table, places[r]) for r in free}
    # Each rank's other splits, nearest first.
    others = {
        r: sorted(
            (t for t in _splits(ctx.extents[r], len(places[r])) if t != current[r]),
            key=partial(_distance, current[r]),
        )
        for r in free
    }
    out: list[LevelTable] = []
    for count in range(1, len(free) + 1):
        group: list[tuple[int, int, LevelTable]] = []
        examined = 0
        for ranks in itertools.combinations(free, count):
            for choice in itertools.product(*(others[r] for r in ranks)):
                examined += 1
                if examined > RETILING_TRIES:
                    break
                moved = _retiled(table, places, dict(zip(ranks, choice, strict=True)))
                if not _spatial_fits(ctx, table.start, moved.spatial):
                    continue
                changed = sum(
                    _distance(current[r], t) for r, t in zip(ranks, choice, strict=True)
                )
                group.append((changed, len(group), moved))
        group.sort(key=lambda g: (g[0], g[1]))
        out += [t for _, _, t in group[: limit - len(out)]]
        if len(out) >= limit:
            break
    return out


def _distance(current: tuple[int, ...], trips: tuple[int, ...]) -> int:
    """How many pieces `trips` changes."""
    return sum(a != b for a, b in zip(trips, current, strict=True))


RETILING_TRIES = 4096
"""Combinations `retilings` examines per number of re-tiled ranks, at most (a convolution's
many ranks would otherwise make their product large)."""


def _retiled(
    table: LevelTable,
    places: Mapping[str, Sequence[tuple[str, int, int]]],
    trips: Mapping[str, tuple[int, ...]],
) -> LevelTable:
    """`table` with the pieces of each rank of `trips` given those trips."""
    temporal = [list(t) for t in table.temporal]
    spatial = [list(x) for x in table.spatial]
    for rank, values in trips.items():
        for (kind, i, k), x in zip(places[rank], values, strict=True):
            if kind == "t":
                temporal[i][k] = (rank, x)
            else:
                spatial[i][k] = (rank, x, spatial[i][k][2])
    return _table(table.start, temporal, spatial)


def _splits(extent: int, pieces: int) -> list[tuple[int, ...]]:
    """The ordered ways of writing `extent` as a product of `pieces` factors of at least two."""
    if pieces == 1:
        return [(extent,)] if extent >= 2 else []
    out = []
    for d in divisors(extent):
        if d >= 2:
            out += [(d, *rest) for rest in _splits(extent // d, pieces - 1)]
    return out


def _trips_at(table: LevelTable, places: Sequence[tuple[str, int, int]]) -> tuple[int, ...]:
    return tuple(
        table.temporal[i][k][1] if kind == "t" else table.spatial[i][k][1]
        for kind, i, k in places
    )


def _spatial_fits(
    ctx: OwnContext, start: int, spatial: Sequence[Sequence[tuple[str, int, int]]]
) -> bool:
    """Whether every level's spatial pieces fit its fan-out, axis by axis."""
    for i, pieces in enumerate(spatial):
        fanout = ctx.chain.levels[start + i].fanout
        for axis in (0, 1):
            if math.prod(x for _, x, a in pieces if a == axis) > fanout[axis]:
                return False
    return True


def _moves(ctx: OwnContext, table: LevelTable) -> Iterator[LevelTable]:
    depth = len(table.temporal)
    temporal = [list(t) for t in table.temporal]
    spatial = [list(s) for s in table.spatial]
    spatial_level = {r: i for i, s in enumerate(spatial) for r, _, _ in s}
    constrained = ctx.standard | ctx.split | ctx.single
    for i in range(depth):
        for k, (rank, trips) in enumerate(temporal[i]):
            for j in (i - 1, i + 1):
                if not 0 <= j < depth:
                    continue
                if rank in spatial_level and j > spatial_level[rank]:
                    continue
                if rank in (ctx.split | ctx.single) and _pieces(temporal, rank) > 1:
                    continue
                moved = [list(t) for t in temporal]
                piece = moved[i].pop(k)
                if j < i:
                    moved[j].append(piece)
                else:
                    moved[j].insert(0, piece)
                yield _table(table.start, moved, spatial)
            if k + 1 < len(temporal[i]):
                other = temporal[i][k + 1]
                if other[0] != rank:
                    swapped = [list(t) for t in temporal]
                    swapped[i][k], swapped[i][k + 1] = other, (rank, trips)
                    yield _table(table.start, swapped, spatial)
            if trips > 1 and rank not in constrained:
                for p in sorted(set(prime_factors(trips))):
                    for j in range(depth):
                        if j == i or (rank in spatial_level and j > spatial_level[rank]):
                            continue
                        yield _move_factor(table.start, temporal, spatial, rank, i, k, j, p)
            inner = rank in ctx.standard and rank not in spatial_level
            if inner and _is_inner(temporal, i, k):
                yield from _to_axis(ctx, table, temporal, spatial, (i, k))
    for i in range(depth):
        for k, (rank, trips, axis) in enumerate(spatial[i]):
            if rank in ctx.standard:
                back_t = [list(t) for t in temporal]
                back_s = [list(x) for x in spatial]
                back_s[i].pop(k)
                back_t[i].append((rank, trips))
                yield _table(table.start, back_t, back_s)
                continue
            room = ctx.chain.levels[table.start + i].fanout[axis]
            used = math.prod(x for _, x, a in spatial[i] if a == axis)
            for ti in range(i + 1):
                for tk, (trank, ttrips) in enumerate(temporal[ti]):
                    if trank != rank:
                        continue
                    for p in sorted(set(prime_factors(ttrips))):
                        if used * p <= room:
                            yield _shift(table.start, temporal, spatial, (ti, tk), (i, k), p)
                    for p in sorted(set(prime_factors(trips))):
                        yield _shift(table.start, temporal, spatial, (ti, tk), (i, k), -p)


def _is_inner(temporal: list[list[tuple[str, int]]], i: int, k: int) -> bool:
    """Whether `temporal[i][k]` is its standard rank's second temporal piece."""
    rank = temporal[i][k][0]
    seen = 0
    for level in range(i + 1):
        for n, (r, _) in enumerate(temporal[level]):
            if r == rank and (level < i or n < k):
                seen += 1
    return seen == 1


def _to_axis(
    ctx: OwnContext,
    table: LevelTable,
    temporal: list[list[tuple[str, int]]],
    spatial: list[list[tuple[str, int, int]]],
    at: tuple[int, int],
) -> Iterator[LevelTable]:
    """A standard rank's inner temporal piece put on each axis with room, at a level at or
    below it."""
    rank, trips = temporal[at[0]][at[1]]
    for i in range(at[0], len(temporal)):
        fanout = ctx.chain.levels[table.start + i].fanout
        for axis in (0, 1):
            used = math.prod(x for _, x, a in spatial[i] if a == axis)
            if trips > 1 and used * trips <= fanout[axis]:
                moved_t = [list(t) for t in temporal]
                moved_s = [list(s) for s in spatial]
                moved_t[at[0]].pop(at[1])
                moved_s[i].append((rank, trips, axis))
                yield _table(table.start, moved_t, moved_s)


def _standard_order(ctx: OwnContext, table: LevelTable) -> bool:
    """Whether every standard rank's first piece (in loop order) has its outer trips."""
    if not ctx.standard:
        return True
    first: dict[str, int] = {}
    for temporal, spatial in zip(table.temporal, table.spatial, strict=True):
        for rank, trips in temporal:
            first.setdefault(rank, trips)
        for rank, trips, _ in spatial:
            first.setdefault(rank, trips)
    for rank in ctx.standard:
        inner = ctx.inner_trips.get(rank, 1)
        if first.get(rank) != ctx.extents[rank] // inner:
            return False
    return True


def _pieces(temporal: list[list[tuple[str, int]]], rank: str) -> int:
    return sum(1 for t in temporal for r, _ in t if r == rank)


def _table(
    start: int, temporal: list[list[tuple[str, int]]], spatial: list[list[tuple[str, int, int]]]
) -> LevelTable:
    return LevelTable(start, tuple(tuple(t) for t in temporal), tuple(tuple(s) for s in spatial))


def _move_factor(
    start: int,
    temporal: list[list[tuple[str, int]]],
    spatial: list[list[tuple[str, int, int]]],
    rank: str,
    i: int,
    k: int,
    j: int,
    p: int,
) -> LevelTable:
    """Prime factor `p` of the piece `temporal[i][k]` moved to level `j` (merged with the
    rank's piece there, or a new innermost piece)."""
    moved = [list(t) for t in temporal]
    r, trips = moved[i][k]
    if trips // p == 1:
        moved[i].pop(k)
    else:
        moved[i][k] = (r, trips // p)
    for n, (other, x) in enumerate(moved[j]):
        if other == rank:
            moved[j][n] = (other, x * p)
            break
    else:
        if j < i:
            moved[j].append((rank, p))
        else:
            moved[j].insert(0, (rank, p))
    return _table(start, moved, spatial)


def _shift(
    start: int,
    temporal: list[list[tuple[str, int]]],
    spatial: list[list[tuple[str, int, int]]],
    t_at: tuple[int, int],
    s_at: tuple[int, int],
    p: int,
) -> LevelTable:
    """A factor moved from a temporal piece to a spatial piece of the same rank (`p` > 0) or
    back (`-p`); a piece left with one trip stays (it keeps the loop names)."""
    moved_t = [list(t) for t in temporal]
    moved_s = [list(s) for s in spatial]
    rank, trips = moved_t[t_at[0]][t_at[1]]
    srank, strips, axis = moved_s[s_at[0]][s_at[1]]
    if p > 0:
        moved_t[t_at[0]][t_at[1]] = (rank, trips // p)
        moved_s[s_at[0]][s_at[1]] = (srank, strips * p, axis)
    else:
        moved_t[t_at[0]][t_at[1]] = (rank, trips * -p)
        moved_s[s_at[0]][s_at[1]] = (srank, strips // -p, axis)
    return _table(start, moved_t, moved_s)


def random_table(ctx: OwnContext, rng: random.Random, assignment: Assignment) -> LevelTable:
    """A level table drawn with `rng` around a spatial assignment: every prime factor a free
    rank has left goes to a random level in time, a constrained rank's trips to one random
    level; each level's temporal pieces in a random order."""
    depth = len(ctx.chain.levels) - ctx.start
    temporal, spatial, left, spatial_level = _spatial_part(ctx, assignment)
    constrained = ctx.standard | ctx.split | ctx.single
    for rank in ctx.ranks:
        trips = left[rank]
        deepest = spatial_level.get(rank, len(ctx.chain.levels) - 1) - ctx.start
        if rank in ctx.standard:
            inner = ctx.inner_trips.get(rank, 1)
            level = rng.randrange(deepest + 1)
            temporal[level].append((rank, ctx.extents[rank] // inner))
            if rank not in spatial_level:
                temporal[rng.randrange(level, depth)].insert(0, (rank, inner))
            continue
        if rank in constrained:
            level = rng.randrange(deepest + 1)
            temporal[level].append((rank, trips))
            if rank in ctx.split and rank not in spatial_level:
                temporal[level].append((rank, 1))
            continue
        placed: dict[int, int] = {}
        for p in prime_factors(trips):
            level = rng.randrange(depth)
            placed[level] = placed.get(level, 1) * p
        if not placed and rank not in spatial_level:
            placed[rng.randrange(depth)] = 1
        for level, x in placed.items():
            temporal[level].append((rank, x))
    for t in temporal:
        rng.shuffle(t)
    return _table(ctx.start, temporal, spatial)
