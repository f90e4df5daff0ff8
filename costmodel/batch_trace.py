"""`tile_trace`'s fills without a fan-out to track (`_fills_only`), over many rows of extents
at once: the ruler-sequence walk as a dynamic programme over (loop, state).

A tile's state is the move it remembers: none, or a carry shift. Over a row, the carry shifts
of the trace are vectors whose equalities are boolean arrays, so state `j` stands for "equal to
carry j's shift" and the state "none" gets the id `len(trace)`. For every loop q and every
start state the programme keeps, per row, the words fetched by sweeping loops 0..q and the
state it ends in; a sweep's second half starts from a state that differs per row, read with a
gather. A loop of extent 1 (which the scalar walk drops) sweeps as its inner loops do and its
move counts for nothing."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from einsum_opt.costmodel.batch_nest import Bools, Ints

Vectors = npt.NDArray[np.int64]
"""Moves or shifts: shape (..., tensor rank, rows)."""


def carry_shifts(extents: Ints, moves: Vectors) -> Vectors:
    """Per loop (extents (loops, rows), moves (loops, rank, rows), innermost first), the
    tile's shift when the loop advances and the loops inside it (of extent > 1) go back from
    iteration 1 to 0: the move minus the moves of the counted loops inside."""
    counted = np.where((extents > 1)[:, None, :], moves, 0)
    inner = np.cumsum(counted, axis=0) - counted
    return moves - inner


def slid_in(box: Vectors, size: Ints, shifts: Vectors) -> Ints:
    """Per shift (shifts (loops, rank, rows)), words of the box (rank, rows) moved by it that
    it did not hold before (the whole box when a side does not overlap)."""
    rest = box[None] - np.abs(shifts)
    kept = np.prod(np.maximum(rest, 0), axis=1)
    return np.where(np.any(rest <= 0, axis=1), size[None], size[None] - kept)


def pairwise_equal(shifts: Vectors) -> Bools:
    """(loops, loops, rows): where shift q equals shift j."""
    return np.all(shifts[:, None] == shifts[None, :], axis=2)


def fills(box: Vectors, size: Ints, extents: Ints, moves: Vectors, stationary_fix: bool) -> Ints:
    """Words a child tile of sides `box` fetches over the trace (extents (loops, rows), moves
    (loops, rank, rows), innermost first), per row; exact while size × the trace's
    iterations fits int64."""
    return fills_of_shifts(box, size, extents, carry_shifts(extents, moves), stationary_fix)


def fills_of_shifts(
    box: Vectors, size: Ints, extents: Ints, shifts: Vectors, stationary_fix: bool
) -> Ints:
    """`fills` from the trace's carry shifts (`carry_shifts`)."""
    loops, rows = extents.shape
    if not loops:
        return size.copy()
    if not stationary_fix:
        return _fills_two_classes(box, size, extents, shifts)
    moving = np.any(shifts != 0, axis=1)
    slid = np.where(moving, slid_in(box, size, shifts), 0)
    equal = pairwise_equal(shifts)
    none = loops
    states = loops + 1
    columns = np.arange(rows)
    count = np.zeros((states, rows), dtype=np.int64)
    end = np.broadcast_to(np.arange(states)[:, None], (states, rows)).copy()
    same = np.zeros((states, rows), dtype=bool)
    for q in range(loops):
        same[:loops] = equal[q]
        current = end
        is_none = current == none
        is_same = same[current, columns]
        fetched = np.where(is_none | is_same, slid[q], size)
        state = np.where(is_none, q, np.where(is_same, current, none))
        if stationary_fix:
            fetched = np.where(moving[q], fetched, 0)
            state = np.where(moving[q], state, current)
        after = count[state, columns]
        final = end[state, columns]
        advances = extents[q] > 1
        count = np.where(advances, count + (extents[q] - 1) * (fetched + after), count)
        end = np.where(advances, final, current)
    return size + count[none]


def _fills_two_classes(box: Vectors, size: Ints, extents: Ints, shifts: Vectors) -> Ints:
    """`fills` where every step moves or refetches (`stationary_fix` False), in time linear
    in the loops: after any step of loop q the tile remembers carry q's shift or nothing, so
    a sweep of loops 0..q always ends on the step of its innermost advancing loop m, and its
    start state matters only through that first step, which either keeps the window (nothing
    remembered, or carry m's shift) or refetches. Per row the programme keeps, for both
    kinds of start, the words fetched and whether the sweep ends remembering nothing."""
    loops, rows = extents.shape
    moving = np.any(shifts != 0, axis=1)
    slid = np.where(moving, slid_in(box, size, shifts), 0)
    zero = np.zeros(rows, dtype=np.int64)
    # (count, ends forgetting) of sweeping loops 0..q from a keeping / a refetching start.
    keep_count, keep_forgets = zero, np.zeros(rows, dtype=bool)
    refetch_count, refetch_forgets = zero, np.zeros(rows, dtype=bool)
    innermost = np.zeros(shifts.shape[1:], dtype=np.int64)  # carry m's shift
    found = np.zeros(rows, dtype=bool)  # whether some loop 0..q advances
    for q in range(loops):
        advances = extents[q] > 1
        times = extents[q] - 1
        # The first advancing loop: its steps are the first of every sweep.
        first = advances & ~found
        keep_first = times * slid[q]
        refetch_first = times * size
        # A loop outside m: sweep inside, step, sweep inside again from the step's state.
        like_m = np.all(shifts[q] == innermost, axis=0)
        outer = {}
        for start, (count, forgets) in (
            ("keep", (keep_count, keep_forgets)),
            ("refetch", (refetch_count, refetch_forgets)),
        ):
            keeps = forgets | like_m
            fetched = np.where(keeps, slid[q], size)
            # After the step: carry q's shift (a keeping start for m when it equals m's) or
            # nothing (keeping).
            after = np.where(keeps, np.where(like_m, keep_count, refetch_count), keep_count)
            after_forgets = np.where(
                keeps, np.where(like_m, keep_forgets, refetch_forgets), keep_forgets
            )
            outer[start] = (count + times * (fetched + after), after_forgets)
        keep_count = np.where(first, keep_first, np.where(advances, outer["keep"][0], keep_count))
        keep_forgets = np.where(first, False, np.where(advances, outer["keep"][1], keep_forgets))
        refetch_count = np.where(
            first, refetch_first, np.where(advances, outer["refetch"][0], refetch_count)
        )
        refetch_forgets = np.where(
            first, True, np.where(advances, outer["refetch"][1], refetch_forgets)
        )
        innermost = np.where(first, shifts[q], innermost)
        found |= advances
    return size + keep_count
