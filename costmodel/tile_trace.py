"""What moving a child's tile under the temporal loops above it costs, per parent instance:
the words the child fetches, the words its parent sends (once per distinct delta of its
spatial fan-out, or fewer when neighbours pass deltas over links) and the link transfers.

Timeloop samples each temporal loop at iterations 0 and 1 only, iteration 1 standing for the
other `extent - 1` (temporal extrapolation), so the calls form a ruler sequence: sweeping loops
1..q is sweeping 1..q-1, loop q advancing, and sweeping 1..q-1 again, `extent_q - 1` times over.
What a step costs depends on the tile's state (the move it last kept its overlap under, and
the shape of its last delta) and on the step's move; a sweep from a given state always ends in
the same state, so each (q, state) pair is evaluated once: the cost depends on the number of
loops, never on their extents.

Deltas, as Timeloop computes them (OperationSpace::SaveAndSubtractIfSameStride):
- the first tile is fetched whole;
- a move equal to the remembered one (or the first move) fetches the slid-in part (none if the
  tile stays put) and is remembered;
- any other move fetches the whole tile and forgets the remembered move.
In Timeloop's releases (up to v3.0.3, which made the published reference outputs) a tile
staying put is a move like any other (so a later real move refetches everything); on its
master since PR #297 (January 2025, `stationary_fix`) staying put changes nothing."""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.costmodel.distinct_sums import Step
from einsum_opt.costmodel.link_transfers import Fanout

Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class TraceTotals:
    """Per parent instance over all the calls: words the child fetches, words the parent
    sends (content accesses), words the child instances receive from it (multicast
    destinations counted), words passed over links."""

    fills: int
    sends: int
    received: int
    links: int


@functools.lru_cache(maxsize=16384)
def walk_trace(
    box: tuple[int, ...] | None,
    trace: tuple[tuple[int, Step], ...],
    fanout: Fanout | None,
    stationary_fix: bool,
    link_transfers: bool,
) -> TraceTotals:
    """The totals for a child tile of sides `box` (None: the compute units, which take one
    operand per compute and keep nothing) moved by `trace` (extent, move) innermost first,
    feeding the spatial `fanout` of its parent (None: no fan-out). A pure function of its
    arguments, so the results are kept: mappings that share a level's loops share its walk."""
    groups = fanout.groups if fanout is not None else 1
    instances = fanout.instances if fanout is not None else 1
    if not link_transfers or fanout is None or not fanout.loops:
        fills = _fills_only(box, trace, stationary_fix)
        return TraceTotals(fills, fills * groups, fills * instances, 0)
    return _Walk(box, trace, fanout, stationary_fix).run()


def _carries(trace: Sequence[tuple[int, Step]], rank: int) -> list[tuple[int, Step]]:
    """(extent, shift) per loop: the tile's shift when the loop advances and the loops inside
    it go back from iteration 1 to 0."""
    carries: list[tuple[int, Step]] = []
    inner: Step = (0,) * rank
    for extent, move in trace:
        carries.append((extent, tuple(map(operator.sub, move, inner))))
        inner = tuple(map(operator.add, move, inner))
    return carries


def slid_in(box: tuple[int, ...], move: Step) -> int:
    """Words of a box moved by `move` that the box did not hold before."""
    kept = 1
    for side, d in zip(box, move, strict=True):
        rest = side - d if d > 0 else side + d
        if rest <= 0:
            return math.prod(box)
        kept *= rest
    return math.prod(box) - kept


_MISS = object()


def _fills_only(
    box: tuple[int, ...] | None, trace: Sequence[tuple[int, Step]], stationary_fix: bool
) -> int:
    """Words the child fetches over the trace (no fan-out to track)."""
    if box is None:
        return math.prod(extent for extent, _ in trace)
    size = math.prod(box)
    carries = _carries(trace, len(box))
    memo: list[dict[Step | None, tuple[int, Step | None]]] = [{} for _ in carries]

    def sweep(q: int, state: Step | None) -> tuple[int, Step | None]:
        table = memo[q]
        found = table.get(state, _MISS)
        if found is not _MISS:
            return found  # type: ignore[return-value]
        before, current = sweep(q - 1, state) if q else (0, state)
        extent, shift = carries[q]
        fetched, current, _ = _advance(box, size, current, shift, stationary_fix)
        after, current = sweep(q - 1, current) if q else (0, current)
        table[state] = result = (before + (extent - 1) * (fetched + after), current)
        return result

    return size + (sweep(len(carries) - 1, None)[0] if carries else 0)


def _advance(
    box: tuple[int, ...], size: int, state: Step | None, shift: Step, stationary_fix: bool
) -> tuple[int, Step | None, Step | None]:
    """(words fetched, new remembered move, the shift the delta slid by or None when the
    whole tile came) for one step of the tile."""
    moving = any(shift)
    if stationary_fix and not moving:
        return 0, state, shift
    if state is None:
        return (slid_in(box, shift) if moving else 0), shift, shift
    if shift == state:
        return (slid_in(box, shift) if moving else 0), state, shift
    return size, None, None


class _Walk:
    """The sweep with the shapes of the deltas tracked, for the link transfers of a fan-out.

    A delta's shape is an id: 0 nothing, 1 the whole tile, then one per slide seen; each has
    an anchor (its lowest corner relative to the tile) and a shape class (its boxes relative
    to the anchor), so two deltas are translates when their classes agree, by the tile's
    shift plus the difference of their anchors."""

    def __init__(
        self,
        box: tuple[int, ...] | None,
        trace: Sequence[tuple[int, Step]],
        fanout: Fanout,
        stationary_fix: bool,
    ):
        rank = len(fanout.loops[0].step)
        self.box = box
        self.size = 1 if box is None else math.prod(box)
        self.carries = _carries(trace, rank)
        self.fanout = fanout
        self.stationary_fix = stationary_fix
        self.memo: dict[tuple[int, Step | None, int], tuple[tuple[int, ...], Step | None, int]] = {}
        zero = (0,) * rank
        self.anchors: list[Step] = [zero, zero]
        self.classes: list[int] = [0, 1]
        self.class_ids: dict[frozenset[Box], int] = {
            frozenset({tuple((0, side) for side in (box or (1,) * rank))}): 1
        }
        self.slides: dict[Step, int] = {}

    def run(self) -> TraceTotals:
        fanout = self.fanout
        first = (self.size, self.size * fanout.groups, self.size * fanout.instances, 0)
        totals, _, _ = self.sweep(len(self.carries), None, 1)
        return TraceTotals(*(a + b for a, b in zip(first, totals, strict=True)))

    def sweep(
        self, q: int, state: Step | None, last: int
    ) -> tuple[tuple[int, ...], Step | None, int]:
        if q == 0:
            return (0, 0, 0, 0), state, last
        key = (q, state, last)
        found = self.memo.get(key)
        if found is None:
            before, state, last = self.sweep(q - 1, state, last)
            extent, shift = self.carries[q - 1]
            step, state, last = self.step(state, last, shift)
            after, state, last = self.sweep(q - 1, state, last)
            times = extent - 1
            totals = (
                before[0] + times * (step[0] + after[0]),
                before[1] + times * (step[1] + after[1]),
                before[2] + times * (step[2] + after[2]),
                before[3] + times * (step[3] + after[3]),
            )
            found = self.memo[key] = (totals, state, last)
        return found

    def step(
        self, state: Step | None, last: int, shift: Step
    ) -> tuple[tuple[int, int, int, int], Step | None, int]:
        if self.box is None:  # compute units: the operand, no reuse
            fetched, delta = 1, 1
        else:
            fetched, state, slid = _advance(self.box, self.size, state, shift, self.stationary_fix)
            if fetched == 0:
                delta = 0
            elif slid is None:
                delta = 1
            else:
                delta = self._slid(slid)
        fanout = self.fanout
        if fetched and last and self.classes[last] == self.classes[delta]:
            earlier, later = self.anchors[last], self.anchors[delta]
            move = tuple(s + a - b for s, a, b in zip(shift, later, earlier, strict=True))
            stats = fanout.stats(move)
            if stats.used:
                linked = fetched * stats.linked
                return (
                    (fetched, fetched * stats.groups, fetched * fanout.instances - linked, linked),
                    state,
                    delta,
                )
        return (fetched, fetched * fanout.groups, fetched * fanout.instances, 0), state, delta

    def _slid(self, shift: Step) -> int:
        """The id of the delta of the tile moved by `shift`: the box minus the box before the
        move, cut into boxes as Timeloop cuts it."""
        found = self.slides.get(shift)
        if found is None:
            assert self.box is not None
            here = tuple((0, side) for side in self.box)
            before = tuple((-d, side - d) for side, d in zip(self.box, shift, strict=True))
            pieces = box_difference(here, before)
            anchor = tuple(min(p[d][0] for p in pieces) for d in range(len(self.box)))
            shape = frozenset(
                tuple((lo - a, hi - a) for (lo, hi), a in zip(p, anchor, strict=True))
                for p in pieces
            )
            found = self.slides[shift] = len(self.anchors)
            self.anchors.append(anchor)
            self.classes.append(self.class_ids.setdefault(shape, len(self.class_ids) + 1))
        return found


def box_difference(a: Box, b: Box) -> list[Box]:
    """`a` minus `b` as disjoint boxes: per dimension, the slices of `a` below and above `b`
    (Timeloop's AxisAlignedHyperRectangle::MultiSubtract)."""
    if any(bh <= al or ah <= bl for (al, ah), (bl, bh) in zip(a, b, strict=True)):
        return [a]
    pieces: list[Box] = []
    middle = list(a)
    for rank, (bl, bh) in enumerate(b):
        low, high = middle[rank]
        if low < bl:
            pieces.append((*middle[:rank], (low, bl), *middle[rank + 1 :]))
            low = bl
        if bh < high:
            pieces.append((*middle[:rank], (bh, high), *middle[rank + 1 :]))
            high = bh
        middle[rank] = (low, high)
    return pieces
