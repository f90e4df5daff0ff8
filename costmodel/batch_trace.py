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
    loops, rows = extents.shape
    if not loops:
        return size.copy()
    shifts = carry_shifts(extents, moves)
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
