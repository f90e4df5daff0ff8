"""Which rows of a batch might have link transfers at a level's fan-out (conservatively): the
rows the batch analysis leaves to the scalar `analyze`.

`tile_trace._Walk` passes a delta over a link only when the move between two consecutive
deltas of the same shape (`shift + anchor(delta) − anchor(previous delta)`) is the offset to a
mesh neighbour, ± a carry offset of the row digits or of the column digits of the fan-out
(`link_transfers.Fanout._patterns`). A delta is nothing, the whole tile (anchor 0) or the part
a carry shift slid in; the part slid in by a shift that leaves the tile overlapping has its
anchor at 0 except along its only moving dimension when that move is positive
(`side − shift` there; see `tile_trace.box_difference`). So every move that could be tested is
a carry shift, or a carry shift plus the difference of two such anchors; a row none of whose
candidates equals a neighbour offset has no link transfer, and its walk is `_fills_only`'s.
Rows whose mesh rows end inside a digit the row width does not divide (where `Fanout.stats`
may raise) are reported too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from einsum_opt.costmodel.batch_nest import Bools, Ints
from einsum_opt.costmodel.batch_trace import Vectors, pairwise_equal

Digit = tuple[Ints, Vectors]
"""A digit of the fan-out's instance index: extent per row and step (rank, rows)."""


def _digits(
    fan: Sequence[tuple[Ints, str, Vectors]], mesh_x: int, rows: int
) -> tuple[list[Digit], list[Digit], Bools]:
    """The fan-out's digits on the mesh (loops innermost first, `Fanout._split_rows`): the row
    digits and the column digits, and the rows where a row ends inside a digit it does not
    divide."""
    x_size = np.ones(rows, dtype=np.int64)
    for extent, axis, _ in fan:
        if axis == "X":
            x_size = x_size * extent
    row = np.maximum(x_size, mesh_x)
    width = np.ones(rows, dtype=np.int64)
    bad = np.zeros(rows, dtype=bool)
    row_digits: list[Digit] = []
    column_digits: list[Digit] = []
    for extent, _, step in fan:
        done = width == row
        whole = ~done & (width * extent <= row)
        split = ~done & ~whole
        inner = row // width
        divides = (row % width == 0) & (extent % np.maximum(inner, 1) == 0)
        bad |= split & ~divides
        in_row = np.where(whole, extent, np.where(split & divides, inner, 1))
        row_digits.append((in_row, step))
        column_digits.append((extent // in_row, in_row * step))
        width = np.where(whole, width * extent, np.where(split, row, width))
    return row_digits, column_digits, bad


def _neighbour_offsets(digits: list[Digit]) -> list[tuple[Vectors, Bools]]:
    """± the offset from an instance to the next when its first c digits are at their top
    (`link_transfers._carry_offsets`), for the digits of extent > 1."""
    offsets: list[tuple[Vectors, Bools]] = []
    carried: Vectors | None = None
    for extent, step in digits:
        offset = step if carried is None else carried + step
        offsets += [(offset, extent > 1), (-offset, extent > 1)]
        carried = (0 if carried is None else carried) - (extent - 1) * step
    return offsets


def _offsets_of_adding(
    amount: Ints, fan: Sequence[tuple[Ints, str, Vectors]], rows: int
) -> list[tuple[Vectors, Bools]]:
    """The offsets `S(i + amount) − S(i)` over the instances i with `i + amount` one too
    (`link_transfers._offsets_of_adding`): one per feasible pattern of carries when `amount`
    is added digit by digit, each pattern enumerated with the rows where it is feasible."""
    digits = []
    rest = amount.copy()
    for extent, _, _ in fan:
        digits.append(rest % extent)
        rest = rest // extent
    fits = rest == 0
    found: list[tuple[Vectors, Bools]] = []
    loops = len(fan)
    for pattern in range(2 ** max(loops - 1, 0)):
        carries = [0] + [(pattern >> k) & 1 for k in range(loops - 1)] + [0]
        feasible = fits.copy()
        offset = np.zeros_like(fan[0][2])
        for k, (extent, _, step) in enumerate(fan):
            carry_in, carry_out = carries[k], carries[k + 1]
            total = digits[k] + carry_in
            feasible &= total >= 1 if carry_out else total <= extent - 1
            offset = offset + (total - extent * carry_out) * step
        found += [(offset, feasible), (-offset, feasible)]
    return found


_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93)


def _fingerprints(vectors: Vectors) -> np.ndarray:
    """A 64-bit linear fingerprint per vector (..., rank, rows) → (..., rows): equal vectors
    have equal fingerprints (distinct ones almost never do, and a coincidence only makes a
    row look as if it might link)."""
    rank = vectors.shape[-2]
    weights = np.array(
        [_MIX[r % len(_MIX)] * (2 * (r // len(_MIX)) + 1) % 2**64 for r in range(rank)],
        dtype=np.uint64,
    )
    with np.errstate(over="ignore"):
        keys = np.sum(vectors.astype(np.uint64) * weights[:, None], axis=-2, dtype=np.uint64)
    return np.asarray(keys)


def _member(keys: np.ndarray, offsets: Vectors, real: Bools) -> Bools:
    """Where each move, given by its fingerprint (..., rows), may be one of the offsets
    (offsets, rank, rows) that exist (`real`, (offsets, rows))."""
    known = np.where(real, _fingerprints(offsets), np.uint64(0))
    present = (keys[..., None, :] == known) & real
    return np.any(present, axis=-2)


def _anchors(box: Vectors, shifts: Vectors) -> tuple[Vectors, Bools]:
    """Per shift, the lowest corner of the part it slides in, and where the tile keeps an
    overlap (elsewhere the whole tile comes, anchored at 0)."""
    nonzero = shifts != 0
    alone = nonzero & (np.sum(nonzero, axis=1) == 1)[:, None, :]
    anchors = np.where(alone & (shifts > 0), box[None] - shifts, 0)
    overlapping = np.any(nonzero, axis=1) & np.all(box[None] - np.abs(shifts) > 0, axis=1)
    return anchors, overlapping


def may_link(
    box: Vectors | None,
    extents: Ints,
    shifts: Vectors,
    fan: Sequence[tuple[Ints, str, Vectors]],
    mesh_x: int,
    stationary_fix: bool,
) -> Bools:
    """Rows whose walk of a child tile `box` (None: the compute units) under the trace
    (extents (loops, rows) and carry shifts (loops, rank, rows), innermost first) might pass a delta
    over a link of the fan-out `fan` ((extent, axis, step) innermost first) laid on a mesh
    `mesh_x` wide: rows where the walk compares two deltas of the same shape whose move is a
    neighbour offset."""
    rows = extents.shape[1]
    loops = extents.shape[0]
    row_digits, column_digits, unsplit = _digits(fan, mesh_x, rows)
    if not loops:
        return np.zeros(rows, dtype=bool)
    # Where the mesh rows do not split at a digit, `Fanout.stats` raises for a move that is
    # an offset between any two mesh neighbours, and is plain for any other.
    neighbours = _neighbour_offsets(row_digits) + _neighbour_offsets(column_digits)
    x_size = np.prod(
        np.stack([e for e, axis, _ in fan if axis == "X"] or [np.ones(rows, dtype=np.int64)]),
        axis=0,
    )
    anywhere = _neighbour_offsets([(e, step) for e, _, step in fan])
    anywhere += _offsets_of_adding(np.maximum(x_size, mesh_x), fan, rows)
    advancing = extents > 1

    def member(keys: np.ndarray) -> Bools:
        near = _member(
            keys, np.stack([o for o, _ in neighbours]), np.stack([r for _, r in neighbours])
        )
        if not np.any(unsplit):
            return near
        far = _member(keys, np.stack([o for o, _ in anywhere]), np.stack([r for _, r in anywhere]))
        return np.where(unsplit, far, near)

    shift_keys = _fingerprints(shifts)
    whole = member(shift_keys) & advancing
    if box is None:  # every delta is a whole operand
        return np.any(whole, axis=0)
    anchors, overlapping = _anchors(box, shifts)
    # Moves between two partial slides, for the loops that slide partially in some row.
    partial = overlapping & advancing
    sliding = np.flatnonzero(np.any(partial, axis=1))
    slides = np.zeros((loops, loops, rows), dtype=bool)
    if sliding.size:
        anchor_keys = _fingerprints(anchors[sliding])
        with np.errstate(over="ignore"):  # fingerprints are linear modulo 2**64
            moved = (shift_keys[sliding] + anchor_keys)[:, None] - anchor_keys[None, :]
        found = member(moved) & partial[sliding][None, :] & partial[sliding][:, None]
        slides[np.ix_(sliding, sliding)] = found
    candidate = np.any(whole, axis=0) | np.any(slides, axis=(0, 1))
    subset = np.flatnonzero(candidate)
    result = np.zeros(rows, dtype=bool)
    if subset.size:
        walk = (shifts[..., subset], extents[:, subset], overlapping[:, subset])
        tests = (whole[:, subset], slides[..., subset])
        if stationary_fix:
            result[subset] = _walk_compares_stationary(*walk, *tests)
        else:
            result[subset] = _walk_compares_two_classes(*walk, *tests)
    return result


def _walk_compares_two_classes(
    shifts: Vectors,
    extents: Ints,
    overlapping: Bools,
    whole: Bools,
    slides: Bools,
) -> Bools:
    """`_walk_compares_stationary` where every step moves or refetches (`stationary_fix` False), in
    time linear in the loops, as `batch_trace._fills_two_classes`: a sweep of loops 0..q
    starts on the step of its innermost advancing loop m (from a start that keeps the window
    or refetches) and ends on it, so per row and kind of start the programme keeps whether a
    comparison after the first step matches, whether the sweep ends remembering nothing, and
    the kind of its last delta (nothing 0, whole 1, m's partial slide 2); the comparison of a
    sweep's first step with the delta before it is made by the loop outside."""
    loops, rows = extents.shape
    columns = np.arange(rows)
    moving = np.any(shifts != 0, axis=1)
    false = np.zeros(rows, dtype=bool)
    zero = np.zeros(rows, dtype=np.int64)
    hit = {"keep": false, "refetch": false}
    forgets = {"keep": false, "refetch": false}
    last = {"keep": zero, "refetch": zero}
    first = {"keep": zero, "refetch": zero}  # the kind of m's delta from each start
    innermost = np.zeros(shifts.shape[1:], dtype=np.int64)
    m = zero
    found = false
    for q in range(loops):
        advances = extents[q] > 1
        starts = advances & ~found
        like_m = np.all(shifts[q] == innermost, axis=0)
        slid_after_m = slides[q][m, columns]  # from m's partial slide to q's
        slid_before_m = slides[m, q, columns]  # from q's partial slide to m's
        outer_hit, outer_forgets, outer_last = {}, {}, {}
        for start in ("keep", "refetch"):
            keeps = forgets[start] | like_m
            fetched = ~keeps | moving[q]
            partial = fetched & keeps & overlapping[q]
            whole_tile = fetched & ~partial
            compares = ((last[start] == 1) & whole_tile & whole[q]) | (
                (last[start] == 2) & partial & slid_after_m
            )
            then = np.where(keeps & ~like_m, 0, 1)  # 1: the next sweep starts keeping
            kind = np.where(then == 1, first["keep"], first["refetch"])
            compares |= (whole_tile & (kind == 1) & whole[m, columns]) | (
                partial & (kind == 2) & slid_before_m
            )
            outer_hit[start] = (
                hit[start] | compares | np.where(then == 1, hit["keep"], hit["refetch"])
            )
            outer_forgets[start] = np.where(then == 1, forgets["keep"], forgets["refetch"])
            outer_last[start] = np.where(then == 1, last["keep"], last["refetch"])
        own = np.where(moving[q], np.where(overlapping[q], 2, 1), 0)
        for start in ("keep", "refetch"):
            initial_last = own if start == "keep" else np.ones(rows, dtype=np.int64)
            hit[start] = np.where(starts, False, np.where(advances, outer_hit[start], hit[start]))
            forgets[start] = np.where(
                starts, start == "refetch", np.where(advances, outer_forgets[start], forgets[start])
            )
            last[start] = np.where(
                starts, initial_last, np.where(advances, outer_last[start], last[start])
            )
            first[start] = np.where(starts, initial_last, first[start])
        innermost = np.where(starts, shifts[q], innermost)
        m = np.where(starts, q, m)
        found |= advances
    opening = found & (first["keep"] == 1) & whole[m, columns]  # after the first whole tile
    return opening | hit["keep"]


def _walk_compares_stationary(
    shifts: Vectors,
    extents: Ints,
    overlapping: Bools,
    whole: Bools,
    slides: Bools,
) -> Bools:
    """`_Walk`'s sweep with `stationary_fix` as a dynamic programme over (loop, remembered
    move, last delta), per row: whether some step compares two deltas of the same shape
    whose move is a neighbour offset (`whole[q]`: carry q's shift is one; `slides[q, j]`:
    the move from carry j's slide to carry q's is one). Remembered moves: carry j's shift or
    none (id `loops`). Last deltas: a whole tile 1, carry j's partial slide 2 + k for the
    k-th slide that some move from it could match, anything else 0 (nothing: no comparison
    can follow it). Shapes of partial slides are taken as equal, which only adds rows."""
    loops, rows = extents.shape
    relevant = [j for j in range(loops) if np.any(slides[:, j])]
    slide_id = np.zeros(loops, dtype=np.int64)
    for k, j in enumerate(relevant):
        slide_id[j] = 2 + k
    lasts = 2 + len(relevant)
    none = loops
    states = (loops + 1) * lasts
    columns = np.arange(rows)
    ids = np.arange(states)[:, None]
    found = np.zeros((states, rows), dtype=bool)
    end = np.broadcast_to(ids, (states, rows)).copy()
    moving = np.any(shifts != 0, axis=1)
    equal = pairwise_equal(shifts)
    same = np.zeros((loops + 1, rows), dtype=bool)
    matches = np.zeros((lasts, rows), dtype=bool)
    for q in range(loops):
        same[:loops] = equal[q]
        matches[1] = whole[q]
        for k, j in enumerate(relevant):
            matches[2 + k] = slides[q, j]
        current = end
        state, previous = current // lasts, current % lasts
        is_none = state == none
        keeps = is_none | same[state, columns]
        # Staying put fetches nothing and changes nothing (`stationary_fix`).
        fetched = moving[q]
        moved_state = np.where(is_none, q, np.where(keeps, state, none))
        new_state = np.where(moving[q], moved_state, state)
        partial = fetched & keeps & overlapping[q]
        whole_tile = fetched & ~partial
        compares = ((previous == 1) & whole_tile & whole[q]) | (
            (previous >= 2) & partial & matches[previous, columns]
        )
        delta = np.where(partial, slide_id[q], np.where(whole_tile, 1, 0))
        stepped = new_state * lasts + delta
        after = found[stepped, columns]
        final = end[stepped, columns]
        advances = extents[q] > 1
        found = np.where(advances, found | compares | after, found)
        end = np.where(advances, final, current)
    return found[none * lasts + 1]
