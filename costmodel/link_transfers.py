"""Link transfers: which instances of a spatial fan-out get a delta from a neighbour instead of
from their parent, in closed form.

Timeloop (NestAnalysis::ComputeNetworkLinkTransfers) lays the instances of a fan-out on the
mesh (linear index: innermost loop fastest; h = index mod H, v = index div H with H the larger
of the mesh's and the fan-out's X size) and lets an instance take its delta over a link when
it equals the delta a mesh neighbour (h±1 or v±1) received in the previous step. Every
instance gets its child's delta moved by its own offset `Σ digit_k · step_k`, so with `Δ` the
move from the previous step's delta to this one, an instance links when a neighbour's offset
differs from its own by exactly `Δ`. Timeloop then uses the links for a tensor only if that
leaves fewer distinct deltas to send from the parent.

The offset to a neighbour depends on each digit of the linear index only through whether it
is 0, its largest value or in between (the carries of ±1), so the instances fall into at most
3^loops classes of equal behaviour, whatever the extents. That needs the mesh rows to start
at a digit (or inside a digit whose extent the row width divides); when a row ends elsewhere,
and a neighbour could match, `Fanout.stats` raises `ValueError`."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.costmodel.distinct_sums import Step, count_reached, distinct_sums

_ZERO, _MIDDLE, _TOP = 0, 1, 2

Pattern = tuple[int, int, int]
"""(first digit of the row or column digits, how many digits saturate, _TOP for the next
instance (carrying over top digits) or _ZERO for the previous one (borrowing over zeros))."""


@dataclass(frozen=True)
class FanoutLoop:
    """A spatial loop of a fan-out: extent, 'X' or 'Y', and the move of the child's delta."""

    extent: int
    axis: str
    step: Step


@dataclass(frozen=True)
class LinkStats:
    """For one move `Δ` between consecutive deltas: instances that take theirs over a link and
    the distinct deltas left for the parent to send, or `used` False when Timeloop keeps the
    plain multicast (links would not reduce the parent's sends)."""

    used: bool
    linked: int
    groups: int


class Fanout:
    """The instances of one spatial fan-out (loops innermost first, as the nest has them:
    Timeloop's mappings put a level's X loops inside its Y loops), laid on a mesh `mesh_x`
    wide (the ratio of the child's mesh X to the parent's)."""

    def __init__(self, loops: Sequence[FanoutLoop], mesh_x: int):
        self.loops = list(loops)
        self.instances = math.prod(lp.extent for lp in self.loops)
        self.groups = distinct_sums([lp.extent for lp in loops], [lp.step for lp in loops])
        self.row = max(mesh_x, math.prod(lp.extent for lp in loops if lp.axis == "X"))
        self.row_digits = self._split_rows()
        self._cache: dict[Step, LinkStats] = {}
        self._neighbours: dict[Step, list[Pattern]] | None = None

    def _split_rows(self) -> int | None:
        """How many digits make up h (the rest make up v), splitting the digit a row ends in
        when the row width divides it; None when a row ends elsewhere inside a digit."""
        width = 1
        for count, loop in enumerate(self.loops):
            if width == self.row:
                return count
            if width * loop.extent > self.row:
                inner = self.row // width
                if self.row % width or loop.extent % inner:
                    return None
                self.loops[count : count + 1] = [
                    FanoutLoop(inner, loop.axis, loop.step),
                    FanoutLoop(
                        loop.extent // inner, loop.axis, tuple(inner * d for d in loop.step)
                    ),
                ]
                return count + 1
            width *= loop.extent
        return len(self.loops)

    def stats(self, move: Step) -> LinkStats:
        """What links do when consecutive deltas differ by `move`."""
        cached = self._cache.get(move)
        if cached is None:
            cached = self._cache[move] = self._stats(move)
        return cached

    def _stats(self, move: Step) -> LinkStats:
        plain = LinkStats(False, 0, self.groups)
        if self.row_digits is None:
            if move not in self._possible_offsets():
                return plain
            raise ValueError(
                "a mesh row ends inside a loop of the fan-out: the fan-out's X size times a "
                "prefix of its Y loops is not the mesh's X size"
            )
        patterns = self._patterns().get(move)
        if not patterns:
            return plain
        linked = 0
        unlinked: list[tuple[int, ...]] = []
        for cell in itertools.product(*(_classes(lp.extent) for lp in self.loops)):
            if any(_matches(cell, pattern) for pattern in patterns):
                linked += math.prod(
                    _class_size(c, lp.extent) for c, lp in zip(cell, self.loops, strict=True)
                )
            else:
                unlinked.append(cell)
        groups = self._distinct_over(unlinked)
        return LinkStats(True, linked, groups) if groups < self.groups else plain

    def _patterns(self) -> dict[Step, list[Pattern]]:
        """Offset to a mesh neighbour → the digit patterns of the instances that have it."""
        if self._neighbours is None:
            assert self.row_digits is not None
            self._neighbours = {}
            for low, high in ((0, self.row_digits), (self.row_digits, len(self.loops))):
                for count, offset in enumerate(_carry_offsets(self.loops[low:high])):
                    self._neighbours.setdefault(offset, []).append((low, count, _TOP))
                    negated = tuple(-d for d in offset)
                    self._neighbours.setdefault(negated, []).append((low, count, _ZERO))
        return self._neighbours

    def _possible_offsets(self) -> set[Step]:
        """Every offset between mesh neighbours (±1 and ± a row), wherever they are."""
        offsets = set(_carry_offsets(self.loops)) | _offsets_of_adding(self.row, self.loops)
        return offsets | {tuple(-d for d in offset) for offset in offsets}

    def _distinct_over(self, cells: list[tuple[int, ...]]) -> int:
        """Distinct offsets over the instances of `cells`."""
        moving = [k for k, lp in enumerate(self.loops) if any(lp.step)]
        projected = {tuple(cell[k] for k in moving) for cell in cells}
        loops = [self.loops[k] for k in moving]
        extents = [lp.extent for lp in loops]
        if distinct_sums(extents, [lp.step for lp in loops]) == math.prod(extents):
            return sum(
                math.prod(_class_size(c, lp.extent) for c, lp in zip(cell, loops, strict=True))
                for cell in projected
            )
        ranges = [
            [_class_range(c, lp.extent) for c, lp in zip(cell, loops, strict=True)]
            for cell in projected
        ]
        return count_reached([lp.step for lp in loops], ranges)


@functools.lru_cache(maxsize=4096)
def fanout_of(loops: tuple[tuple[int, str | None, Step], ...], mesh_x: int) -> Fanout:
    """The `Fanout` of loops given as (extent, axis, step), innermost first (shared: it
    depends on nothing else, and it caches what it computes)."""
    return Fanout([FanoutLoop(e, axis or "X", step) for e, axis, step in loops], mesh_x)


def _carry_offsets(loops: Sequence[FanoutLoop]) -> list[Step]:
    """The offset from an instance to the next when its first c digits are at their top and
    digit c is not, for c = 0, 1, …"""
    offsets: list[Step] = []
    if not loops:
        return offsets
    carried = tuple(0 for _ in loops[0].step)
    for loop in loops:
        offsets.append(tuple(c + d for c, d in zip(carried, loop.step, strict=True)))
        carried = tuple(c - (loop.extent - 1) * d for c, d in zip(carried, loop.step, strict=True))
    return offsets


def _matches(cell: tuple[int, ...], pattern: Pattern) -> bool:
    """Whether the instances of `cell` have the neighbour of `pattern`."""
    first, count, saturated = pattern
    for k in range(first, first + count):
        if cell[k] != saturated:
            return False
    return cell[first + count] != saturated


def _classes(extent: int) -> tuple[int, ...]:
    return (_ZERO, _TOP) if extent == 2 else (_ZERO, _MIDDLE, _TOP)


def _class_size(cls: int, extent: int) -> int:
    return extent - 2 if cls == _MIDDLE else 1


def _class_range(cls: int, extent: int) -> tuple[int, int]:
    """[first, last] digit values of a class."""
    if cls == _ZERO:
        return 0, 0
    if cls == _TOP:
        return extent - 1, extent - 1
    return 1, extent - 2


def _offsets_of_adding(amount: int, loops: Sequence[FanoutLoop]) -> set[Step]:
    """The offsets `S(i + amount) - S(i)` over all i with `i + amount` still an instance:
    one per feasible pattern of carries when `amount` is added digit by digit."""
    digits = []
    for loop in loops:
        digits.append(amount % loop.extent)
        amount //= loop.extent
    if amount or not loops:
        return set()
    patterns: set[tuple[Step, int]] = {(tuple(0 for _ in loops[0].step), 0)}
    for digit, loop in zip(digits, loops, strict=True):
        following: set[tuple[Step, int]] = set()
        for offset, carry in patterns:
            for carry_out in (0, 1):
                if carry_out and digit + carry < 1:
                    continue  # even the largest digit cannot overflow
                if not carry_out and digit + carry > loop.extent - 1:
                    continue  # even digit 0 overflows
                change = digit + carry - loop.extent * carry_out
                moved = tuple(o + change * s for o, s in zip(offset, loop.step, strict=True))
                following.add((moved, carry_out))
        patterns = following
    return {offset for offset, carry in patterns if carry == 0}
