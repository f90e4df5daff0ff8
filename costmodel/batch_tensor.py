"""The per-tensor part of the batch analysis (`nest_analysis._tensor_counts` over rows): every
tensor's tiles and moves, the fills of every (tensor, level) walked in one stacked dynamic
programme (`batch_trace.fills`: the traces of the levels are suffixes of the deepest one, so
the shorter ones are padded with loops of extent 1 at their inner end; tensors of lower rank
are padded with dimensions of side 1 that never move), the rows that might have link
transfers (`batch_links`), multicast groups, partitions, bypass and read-write elision.

Without link transfers every count is an integer: a child's fills reach each destination of a
multicast once (Timeloop's `received / fanout` is the fills), and the bypass factor
`content[s]·fanout / received[s-1]` is `content[s] / fills[s]`, so a bypassing level's parent
sends its groups times what the level sends; rounding and truncation change nothing. Rows
with link transfers (where these become fractions) are the scalar analysis'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from einsum_opt.costmodel.batch_links import may_link
from einsum_opt.costmodel.batch_nest import SAFE, BatchNest, Bools, Ints
from einsum_opt.costmodel.batch_trace import Vectors, fills_of_shifts
from einsum_opt.costmodel.distinct_sums import distinct_sums
from einsum_opt.costmodel.nest_counts import TensorCounts
from einsum_opt.costmodel.nest_spec import TensorSpec

FIELDS = (
    "reads",
    "fills",
    "updates",
    "utilized_capacity",
    "utilized_instances",
    "partition_size",
    "distinct_destinations",
    "link_transfers",
)


@dataclass
class TensorBatch:
    """One tensor at one level: `TensorCounts`' fields as int64 arrays over rows."""

    reads: Ints
    fills: Ints
    updates: Ints
    utilized_capacity: Ints
    utilized_instances: Ints
    partition_size: Ints
    distinct_destinations: Ints
    link_transfers: Ints
    kept: bool
    read_write: bool

    def counts(self, r: int) -> TensorCounts:
        """Row r as `TensorCounts` (Python ints)."""
        values = {name: int(getattr(self, name)[r]) for name in FIELDS}
        return TensorCounts(kept=self.kept, read_write=self.read_write, **values)


@dataclass
class _Tensor:
    """A tensor's tiles and moves over the rows (rank padded to the nest's largest)."""

    spec: TensorSpec
    terms: list[tuple[int, str, Ints]]  # per term: tensor dimension, loop dimension, |coef|
    steps: Vectors  # (slots, rank, rows): the tile's move when slot j's loop advances by one
    boxes: list[Vectors]  # per level, the tile's sides (rank, rows)
    sizes: list[Ints]
    sizes_float: list[np.ndarray]

    def box(self, extents: Mapping[str, Ints]) -> Vectors:
        """The tile's sides (rank, rows) when the loops span `extents` (1 beyond the
        tensor's own rank)."""
        box = np.ones(self.steps.shape[1:], dtype=np.int64)
        for r, dim, magnitude in self.terms:
            box[r] += magnitude * (extents[dim] - 1)
        return box


def _prepare(nest: BatchNest, tensor: TensorSpec, first_term: int, rank: int) -> _Tensor:
    """The tensor's moves and tiles; its terms' coefficients are the batch's columns from
    `first_term` on."""
    rows = nest.rows
    coefficients = {dim: np.zeros((rank, rows), dtype=np.int64) for dim in nest.spec.dims}
    terms = []
    column = first_term
    for r, projection in enumerate(tensor.projection):
        for term in projection:
            coefficient = nest.coefficients[:, column]
            coefficients[term.dim][r] += coefficient
            terms.append((r, term.dim, np.abs(coefficient)))
            column += 1
    steps = np.zeros((len(nest.slots), rank, rows), dtype=np.int64)
    for j, slot in enumerate(nest.slots):
        steps[j] = coefficients[slot.dim] * nest.scale[j][None, :]
    made = _Tensor(tensor, terms, steps, [], [], [])
    made.boxes = [made.box(nest.tile_extents[s]) for s in range(nest.levels)]
    made.sizes = [np.prod(box, axis=0) for box in made.boxes]
    made.sizes_float = [np.prod(box.astype(np.float64), axis=0) for box in made.boxes]
    return made


def tensor_counts(
    nest: BatchNest, stationary_fix: bool, link_transfers: bool
) -> tuple[dict[str, list[TensorBatch]], Bools]:
    """Every tensor's counts at every level (outermost first), and the rows to leave to the
    scalar analysis."""
    spec, rows, n = nest.spec, nest.rows, nest.levels
    rank = max(len(t.projection) for t in spec.tensors)
    firsts = np.cumsum([0] + [sum(map(len, t.projection)) for t in spec.tensors])
    tensors = [_prepare(nest, t, int(firsts[i]), rank) for i, t in enumerate(spec.tensors)]
    order = list(range(len(nest.slots) - 1, -1, -1))  # innermost first
    temporal = [j for j in order if nest.slots[j].axis is None]
    unsure = np.zeros(rows, dtype=bool)
    for t in tensors:
        for size_float in t.sizes_float:
            unsure |= size_float >= SAFE
    count = len(tensors)
    # fetched[s][i]: what tensor i's tile at level s + 1 fetches over the loops above it (at
    # the last level, the compute units' operands: one per temporal iteration).
    walks = _stacked_walks(nest, tensors, temporal, range(n - 1))
    words = fills_of_shifts(walks.boxes, walks.sizes, walks.extents, walks.shifts, stationary_fix)
    fetched = [[_part(words, s * count + i, rows) for i in range(count)] for s in range(n - 1)]
    fetched.append([np.where(nest.safe, nest.temporal_product, 0) for _ in tensors])
    groups = [[np.ones(rows, dtype=np.int64) for _ in range(n)] for _ in tensors]
    for s in range(n):
        fanned = [j for j in order if nest.slots[j].axis is not None and nest.slots[j].level == s]
        if not fanned:
            continue
        for i, t in enumerate(tensors):
            fan = [(nest.extents[:, j], nest.slots[j].axis or "X", t.steps[j]) for j in fanned]
            groups[i][s] = _groups(fan, rows)
        if not link_transfers:
            continue
        here = walks if s < n - 1 else _stacked_walks(nest, tensors, temporal, range(n - 1, n))
        first = s * count if s < n - 1 else 0
        stacked = slice(first * rows, (first + count) * rows)
        fan = [
            (
                np.tile(nest.extents[:, j], count),
                nest.slots[j].axis or "X",
                np.concatenate([t.steps[j] for t in tensors], axis=1),
            )
            for j in fanned
        ]
        box = here.boxes[:, stacked] if s < n - 1 else None
        linkable = may_link(
            box,
            here.extents[:, stacked],
            here.shifts[..., stacked],
            fan,
            nest.mesh_x_ratio[s],
            stationary_fix,
        )
        unsure |= nest.fanned[s] & np.any(linkable.reshape(count, rows), axis=0)
    for s in range(n):
        for t in tensors:
            child = t.sizes_float[s + 1] if s + 1 < n else 1.0
            unsure |= child * nest.temporal_above[s] * nest.spatial_float >= SAFE
    result = {}
    for i, t in enumerate(tensors):
        counts, partition_unsure = _counts(nest, t, [f[i] for f in fetched], groups[i])
        result[t.spec.name] = counts
        unsure |= partition_unsure
    return result, unsure & nest.valid


@dataclass
class _Walks:
    """The traces of every (level s, tensor) problem stacked over rows: problem k = s ×
    tensors + i covers rows k·N … (k+1)·N. Extents (loops, K·N) (a level's trace padded with
    loops of extent 1 inside it), carry shifts (loops, rank, K·N), the child tiles."""

    extents: Ints
    shifts: Vectors
    boxes: Vectors
    sizes: Ints


def _stacked_walks(
    nest: BatchNest, tensors: list[_Tensor], temporal: list[int], levels: range
) -> _Walks:
    """The walks of every tensor's tile at level s + 1 for s in `levels` under the temporal
    loops above it (at the last level the tile is the compute units' operand: size 1)."""
    n, rows, rank = nest.levels, nest.rows, tensors[0].steps.shape[1]
    problems = [(s, i) for s in levels for i in range(len(tensors))]
    if not problems:
        loops = len(temporal)
        return _Walks(
            np.ones((loops, 0), dtype=np.int64),
            np.zeros((loops, rank, 0), dtype=np.int64),
            np.ones((rank, 0), dtype=np.int64),
            np.zeros(0, dtype=np.int64),
        )
    above = np.array(
        [[nest.slots[j].level <= s for j in temporal] for s, _ in problems], dtype=bool
    )
    extents = np.concatenate(
        [np.where(above[k][:, None], nest.extents[:, temporal].T, 1) for k in range(len(problems))],
        axis=1,
    )
    # Carry shifts once per tensor over all the temporal loops; under level s the loops
    # inside it (a prefix, innermost first) do not count, so its shifts are these plus
    # their counted moves.
    full_extents = nest.extents[:, temporal].T
    counted = [np.where((full_extents > 1)[:, None, :], t.steps[temporal], 0) for t in tensors]
    inside = [np.cumsum(c, axis=0) - c for c in counted]
    shifts = []
    for k, (_, i) in enumerate(problems):
        shift = tensors[i].steps[temporal] - inside[i]
        deeper = int(np.count_nonzero(~above[k]))
        if 0 < deeper < len(temporal):
            shift = shift + inside[i][deeper]
        shifts.append(shift)
    ones = np.ones((rank, rows), dtype=np.int64)
    boxes = np.concatenate(
        [tensors[i].boxes[s + 1] if s + 1 < n else ones for s, i in problems], axis=1
    )
    sizes = np.prod(boxes, axis=0)
    return _Walks(extents, np.concatenate(shifts, axis=2), boxes, sizes)


def _part(array: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Problem k's rows of a stacked array (rows on the last axis)."""
    return array[..., k * rows : (k + 1) * rows]


def _counts(
    nest: BatchNest, tensor: _Tensor, fetched: list[Ints], groups: list[Ints]
) -> tuple[list[TensorBatch], Bools]:
    """The counts at every level from the fills of every level's child, and the rows whose
    partitions might overflow."""
    spec, rows, n = nest.spec, nest.rows, nest.levels
    name, read_write = tensor.spec.name, tensor.spec.read_write
    keep = [name in level.keep for level in spec.levels]
    sizes = tensor.sizes
    unsure = np.zeros(rows, dtype=bool)
    content = [fetched[s] * groups[s] for s in range(n)]
    # Partition sizes: the outermost level holds everything; a fan-out divides it.
    partition = [sizes[0]] * n
    for s in range(1, n):
        partition[s] = partition[s - 1]
        if any(sl.axis is not None and sl.level == s - 1 for sl in nest.slots):
            fan_box = tensor.box(nest.fan_extents[s - 1])
            unsure |= partition[s - 1].astype(np.float64) * tensor.sizes_float[s] >= SAFE
            divided = partition[s - 1] * sizes[s] // np.prod(fan_box, axis=0)
            partition[s] = np.where(nest.fanned[s - 1], divided, partition[s - 1])
    # What each instance receives from its parent: its fills (fetched[s - 1] is level s's).
    share = [np.zeros(rows, dtype=np.int64)] + [fetched[s - 1] for s in range(1, n)]
    for s in range(n - 1, 0, -1):
        if not keep[s]:
            content[s - 1] = groups[s - 1] * content[s]
    top = keep.index(True)
    share[top] = np.zeros(rows, dtype=np.int64)
    zeros = np.zeros(rows, dtype=np.int64)
    result = []
    for s in range(n):
        used = nest.used_instances[s]
        if not keep[s]:
            values = (zeros, zeros, zeros, zeros, used, partition[s], groups[s], zeros)
        elif read_write:
            fill = share[s] - partition[s] if s > top else share[s]
            values = (
                content[s] - partition[s],
                fill,
                content[s],
                sizes[s],
                used,
                partition[s],
                groups[s],
                zeros,
            )
        else:
            values = (content[s], share[s], zeros, sizes[s], used, partition[s], groups[s], zeros)
        arrays = {
            f: np.where(nest.valid, v, 0).astype(np.int64)
            for f, v in zip(FIELDS, values, strict=True)
        }
        result.append(TensorBatch(**arrays, kept=keep[s], read_write=read_write))
    return result, unsure


def _groups(fan: list[tuple[Ints, str, Vectors]], rows: int) -> Ints:
    """Distinct deltas of a fan-out per row (`distinct_sums` of its loops): the product of
    the moving loops' extents when no two loops move along a common tensor dimension, else
    `distinct_sums` once per distinct row of the fan-out."""
    supports = [set(np.flatnonzero(np.any(step != 0, axis=1)).tolist()) for _, _, step in fan]
    if all(not (a & b) for i, a in enumerate(supports) for b in supports[i + 1 :]):
        result = np.ones(rows, dtype=np.int64)
        for extent, _, step in fan:  # a loop counts in the rows where it moves the tile
            result = result * np.where(np.any(step != 0, axis=0), extent, 1)
        return result
    rank = fan[0][2].shape[0]
    key = np.concatenate([np.stack([e for e, _, _ in fan])] + [step for _, _, step in fan]).T
    unique, inverse = np.unique(key, axis=0, return_inverse=True)
    loops = len(fan)

    def count(row: np.ndarray) -> int:
        extents = [int(e) for e in row[:loops]]
        moves = [
            tuple(int(x) for x in row[loops + k * rank : loops + (k + 1) * rank])
            for k in range(loops)
        ]
        return distinct_sums(extents, moves)

    counts = np.array([count(row) for row in unique], dtype=np.int64)
    return counts[inverse.reshape(-1)]
