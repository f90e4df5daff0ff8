"""`nest_occupancy`'s total over many candidates at once (`occupancy_totals`).

Candidates of one kernel often share its touches' structure (which nest touches which tensor,
reading or writing) and differ only in the words of their tiles. For such a batch, the items
`share_space` allocates come in one order (`buffers.production_order`); only their sizes, and
so the allocator's choices, differ from row to row. The allocator is simulated on arrays of
allocations, one row per candidate: the free ones (their last reader has run, or in place:
this reader's output has the same size), the first smallest that fits (`np.argmin`, like
`sorted(...)[0]`, keeps the first of equals), else the first largest free one (`np.argmax`,
like `max`), grown, else a new one. Allocations are numbered in the order they are made, as
`share_space` lists them. (Which of several equal free allocations is taken cannot change a
total, since all of them are free from then on, but the choice is the scalar's all the same.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from einsum_opt.lowering.buffers import Touch, TouchShape, nest_occupancy, production_order
from einsum_opt.support.int64_rows import INT64_MAX, fill_rows, int64_array, rows_within

_Key = tuple[tuple[tuple[tuple[str, bool, bool], ...], ...], frozenset[str]]


@dataclass(frozen=True)
class _Item:
    """One item `share_space` allocates: the touch columns whose largest word count is its
    size (empty for an item that only reads), the index of its tensor's last reader (or its
    own), whether it may take its operand's place and, per earlier item, whether it reads that
    item's tensor."""

    columns: tuple[int, ...]
    end: int
    in_place: bool
    reads_item: np.ndarray


@dataclass(frozen=True)
class _Plan:
    """The allocation items of one touch structure, in order."""

    shapes: tuple[tuple[TouchShape, ...], ...]
    persistent: frozenset[str]
    items: tuple[_Item, ...]
    touches: int
    allocatable: int

    @staticmethod
    def of(groups: Sequence[Sequence[TouchShape]], persistent: frozenset[str]) -> _Plan:
        order = production_order(groups)
        columns: dict[str, list[int]] = {}
        for column, t in enumerate(t for group in groups for t in group):
            columns.setdefault(t.tensor, []).append(column)
        last: dict[str, int] = {}
        for i, (_, reads, _) in enumerate(order):
            for name in reads:
                last[name] = i
        for name in persistent:
            last[name] = len(order)
        items = []
        for i, (tensor, reads, in_place) in enumerate(order):
            reads_item = np.array([t in reads for t, _, _ in order], dtype=bool)
            if tensor is None:
                items.append(_Item((), i, False, reads_item))
            else:
                end = max(last.get(tensor, i), i)
                items.append(_Item(tuple(columns[tensor]), end, in_place, reads_item))
        return _Plan(
            tuple(tuple(group) for group in groups),
            persistent,
            tuple(items),
            sum(len(group) for group in groups),
            sum(1 for item in items if item.columns),
        )

    def totals(self, words: np.ndarray) -> np.ndarray:
        """The words of every row's allocations together."""
        rows = words.shape[0]
        out = np.zeros(rows, dtype=np.int64)
        # Within these bounds no allocation nor their total exceeds int64 (and sizes stay
        # below the sentinels of the arg-min and arg-max).
        fast = rows_within(words, 0, (INT64_MAX - 1) // max(self.touches, 1))
        fill_rows(out, np.flatnonzero(~fast), lambda r: self._scalar(words[r]))
        if fast.all():
            out[:] = self._fast(words)
        elif fast.any():
            out[fast] = self._fast(words[fast])
        return out

    def _scalar(self, words: np.ndarray) -> int:
        values = iter(words.tolist())
        groups = [
            [Touch(0, t.tensor, t.writes, next(values), t.accumulates) for t in group]
            for group in self.shapes
        ]
        return sum(nest_occupancy(groups, self.persistent).values())

    def _fast(self, words: np.ndarray) -> np.ndarray:
        """The totals of rows within the bounds: `share_space` on arrays of allocations
        (their sizes, the index of their tensor's last reader, the item they hold now)."""
        rows = words.shape[0]
        width = max(self.allocatable, 1)
        sizes = np.zeros((rows, width), dtype=np.int64)
        ends = np.zeros((rows, width), dtype=np.int64)
        holders = np.zeros((rows, width), dtype=np.intp)
        made = np.zeros(rows, dtype=np.intp)
        slot = np.arange(width)
        k = 0  # allocations any row may have made so far
        for i, item in enumerate(self.items):
            if not item.columns:
                continue
            size = words[:, list(item.columns)].max(axis=1)
            if k == 0:
                chosen = np.zeros(rows, dtype=np.intp)
                new = np.ones(rows, dtype=bool)
            else:
                have, held, end = sizes[:, :k], holders[:, :k], ends[:, :k]
                wanted = size[:, None]
                released = end < i
                if item.in_place:  # or freed at this reader, which writes over it
                    released |= (end == i) & item.reads_item[held] & (have == wanted)
                free = released & (slot[:k] < made[:, None])
                fits = free & (have >= wanted)
                smallest = np.where(fits, have, INT64_MAX).argmin(axis=1)
                largest = np.where(free, have, -1).argmax(axis=1)
                new = np.asarray(~free.any(axis=1))
                chosen = np.where(fits.any(axis=1), smallest, np.where(new, made, largest))
            taking = np.flatnonzero(size != 0)  # an item of size 0 is stored elsewhere
            at = chosen[taking]
            sizes[taking, at] = np.maximum(sizes[taking, at], size[taking])
            ends[taking, at] = item.end
            holders[taking, at] = i
            made[taking] += new[taking]
            k += 1
        return sizes.sum(axis=1)


_PLANS: dict[_Key, _Plan] = {}


def occupancy_totals(
    groups: Sequence[Sequence[TouchShape]],
    words: object,
    persistent: frozenset[str] = frozenset(),
) -> np.ndarray:
    """For each row r of `words` (N rows, one int column per touch of `groups`, group by
    group): `sum(nest_occupancy(groups with words[r], persistent).values())`, the words a
    level holds at its peak. `groups` gives the touches nest by nest (their tensor, whether
    they write it, whether they accumulate; a `Touch`'s words and nest are not read).

    Exact: rows with negative words or words so large that int64 could overflow are costed by
    `nest_occupancy` itself; an OverflowError when a total does not fit in int64. Tensor names
    must not contain `, ` (allocations are keyed by their tensors' names joined by it)."""
    key: _Key = (
        tuple(tuple((t.tensor, t.writes, t.accumulates) for t in group) for group in groups),
        persistent,
    )
    plan = _PLANS.get(key)
    if plan is None:
        if any(", " in t.tensor for group in groups for t in group):
            raise ValueError("occupancy_totals: a tensor name contains ', '")
        if len(_PLANS) > 10_000:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan.of(groups, persistent)
    table = int64_array(words, "occupancy_totals: words", 2)
    if table.shape[1] != plan.touches:
        raise ValueError(
            f"occupancy_totals: words has {table.shape[1]} columns for {plan.touches} touches"
        )
    return plan.totals(table)
