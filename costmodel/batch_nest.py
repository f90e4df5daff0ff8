"""What the per-nest analysis of a batch shares across tensors: the loop slots of a `NestSpec`
structure and, per row of extents (numpy over rows), which rows `validate` accepts, every
loop's scale, the extents each level's tile and fan-out span, and the instances used.

Row r is the spec with `extents[r, j]` substituted for the extent of slot j, and with its own
dimension sizes and projection coefficients when the batch gives them per row (`sizes`,
`coefficients`: the terms numbered by `projection_terms`). Loops of extent 1
are kept in place (the scalar analysis drops them): every quantity here is one they leave
unchanged (an empty product, a scale factor of 1), and the trace masks them out."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from einsum_opt.costmodel.nest_spec import Loop, NestSpec, NestSpecError, Term, validate

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

SAFE = float(2**60)
"""Magnitudes below this (checked in float64, whose rounding is far smaller than the margin to
2**63) cannot overflow int64."""


@dataclass(frozen=True)
class Slot:
    """A loop of the structure: its dimension, axis (None temporal) and storage level."""

    dim: str
    axis: str | None
    level: int


def loop_slots(spec: NestSpec) -> tuple[Slot, ...]:
    """The spec's loops in order: levels outermost first, each level's loops in its order.
    Column j of a batch's extents is the extent of slot j."""
    return tuple(
        Slot(loop.dim, loop.axis, s) for s, level in enumerate(spec.levels) for loop in level.loops
    )


def projection_terms(spec: NestSpec) -> tuple[tuple[str, int, int], ...]:
    """The spec's projection terms in order (tensor name, tensor dimension, term index):
    over `spec.tensors`, each tensor's projection dimension by dimension, term by term.
    Column k of a batch's coefficients is the coefficient of term k."""
    return tuple(
        (tensor.name, r, k)
        for tensor in spec.tensors
        for r, terms in enumerate(tensor.projection)
        for k in range(len(terms))
    )


def substituted(
    spec: NestSpec,
    extents: Sequence[int],
    dims: Mapping[str, int] | None = None,
    coefficients: Sequence[int] | None = None,
) -> NestSpec:
    """`spec` with its loops' extents replaced by `extents` (one per slot), its dimension
    sizes by `dims` and its terms' coefficients by `coefficients` (one per projection term,
    numbered as `projection_terms`) where given; numpy integers become ints."""
    values = iter(extents)
    levels = tuple(
        replace(
            level,
            loops=tuple(Loop(lp.dim, operator.index(next(values)), lp.axis) for lp in level.loops),
        )
        for level in spec.levels
    )
    spec = replace(spec, levels=levels)
    if dims is not None:
        spec = replace(spec, dims={d: operator.index(dims[d]) for d in spec.dims})
    if coefficients is not None:
        given = iter(coefficients)
        tensors = tuple(
            replace(
                tensor,
                projection=tuple(
                    tuple(Term(operator.index(next(given)), t.dim) for t in terms)
                    for terms in tensor.projection
                ),
            )
            for tensor in spec.tensors
        )
        spec = replace(spec, tensors=tensors)
    return spec


def validate_structure(spec: NestSpec, sizes_per_row: bool = False) -> None:
    """Raise `NestSpecError` for what is wrong with `spec` whatever its extents: names, axes,
    loop order, meshes, keep sets, projections, and (unless given per row) dimension sizes."""
    validate(
        substituted(replace(spec, dims=dict.fromkeys(spec.dims, 1)), (1,) * len(loop_slots(spec)))
    )
    for dim, size in [] if sizes_per_row else spec.dims.items():
        if not isinstance(size, int) or size < 1:
            raise NestSpecError(f"dimension {dim}: size {size} is not a positive integer")


LARGEST = 2**31
"""Dimension sizes and mesh ratios up to this are checked in int64 (products capped above
them cannot overflow); a structure with a larger one is analysed row by row."""


def _capped_product(columns: list[Ints], cap: int | Ints, rows: int) -> Ints:
    """The product of the positive columns where it is at most `cap`, else `cap + 1`."""
    product = np.ones(rows, dtype=np.int64)
    for column in columns:
        product = np.minimum(product * np.minimum(column, cap + 1), cap + 1)
    return product


class BatchNest:
    """The extent-dependent quantities every tensor shares, for N rows of extents."""

    def __init__(
        self, spec: NestSpec, extents: Ints, sizes: Mapping[str, Ints], coefficients: Ints
    ):
        self.spec = spec
        self.slots = loop_slots(spec)
        self.levels = len(spec.levels)
        rows = extents.shape[0]
        self.rows = rows
        # Rows whose sizes or coefficients are beyond the int64 checks: the scalar analysis'.
        self.large = np.zeros(rows, dtype=bool)
        for size in sizes.values():
            self.large |= size > LARGEST
        largest_size = np.max(np.stack([*sizes.values(), np.ones(rows, dtype=np.int64)]), axis=0)
        terms = coefficients.shape[1]
        if terms:
            largest_coefficient = np.max(np.abs(coefficients.astype(np.float64)), axis=1)
            bound = (
                largest_coefficient * largest_size.astype(np.float64) * max(terms, len(self.slots))
            )
            self.large |= bound >= SAFE
        self.sizes = {d: np.where(self.large, 1, size) for d, size in sizes.items()}
        self.coefficients = np.where(self.large[:, None], 1, coefficients)
        self.valid = self._valid_rows(extents) & ~self.large
        # Invalid rows are computed on extents of 1 (harmless) and masked.
        self.extents = np.where(self.valid[:, None], extents, 1).astype(np.int64)
        ext = [self.extents[:, j] for j in range(len(self.slots))]
        self.scale: list[Ints] = [np.ones(rows, dtype=np.int64) for _ in self.slots]
        running = {dim: np.ones(rows, dtype=np.int64) for dim in spec.dims}
        for j in range(len(self.slots) - 1, -1, -1):
            self.scale[j] = running[self.slots[j].dim]
            running[self.slots[j].dim] = running[self.slots[j].dim] * ext[j]
        n = self.levels
        ones = {dim: np.ones(rows, dtype=np.int64) for dim in spec.dims}
        self.tile_extents: list[dict[str, Ints]] = [ones] * (n + 1)
        self.fan_extents: list[dict[str, Ints]] = [ones] * n
        for s in range(n - 1, -1, -1):
            tile = dict(self.tile_extents[s + 1])
            fan = dict(self.tile_extents[s + 1])
            for j, slot in enumerate(self.slots):
                if slot.level == s:
                    tile[slot.dim] = tile[slot.dim] * ext[j]
                    if slot.axis is not None:
                        fan[slot.dim] = fan[slot.dim] * ext[j]
            self.tile_extents[s], self.fan_extents[s] = tile, fan
        self.fanout = [
            _product([ext[j] for j, sl in enumerate(self.slots) if sl.level == s and sl.axis], rows)
            for s in range(n)
        ]
        self.fanned = [self.fanout[s] > 1 for s in range(n)]
        self.used_instances = [_product(self.fanout[:s], rows) for s in range(n)]
        # Temporal iterations above level s + 1 (loops at levels 0..s), in float for bounds.
        temporal = [ext[j].astype(np.float64) for j, sl in enumerate(self.slots) if sl.axis is None]
        self.temporal_float = np.prod(np.stack(temporal), axis=0) if temporal else np.ones(rows)
        self.temporal_above = [
            np.prod(
                np.stack(
                    [np.ones(rows)]
                    + [
                        ext[j].astype(np.float64)
                        for j, sl in enumerate(self.slots)
                        if sl.axis is None and sl.level <= s
                    ]
                ),
                axis=0,
            )
            for s in range(n)
        ]
        self.safe = self.valid & (self.temporal_float < SAFE)
        spatial = np.prod(
            np.stack([np.ones(rows)] + [f.astype(np.float64) for f in self.fanout]), axis=0
        )
        self.spatial_float = spatial
        self.safe &= self.temporal_float * spatial < SAFE
        temporal_columns = [e for e, sl in zip(ext, self.slots, strict=True) if sl.axis is None]
        self.temporal_product = np.where(self.safe, _product(temporal_columns, rows), 0)
        self.spatial_product = _product(self.fanout, rows)
        mesh_x = []
        for s, level in enumerate(spec.levels):
            inner_x = spec.levels[s + 1].mesh_x if s + 1 < n else spec.compute_mesh_x
            mesh_x.append(inner_x // level.mesh_x)
        self.mesh_x_ratio = mesh_x

    def _valid_rows(self, extents: Ints) -> Bools:
        """The rows `validate` accepts: positive extents, products equal to the dimension
        sizes, fan-outs within the mesh ratios (the structure is validated once)."""
        spec = self.spec
        valid = np.all(extents >= 1, axis=1)
        safe = np.where(valid[:, None], extents, 1)
        rows = extents.shape[0]
        for dim, size in self.sizes.items():
            columns = [safe[:, j] for j, sl in enumerate(self.slots) if sl.dim == dim]
            valid &= size >= 1
            valid &= _capped_product(columns, np.maximum(size, 1), rows) == size
        n = len(spec.levels)
        for s, level in enumerate(spec.levels):
            inner = spec.levels[s + 1] if s + 1 < n else None
            inner_x = inner.mesh_x if inner else spec.compute_mesh_x
            inner_y = inner.mesh_y if inner else spec.compute_mesh_y
            for axis, ratio in (("X", inner_x // level.mesh_x), ("Y", inner_y // level.mesh_y)):
                columns = [
                    safe[:, j]
                    for j, sl in enumerate(self.slots)
                    if sl.level == s and sl.axis == axis
                ]
                if columns:
                    valid &= _capped_product(columns, ratio, rows) <= ratio
        return valid


def _product(columns: list[Ints], rows: int) -> Ints:
    """The product of int64 columns, 1 without any (callers bound it)."""
    result = np.ones(rows, dtype=np.int64)
    for column in columns:
        result = result * column
    return result
