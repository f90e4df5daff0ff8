"""Timeloop v0.4 inputs as plain data: architecture, problem, mapping, energy and area tables.

No IR and no cost semantics: these are what the files say, resolved only as far as Timeloop
itself resolves them while reading (instances from names and meshes, block sizes from widths,
a mapping's permutation into loop order, keep/bypass into keep sets)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from einsum_opt.hardware.mapspace import MapspaceConstraints


@dataclass(frozen=True)
class StorageLevel:
    """A buffer of the architecture (Timeloop's BufferLevel specs), per instance.

    `size` is in words (depth × block size), None when unbounded (a DRAM without depth).
    Bandwidths are words per cycle per instance, None when unspecified (unlimited)."""

    name: str
    class_name: str
    instances: int
    mesh_x: int
    mesh_y: int
    technology: str
    word_bits: int
    block_size: int
    cluster_size: int
    size: int | None
    multiple_buffering: float
    read_bandwidth: float | None
    write_bandwidth: float | None
    shared_bandwidth: float | None
    vector_access_energy: float | None
    """A user-given `vector_access_energy` attribute, which Timeloop prefers to the ERT."""


@dataclass(frozen=True)
class ArithmeticLevel:
    """The compute units (Timeloop's ArithmeticUnits specs)."""

    name: str
    class_name: str
    instances: int
    mesh_x: int
    mesh_y: int
    word_bits: int
    energy: float | None
    """A user-given `energy` attribute (pJ per compute), used when the ERT has none."""
    area: float | None
    """A user-given `area` attribute (µm² per instance), used when the ART has none."""


@dataclass(frozen=True)
class Architecture:
    """Storage levels outermost first, then the arithmetic level they feed.

    An architecture written in the front end's node form (`nodes:`) also says which of its
    levels are the dummy levels the front end puts before each spatial fan-out (`fanouts`:
    the name of the container or component that fans out -> its dummy level) and which names
    are containers, which hold no data."""

    storage: tuple[StorageLevel, ...]
    arithmetic: ArithmeticLevel
    fanouts: Mapping[str, str] = field(default_factory=dict)
    containers: frozenset[str] = frozenset()
    node_form: bool = False
    """Whether it was written in the front end's node form, whose mapping directives for one
    level combine (as the front end combines them) instead of replacing each other."""

    def level(self, name: str) -> StorageLevel:
        """The storage level called `name` (KeyError if none)."""
        for level in self.storage:
            if level.name == name:
                return level
        raise KeyError(name)


@dataclass(frozen=True)
class ProjectionTerm:
    """One term of a data-space projection: a dimension times a named coefficient (or 1)."""

    dim: str
    coefficient: str | None


@dataclass(frozen=True)
class DataSpace:
    """A tensor of the problem: one sum of terms per tensor dimension."""

    name: str
    projection: tuple[tuple[ProjectionTerm, ...], ...]
    read_write: bool


@dataclass(frozen=True)
class Problem:
    """The workload: dimension sizes, coefficient values and data spaces."""

    name: str
    dimensions: tuple[str, ...]
    bounds: Mapping[str, int]
    coefficients: Mapping[str, int]
    data_spaces: tuple[DataSpace, ...]

    def coefficient_value(self, term: ProjectionTerm) -> int:
        """The multiplier of `term` (1 without a coefficient)."""
        return 1 if term.coefficient is None else self.coefficients[term.coefficient]


@dataclass(frozen=True)
class MappedLoop:
    """A loop of the mapping: dimension, factor and `None` (temporal) or 'X'/'Y' (spatial)."""

    dim: str
    factor: int
    axis: str | None


@dataclass(frozen=True)
class LevelMapping:
    """What the mapping puts at one storage level.

    `temporal` and `spatial` are outermost first (Timeloop's permutations are innermost first)
    and name every dimension, factor 1 included; `keep` is the data spaces the level holds."""

    target: str
    temporal: tuple[MappedLoop, ...]
    spatial: tuple[MappedLoop, ...]
    keep: frozenset[str]


@dataclass(frozen=True)
class TimeloopMapping:
    """One `LevelMapping` per storage level, outermost first."""

    levels: tuple[LevelMapping, ...]


Ert = Mapping[str, Mapping[str, float]]
"""Energy reference table: component name → action → pJ (the largest over its argument sets,
as Timeloop takes it)."""

Art = Mapping[str, float]
"""Area reference table: component name → µm² per instance."""


@dataclass(frozen=True)
class TimeloopSpec:
    """A whole Timeloop case: what `timeloop-model` reads."""

    architecture: Architecture
    problem: Problem
    mapping: TimeloopMapping | None
    """None for a mapper's input: the mapping is left to be searched."""
    ert: Ert | None
    art: Art | None
    ert_file: str | None = None
    """The file the ERT was read from (None without an ERT), for messages about it."""
    input_file: str | None = None
    """The input the case was read from."""
    constraints: MapspaceConstraints = field(default_factory=MapspaceConstraints)
    """A mapper's input's constraints on the mapping to search (none beside a mapping)."""
