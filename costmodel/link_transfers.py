"""Link transfers: which instances of a spatial fan-out get a delta from a neighbour instead of
from their parent, in closed form.

Timeloop (NestAnalysis::ComputeNetworkLinkTransfers) lays the instances of a fan-out on the
mesh (linear index: innermost loop fastest; h = index mod H, v = index div H with H the larger
of the mesh's and the fan-out's X size) and lets an instance take its delta over a link when it
equals the delta a mesh neighbour (h±1 or v±1) received in the previous step. Every instance
gets its child's delta moved by its own offset `Σ digit_k · step_k`, so with `Δ` the move from
the previous step's delta to this one, an instance links when a neighbour's offset differs from
its own by exactly `Δ`. Timeloop then uses the links for a tensor only if that leaves fewer
distinct deltas to send from the parent.

Whether a neighbour differs by `Δ` depends on each digit only through whether it is 0, its
largest value, or in between (the carries of ±1 on the mixed radix), so the instances fall into
at most 3^loops classes of equal behaviour, whatever the extents."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.costmodel.distinct_sums import Step, count_reached, distinct_sums

_ZERO, _MIDDLE, _TOP = 0, 1, 2


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
    """The instances of one spatial fan-out, laid on a mesh `mesh_x` wide (the ratio of the
    child's mesh X to the parent's), and how links change what the parent sends."""

    def __init__(self, loops: Sequence[FanoutLoop], mesh_x: int):
        # The linear index runs over the loops innermost first, as the nest has them
        # (Timeloop's mappings always put a level's X loops inside its Y loops).
        self.loops = list(loops)
        x_loops = [lp for lp in loops if lp.axis == "X"]
        self.instances = math.prod(lp.extent for lp in self.loops)
        self.groups = distinct_sums([lp.extent for lp in self.loops], [lp.step for lp in self.loops])
        # A mesh row holds H = max(mesh X, fan-out X) consecutive instances. When H is where
        # a digit of the linear index starts, or inside a digit whose extent it divides (the
        # digit is then split in two: the same instances and offsets), h and v are digits.
        row = max(mesh_x, math.prod(lp.extent for lp in x_loops))
        self.row_digits: int | None = None
        width = 1
        for count, loop in enumerate(self.loops):
            if width == row:
                self.row_digits = count
                break
            if width * loop.extent > row and row % width == 0 and loop.extent % (row // width) == 0:
                inner = row // width
                split = [
                    FanoutLoop(inner, loop.axis, loop.step),
                    FanoutLoop(loop.extent // inner, loop.axis, tuple(inner * d for d in loop.step)),
                ]
                self.loops[count : count + 1] = split
                self.row_digits = count + 1
                break
            width *= loop.extent
        else:
            if width <= row:
                self.row_digits = len(self.loops)
        self.row = row
        self._cache: dict[Step, LinkStats] = {}

    def stats(self, move: Step) -> LinkStats:
        """What links do when consecutive deltas differ by `move`."""
        cached = self._cache.get(move)
        if cached is None:
            cached = self._cache[move] = self._stats(move)
        return cached

    def _stats(self, move: Step) -> LinkStats:
        if not self.loops:
            return LinkStats(False, 0, 1)
        if self.row_digits is None:
            if move not in self._possible_offsets():
                return LinkStats(False, 0, self.groups)
            raise ValueError(
                "a mesh row ends inside a loop of the fan-out (the fan-out's X size times a "
                "prefix of its Y loops is not the mesh's X size)"
            )
        classes = [_classes(lp.extent) for lp in self.loops]
        linked_count = 0
        unlinked: list[tuple[int, ...]] = []
        for cell in itertools.product(*classes):
            size = math.prod(_class_size(c, lp.extent) for c, lp in zip(cell, self.loops, strict=True))
            if self._linked(cell, move):
                linked_count += size
            else:
                unlinked.append(cell)
        groups = self._distinct_over(unlinked)
        if groups < self.groups:
            return LinkStats(True, linked_count, groups)
        return LinkStats(False, 0, self.groups)

    def _possible_offsets(self) -> set[Step]:
        """Every offset between mesh neighbours (±1 and ± a row), wherever they are."""
        offsets: set[Step] = set()
        for c in range(len(self.loops)):
            cell = tuple([_TOP] * c + [_ZERO] + [_ZERO] * (len(self.loops) - c - 1))
            step = _neighbour_offset(cell, self.loops, _TOP)
            if step is not None:
                offsets.update({step, tuple(-d for d in step)})
        for step in _offsets_of_adding(self.row, self.loops):
            offsets.update({step, tuple(-d for d in step)})
        return offsets

    def _linked(self, cell: tuple[int, ...], move: Step) -> bool:
        x = self.row_digits
        assert x is not None
        for low, high in ((0, x), (x, len(self.loops))):
            digits, loops = cell[low:high], self.loops[low:high]
            if not loops:
                continue
            up = _neighbour_offset(digits, loops, _TOP)
            if up is not None and up == move:
                return True
            down = _neighbour_offset(digits, loops, _ZERO)
            if down is not None and tuple(-d for d in down) == move:
                return True
        return False

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


def _neighbour_offset(
    digits: tuple[int, ...], loops: Sequence[FanoutLoop], saturated: int
) -> Step | None:
    """Offset of the next instance along these digits (`saturated` _TOP: +1, carrying over
    digits at their top; _ZERO: the previous instance's offset negated, borrowing over digits
    at 0), or None at the edge of the mesh."""
    offset = tuple(0 for _ in loops[0].step)
    for digit, loop in zip(digits, loops, strict=True):
        if digit != saturated:
            return tuple(o + s for o, s in zip(offset, loop.step, strict=True))
        offset = tuple(o - (loop.extent - 1) * s for o, s in zip(offset, loop.step, strict=True))
    return None


def _offsets_of_adding(amount: int, loops: Sequence[FanoutLoop]) -> set[Step]:
    """The offsets `S(i + amount) - S(i)` over all i with `i + amount` still an instance:
    one per feasible pattern of carries when `amount` is added digit by digit."""
    digits = []
    for loop in loops:
        digits.append(amount % loop.extent)
        amount //= loop.extent
    if amount:
        return set()
    rank = len(loops[0].step)
    patterns: set[tuple[Step, int]] = {(tuple(0 for _ in range(rank)), 0)}
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
