"""The per-nest analysis (`nest_analysis.analyze`) of many extent assignments of one loop
structure at once, exact, with numpy over the rows.

```python
from einsum_opt.costmodel.nest_analysis_batch import analyze_batch, loop_slots
slots = loop_slots(spec)               # levels outermost first, each level's loops in order
batch = analyze_batch(spec, extents)   # extents: int64 (N, len(slots)); spec's extents ignored
batch.valid                            # rows `validate` accepts (the others are masked)
batch.levels["GLB"]["A"].reads         # int64 (N,) per level and tensor
batch.row(r) == analyze(substituted(spec, tuple(extents[r])))
```

What the structure fixes (projections, keep sets, meshes, which loops are temporal or
spatial) is worked out once; what the extents change is numpy over rows: the loops' scales,
every level's tile, the fills of the ruler-sequence walk (`batch_trace`), multicast groups
and partitions. Rows the vectorised path might not get exactly are computed by the scalar
`analyze`, transparently (`fallback_rows` counts them): rows that might have link transfers
(`batch_links`: with link transfers their counts become fractions), rows whose counts might
not fit int64, and fan-outs whose distinct deltas are not a product of extents (counted once
per distinct fan-out with `distinct_sums`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from einsum_opt.costmodel.batch_links import may_link
from einsum_opt.costmodel.batch_nest import (
    LARGEST,
    SAFE,
    BatchNest,
    Bools,
    Ints,
    Slot,
    loop_slots,
    substituted,
    validate_structure,
)
from einsum_opt.costmodel.batch_trace import Vectors, fills
from einsum_opt.costmodel.distinct_sums import distinct_sums
from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_counts import LevelCounts, NestCounts, TensorCounts
from einsum_opt.costmodel.nest_spec import NestSpec, NestSpecError, TensorSpec, validate

__all__ = [
    "LevelBatch",
    "NestBatch",
    "Slot",
    "TensorBatch",
    "analyze_batch",
    "loop_slots",
    "substituted",
]

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
class LevelBatch:
    """One storage level: its instances, the instances used per row, every tensor."""

    name: str
    instances: int
    utilized_instances: Ints
    tensors: Mapping[str, TensorBatch]

    def __getitem__(self, tensor: str) -> TensorBatch:
        return self.tensors[tensor]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)


@dataclass
class NestBatch:
    """The analysis of every row: `NestCounts`' numbers as arrays, `valid` rows, the rows
    computed by the scalar analysis."""

    spec: NestSpec
    extents: Ints
    valid: Bools
    computes: Ints
    compute_cycles: Ints
    utilized_compute_instances: Ints
    compute_instances: int
    levels: Mapping[str, LevelBatch]
    fallback_rows: int
    errors: dict[int, str]

    def __getitem__(self, level: str) -> LevelBatch:
        return self.levels[level]

    def error(self, r: int) -> str | None:
        """`validate`'s message for an invalid row r (None for a valid one)."""
        if self.valid[r]:
            return None
        if r not in self.errors:
            try:
                validate(substituted(self.spec, tuple(int(e) for e in self.extents[r])))
            except NestSpecError as error:
                self.errors[r] = str(error)
        return self.errors.get(r)

    def row(self, r: int) -> NestCounts:
        """Row r as `NestCounts` (equal to `analyze` of the substituted spec); raises
        `NestSpecError` for an invalid row."""
        if not self.valid[r]:
            raise NestSpecError(self.error(r) or "invalid row")
        levels = {
            name: LevelCounts(
                name,
                level.instances,
                int(level.utilized_instances[r]),
                {t: tb.counts(r) for t, tb in level.tensors.items()},
            )
            for name, level in self.levels.items()
        }
        return NestCounts(
            computes=int(self.computes[r]),
            compute_cycles=int(self.compute_cycles[r]),
            utilized_compute_instances=int(self.utilized_compute_instances[r]),
            compute_instances=self.compute_instances,
            levels=levels,
        )


def analyze_batch(
    spec: NestSpec, extents: np.ndarray, *, stationary_fix: bool = False, link_transfers: bool = True
) -> NestBatch:
    """`analyze` of `spec` with row r of `extents` (N × len(loop_slots(spec))) substituted for
    its loops' extents, for every row; keyword options as `analyze`'s. Raises `NestSpecError`
    when the structure itself is wrong (whatever the extents)."""
    validate_structure(spec)
    extents = np.asarray(extents, dtype=np.int64)
    slots = loop_slots(spec)
    if extents.ndim != 2 or extents.shape[1] != len(slots):
        raise NestSpecError(
            f"extents: shape {extents.shape} is not (rows, {len(slots)}) for the nest's loops"
        )
    nest = BatchNest(spec, extents)
    rows = nest.rows
    scalar = ~nest.safe
    if _too_large(spec):
        scalar = np.ones(rows, dtype=bool)
    per_tensor = {}
    for tensor in spec.tensors:
        counts, unsure = _tensor_counts(nest, tensor, stationary_fix, link_transfers)
        per_tensor[tensor.name] = counts
        scalar |= unsure
    valid = nest.valid.copy()
    levels = {}
    for s, level in enumerate(spec.levels):
        tensors = {t.name: per_tensor[t.name][s] for t in spec.tensors}
        levels[level.name] = LevelBatch(level.name, level.instances, nest.used_instances[s], tensors)
    batch = NestBatch(
        spec=spec,
        extents=extents,
        valid=valid,
        computes=np.where(valid, nest.temporal_product * nest.spatial_product, 0),
        compute_cycles=np.where(valid, nest.temporal_product, 0),
        utilized_compute_instances=np.where(valid, nest.spatial_product, 0),
        compute_instances=spec.compute_mesh_x * spec.compute_mesh_y,
        levels=levels,
        fallback_rows=0,
        errors={},
    )
    _fall_back(batch, np.flatnonzero(scalar & (valid | _too_large(spec))), stationary_fix, link_transfers)
    return batch


def _too_large(spec: NestSpec) -> bool:
    """Whether a dimension size or mesh exceeds what the int64 checks of validity cover."""
    meshes = [spec.compute_mesh_x, spec.compute_mesh_y]
    meshes += [n for level in spec.levels for n in (level.mesh_x, level.mesh_y)]
    return max([*spec.dims.values(), *meshes]) > LARGEST


def _fall_back(batch: NestBatch, rows: np.ndarray, stationary_fix: bool, link_transfers: bool) -> None:
    """Compute `rows` with the scalar analysis and write them into the batch."""
    for r in rows:
        r = int(r)
        try:
            counts = analyze(
                substituted(batch.spec, tuple(int(e) for e in batch.extents[r])),
                stationary_fix=stationary_fix,
                link_transfers=link_transfers,
            )
        except NestSpecError as error:
            batch.valid[r] = False
            batch.errors[r] = str(error)
            continue
        batch.valid[r] = True
        batch.fallback_rows += 1
        batch.computes[r] = counts.computes
        batch.compute_cycles[r] = counts.compute_cycles
        batch.utilized_compute_instances[r] = counts.utilized_compute_instances
        for name, level in batch.levels.items():
            level.utilized_instances[r] = counts.levels[name].utilized_instances
            for t, tb in level.tensors.items():
                got = counts.levels[name].tensors[t]
                for field in FIELDS:
                    getattr(tb, field)[r] = getattr(got, field)


def _coefficients(tensor: TensorSpec, dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Per dimension, the summed coefficient of its terms in each tensor dimension."""
    rank = len(tensor.projection)
    by_dim = {dim: np.zeros(rank, dtype=np.int64) for dim in dims}
    for r, terms in enumerate(tensor.projection):
        for t in terms:
            by_dim[t.dim][r] += t.coefficient
    return by_dim


def _box(tensor: TensorSpec, extents: Mapping[str, Ints], rows: int) -> Vectors:
    """The tile's sides (rank, rows) when the loops span `extents`."""
    box = np.ones((len(tensor.projection), rows), dtype=np.int64)
    for r, terms in enumerate(tensor.projection):
        for t in terms:
            box[r] += abs(t.coefficient) * (extents[t.dim] - 1)
    return box


def _size(box: Vectors) -> tuple[Ints, np.ndarray]:
    """The box's words, exact, and as float64 (for bounds)."""
    return np.prod(box, axis=0), np.prod(box.astype(np.float64), axis=0)


def _tensor_counts(
    nest: BatchNest, tensor: TensorSpec, stationary_fix: bool, link_transfers: bool
) -> tuple[list[TensorBatch], Bools]:
    """The tensor's counts at every level (outermost first), and the rows to leave to the
    scalar analysis."""
    spec, rows, n = nest.spec, nest.rows, nest.levels
    coefficients = _coefficients(tensor, spec.dims)
    # steps[j]: how far the tile moves (rank, rows) when slot j's loop advances by one.
    steps = np.stack(
        [coefficients[slot.dim][:, None] * nest.scale[j][None, :] for j, slot in enumerate(nest.slots)]
    ) if nest.slots else np.zeros((0, len(tensor.projection), rows), dtype=np.int64)
    boxes = [_box(tensor, nest.tile_extents[s], rows) for s in range(n)]
    sized = [_size(box) for box in boxes]
    sizes = [size for size, _ in sized]
    unsure = np.zeros(rows, dtype=bool)
    for _, size_float in sized:
        unsure |= size_float >= SAFE
    keep = [tensor.name in level.keep for level in spec.levels]
    order = list(range(len(nest.slots) - 1, -1, -1))  # innermost first
    fills_at: list[Ints] = [np.zeros(rows, dtype=np.int64)] * (n + 1)
    content: list[Ints] = [np.zeros(rows, dtype=np.int64)] * n
    groups = [np.ones(rows, dtype=np.int64) for _ in range(n)]
    for s in range(n):
        above = [j for j in order if nest.slots[j].axis is None and nest.slots[j].level <= s]
        extents = nest.extents[:, above].T
        moves = steps[above]
        fanned = [j for j in order if nest.slots[j].axis is not None and nest.slots[j].level == s]
        fan = [(nest.extents[:, j], nest.slots[j].axis or "X", steps[j]) for j in fanned]
        if fan:
            groups[s] = _groups(fan, rows)
        if s + 1 < n:
            box: Vectors | None = boxes[s + 1]
            child_float = sized[s + 1][1]
            fetched = fills(boxes[s + 1], sizes[s + 1], extents, moves, stationary_fix)
        else:
            box, child_float = None, np.ones(rows)
            fetched = np.where(nest.safe, nest.temporal_product, 0)
        unsure |= child_float * nest.temporal_above[s] * nest.spatial_float >= SAFE
        if fan and link_transfers:
            linkable = may_link(box, extents, moves, fan, nest.mesh_x_ratio[s], stationary_fix)
            unsure |= nest.fanned[s] & linkable
        fills_at[s + 1] = fetched
        content[s] = fetched * groups[s]
    # Partition sizes: the outermost level holds everything; a fan-out divides it.
    partition = [sizes[0]] * n
    for s in range(1, n):
        if any(sl.axis is not None and sl.level == s - 1 for sl in nest.slots):
            fan_size, _ = _size(_box(tensor, nest.fan_extents[s - 1], rows))
            unsure |= partition[s - 1].astype(np.float64) * sized[s][1] >= SAFE
            divided = partition[s - 1] * sizes[s] // fan_size
            partition[s] = np.where(nest.fanned[s - 1], divided, partition[s - 1])
        else:
            partition[s] = partition[s - 1]
    # Words each instance receives from its parent (its child's fills: without link
    # transfers every destination of a multicast receives each word once).
    share = [np.zeros(rows, dtype=np.int64)] + [fills_at[s] for s in range(1, n)]
    # A bypassing level hands what its children asked of it to its parent: without link
    # transfers Timeloop's factor content[s]·fanout / received[s-1] is content[s] / fills[s].
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
            result.append(
                TensorBatch(zeros, zeros, zeros, zeros, used, partition[s], groups[s], zeros, False, tensor.read_write)
            )
            continue
        if tensor.read_write:
            reads = content[s] - partition[s]
            fill = share[s] - partition[s] if s > top else share[s]
            updates = content[s]
        else:
            reads, fill, updates = content[s], share[s], zeros
        result.append(
            TensorBatch(
                reads, fill, updates, sizes[s], used, partition[s], groups[s], zeros, True, tensor.read_write
            )
        )
    # Each array of the result is its own (fall-back rows are written into them).
    for counts in result:
        for field in FIELDS:
            setattr(counts, field, np.where(nest.valid, getattr(counts, field), 0).astype(np.int64))
    return result, unsure & nest.valid


def _groups(fan: list[tuple[Ints, str, Vectors]], rows: int) -> Ints:
    """Distinct deltas of a fan-out per row (`distinct_sums` of its loops): the product of
    the moving loops' extents when no two loops move along a common tensor dimension, else
    `distinct_sums` once per distinct row of the fan-out."""
    supports = [set(np.flatnonzero(np.any(step != 0, axis=1)).tolist()) for _, _, step in fan]
    if all(not (a & b) for i, a in enumerate(supports) for b in supports[i + 1 :]):
        result = np.ones(rows, dtype=np.int64)
        for (extent, _, _), support in zip(fan, supports, strict=True):
            if support:
                result = result * extent
        return result
    rank = fan[0][2].shape[0]
    key = np.concatenate([np.stack([e for e, _, _ in fan])] + [step for _, _, step in fan]).T
    unique, inverse = np.unique(key, axis=0, return_inverse=True)
    loops = len(fan)

    def count(row: np.ndarray) -> int:
        extents = [int(e) for e in row[:loops]]
        moves = [tuple(int(x) for x in row[loops + k * rank : loops + (k + 1) * rank]) for k in range(loops)]
        return distinct_sums(extents, moves)

    counts = np.array([count(row) for row in unique], dtype=np.int64)
    return counts[inverse.reshape(-1)]
