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
    projection_terms,
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
    "projection_terms",
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
    dims: Mapping[str, Ints]
    coefficients: Ints
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
                validate(self.spec_of(r))
            except NestSpecError as error:
                self.errors[r] = str(error)
        return self.errors.get(r)

    def spec_of(self, r: int) -> NestSpec:
        """The spec of row r: its extents, dimension sizes and coefficients substituted."""
        dims = {d: int(size[r]) for d, size in self.dims.items()}
        return substituted(self.spec, self.extents[r], dims, self.coefficients[r])

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
    dims: Mapping[str, np.ndarray] | None = None,
    coefficients: np.ndarray | None = None,
    stationary_fix: bool = False,
    link_transfers: bool = True,
) -> NestBatch:
    """`analyze` of `spec` with row r of `extents` (N × len(loop_slots(spec))) substituted for
    its loops' extents, for every row; where given, `dims` (dimension → (N,) sizes) and
    `coefficients` (N × len(projection_terms(spec))) substitute the dimension sizes and the
    terms' coefficients per row too. Keyword options as `analyze`'s. Raises `NestSpecError`
    when the structure itself is wrong (whatever the rows) or an array has the wrong shape."""
    validate_structure(spec, sizes_per_row=dims is not None)
    extents = np.asarray(extents, dtype=np.int64)
    slots = loop_slots(spec)
    if extents.ndim != 2 or extents.shape[1] != len(slots):
        raise NestSpecError(
            f"extents: shape {extents.shape} is not (rows, {len(slots)}) for the nest's loops"
        )
    rows = extents.shape[0]
    sizes = _sizes(spec, dims, rows)
    terms = projection_terms(spec)
    if coefficients is None:
        given = [t.coefficient for tensor in spec.tensors for ts in tensor.projection for t in ts]
        coefficients = np.tile(np.array(given, dtype=np.int64), (rows, 1))
    coefficients = np.asarray(coefficients, dtype=np.int64)
    if coefficients.shape != (rows, len(terms)):
        raise NestSpecError(
            f"coefficients: shape {coefficients.shape} is not ({rows}, {len(terms)}) "
            "for the nest's projection terms"
        )
    nest = BatchNest(spec, extents, sizes, coefficients)
    scalar = ~nest.safe | nest.large
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
        dims=sizes,
        coefficients=coefficients,
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
        batch,
        np.flatnonzero(scalar & (valid | too_large | nest.large)),
        stationary_fix,
        link_transfers,
    )
    return batch


def _sizes(spec: NestSpec, dims: Mapping[str, np.ndarray] | None, rows: int) -> dict[str, Ints]:
    """Every dimension's size per row: `dims`' where given, else the spec's."""
    if dims is None:
        return {d: np.full(rows, size, dtype=np.int64) for d, size in spec.dims.items()}
    unknown = sorted(set(dims) - set(spec.dims))
    if unknown:
        raise NestSpecError(f"dims: unknown dimension {unknown[0]}")
    sizes = {}
    for d, size in spec.dims.items():
        given = np.asarray(dims[d], dtype=np.int64) if d in dims else np.full(rows, size)
        if given.shape != (rows,):
            raise NestSpecError(f"dims: dimension {d}: shape {given.shape} is not ({rows},)")
        sizes[d] = given.astype(np.int64)
    return sizes


def _too_large(spec: NestSpec) -> bool:
    """Whether a mesh exceeds what the int64 checks of validity cover."""
    meshes = [spec.compute_mesh_x, spec.compute_mesh_y]
    meshes += [n for level in spec.levels for n in (level.mesh_x, level.mesh_y)]
    return max(meshes) > LARGEST


def _fall_back(
    batch: NestBatch, rows: np.ndarray, stationary_fix: bool, link_transfers: bool
) -> None:
    """Compute `rows` with the scalar analysis and write them into the batch."""
    for r in rows:
        r = int(r)
        try:
            counts = analyze(
                batch.spec_of(r),
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
