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
(a product of extents, or `distinct_sums` once per distinct fan-out when two of its loops
move along one tensor dimension), partitions, bypass and read-write elision
(`batch_tensor`). Rows the vectorised path might not get exactly are computed by the scalar
`analyze`, transparently (`fallback_rows` counts them): rows that might have link transfers
(`batch_links`: with link transfers the counts become fractions), and rows (or structures)
whose counts might not fit int64."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from einsum_opt.costmodel.batch_nest import (
    LARGEST,
    BatchNest,
    Bools,
    Ints,
    Slot,
    loop_slots,
    substituted,
    validate_structure,
)
from einsum_opt.costmodel.batch_tensor import FIELDS, TensorBatch, tensor_counts
from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_counts import LevelCounts, NestCounts
from einsum_opt.costmodel.nest_spec import NestSpec, NestSpecError, validate

__all__ = [
    "LevelBatch",
    "NestBatch",
    "Slot",
    "TensorBatch",
    "analyze_batch",
    "loop_slots",
    "substituted",
]


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
    spec: NestSpec,
    extents: np.ndarray,
    *,
    stationary_fix: bool = False,
    link_transfers: bool = True,
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
    too_large = _too_large(spec)
    if too_large:
        scalar = np.ones(rows, dtype=bool)
    per_tensor, unsure = tensor_counts(nest, stationary_fix, link_transfers)
    scalar |= unsure
    valid = nest.valid.copy()
    levels = {}
    for s, level in enumerate(spec.levels):
        tensors = {t.name: per_tensor[t.name][s] for t in spec.tensors}
        levels[level.name] = LevelBatch(
            level.name, level.instances, nest.used_instances[s], tensors
        )
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
    _fall_back(
        batch, np.flatnonzero(scalar & (valid | too_large)), stationary_fix, link_transfers
    )
    return batch


def _too_large(spec: NestSpec) -> bool:
    """Whether a dimension size or mesh exceeds what the int64 checks of validity cover, or
    a coefficient times a dimension size (a move, a tile's side) might not fit int64 on
    the way to the bounds."""
    meshes = [spec.compute_mesh_x, spec.compute_mesh_y]
    meshes += [n for level in spec.levels for n in (level.mesh_x, level.mesh_y)]
    if max([*spec.dims.values(), *meshes]) > LARGEST:
        return True
    terms = [term for t in spec.tensors for terms in t.projection for term in terms]
    largest = max((abs(term.coefficient) for term in terms), default=0)
    largest *= max(spec.dims.values(), default=1)
    return largest * max(len(terms), len(loop_slots(spec)), 1) > LARGEST**2 // 4


def _fall_back(
    batch: NestBatch, rows: np.ndarray, stationary_fix: bool, link_transfers: bool
) -> None:
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
