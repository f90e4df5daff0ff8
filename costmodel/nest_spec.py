"""The input of the per-nest analysis: a problem (dimensions and tensors), storage levels with
their instances, keep sets and loops, and the arithmetic mesh they feed.

```python
spec = NestSpec(
    dims={"M": 64, "N": 64, "K": 64},
    tensors=(TensorSpec("A", ((Term(1, "M"),), (Term(1, "K"),)), False), ...),
    levels=(LevelSpec("DRAM", 1, 1, frozenset({"A", "B", "Z"}), ()),
            LevelSpec("GLB", 1, 1, frozenset({"A", "B", "Z"}),
                      (Loop("M", 4), Loop("N", 4), Loop("M", 16, "X"), Loop("N", 16, "Y"))),
            LevelSpec("RF", 16, 16, frozenset({"Z"}), (Loop("K", 64),))),
    compute_mesh_x=16, compute_mesh_y=16)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from einsum_opt.support.errors import UserError


class NestSpecError(UserError):
    """A nest the analysis cannot take; the message names the level, loop or tensor."""


@dataclass(frozen=True)
class Term:
    """`coefficient × dim` in a tensor index (the coefficient may be a stride or dilation)."""

    coefficient: int
    dim: str


@dataclass(frozen=True)
class TensorSpec:
    """A tensor: one sum of terms per tensor dimension (Timeloop's data-space projection;
    `Inputs[c, r+p]` is `((Term(1,'C'),), (Term(1,'R'), Term(1,'P')))`); `read_write` for an
    output (or a running value) that is read-modify-written."""

    name: str
    projection: tuple[tuple[Term, ...], ...]
    read_write: bool


@dataclass(frozen=True)
class Loop:
    """A loop over `dim` of `extent` iterations: temporal (`axis` None) or spatial on 'X'/'Y'."""

    dim: str
    extent: int
    axis: str | None = None


@dataclass(frozen=True)
class LevelSpec:
    """A storage level: `mesh_x × mesh_y` instances, the tensors it keeps (the others bypass
    it), and its loops outermost first: temporal loops, then the spatial loops that fan out to
    the next level's instances (or to the arithmetic instances under the last level)."""

    name: str
    mesh_x: int
    mesh_y: int
    keep: frozenset[str]
    loops: tuple[Loop, ...]

    @property
    def instances(self) -> int:
        """mesh_x × mesh_y."""
        return self.mesh_x * self.mesh_y


@dataclass(frozen=True)
class NestSpec:
    """A mapped loop nest: levels outermost first over arithmetic instances in a mesh."""

    dims: Mapping[str, int]
    tensors: tuple[TensorSpec, ...]
    levels: tuple[LevelSpec, ...]
    compute_mesh_x: int
    compute_mesh_y: int


def validate(spec: NestSpec) -> None:
    """Raise `NestSpecError` for the first thing wrong with `spec`."""
    if not spec.levels:
        raise NestSpecError("the nest has no storage level")
    if spec.compute_mesh_x < 1 or spec.compute_mesh_y < 1:
        raise NestSpecError(f"compute: mesh {spec.compute_mesh_x}x{spec.compute_mesh_y} is empty")
    for dim, size in spec.dims.items():
        if not isinstance(size, int) or size < 1:
            raise NestSpecError(f"dimension {dim}: size {size} is not a positive integer")
    _validate_tensors(spec)
    names = [level.name for level in spec.levels]
    for level in spec.levels:
        if names.count(level.name) > 1:
            raise NestSpecError(f"level {level.name}: the name is used twice")
        _validate_level(spec, level)
    _validate_meshes(spec)
    _validate_products(spec)
    for tensor in spec.tensors:
        if not any(tensor.name in level.keep for level in spec.levels):
            raise NestSpecError(f"tensor {tensor.name}: no level keeps it")


def _validate_tensors(spec: NestSpec) -> None:
    seen: set[str] = set()
    for tensor in spec.tensors:
        if tensor.name in seen:
            raise NestSpecError(f"tensor {tensor.name}: the name is used twice")
        seen.add(tensor.name)
        # A tensor without dimensions is a scalar (a running count such as Welford's): a
        # tile of one word at every level that keeps it.
        for rank, terms in enumerate(tensor.projection):
            if not terms:
                raise NestSpecError(f"tensor {tensor.name}: dimension {rank} has no term")
            for term in terms:
                if term.dim not in spec.dims:
                    raise NestSpecError(
                        f"tensor {tensor.name}: dimension {rank} uses unknown dimension {term.dim}"
                    )
                if not isinstance(term.coefficient, int):
                    raise NestSpecError(
                        f"tensor {tensor.name}: coefficient {term.coefficient} of {term.dim} "
                        "is not an integer"
                    )
    if not spec.tensors:
        raise NestSpecError("the nest has no tensor")


def _validate_level(spec: NestSpec, level: LevelSpec) -> None:
    if level.mesh_x < 1 or level.mesh_y < 1:
        raise NestSpecError(f"level {level.name}: mesh {level.mesh_x}x{level.mesh_y} is empty")
    known = {tensor.name for tensor in spec.tensors}
    for name in sorted(level.keep - known):
        raise NestSpecError(f"level {level.name}: keeps unknown tensor {name}")
    spatial_seen = False
    for index, loop in enumerate(level.loops):
        where = f"level {level.name}: loop {index} ({loop.dim} {loop.extent})"
        if loop.dim not in spec.dims:
            raise NestSpecError(f"{where}: unknown dimension {loop.dim}")
        if not isinstance(loop.extent, int) or loop.extent < 1:
            raise NestSpecError(f"{where}: the extent is not a positive integer")
        if loop.axis not in (None, "X", "Y"):
            raise NestSpecError(f"{where}: axis {loop.axis!r} is not None, 'X' or 'Y'")
        if loop.axis is None and spatial_seen:
            raise NestSpecError(f"{where}: a temporal loop after a spatial loop of the level")
        spatial_seen = spatial_seen or loop.axis is not None


def _validate_meshes(spec: NestSpec) -> None:
    """Each level's spatial fan-out fits the mesh ratio to the next level, X and Y apart."""
    for index, level in enumerate(spec.levels):
        if index + 1 < len(spec.levels):
            inner = spec.levels[index + 1]
            inner_x, inner_y, inner_name = inner.mesh_x, inner.mesh_y, f"level {inner.name}"
        else:
            inner_x, inner_y, inner_name = spec.compute_mesh_x, spec.compute_mesh_y, "compute"
        for axis, outer_n, inner_n in (("X", level.mesh_x, inner_x), ("Y", level.mesh_y, inner_y)):
            if inner_n % outer_n:
                raise NestSpecError(
                    f"level {level.name}: mesh {axis} {outer_n} does not divide "
                    f"the {inner_name} mesh {axis} {inner_n}"
                )
            fanout = 1
            for loop in level.loops:
                if loop.axis == axis:
                    fanout *= loop.extent
            if fanout > inner_n // outer_n:
                raise NestSpecError(
                    f"level {level.name}: spatial fan-out {fanout} on {axis} exceeds "
                    f"the mesh ratio {inner_n // outer_n} to {inner_name}"
                )


def _validate_products(spec: NestSpec) -> None:
    for dim, size in spec.dims.items():
        product = 1
        for level in spec.levels:
            for loop in level.loops:
                if loop.dim == dim:
                    product *= loop.extent
        if product != size:
            raise NestSpecError(
                f"dimension {dim}: the loop extents multiply to {product}, not its size {size}"
            )
