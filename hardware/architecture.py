"""Spatial accelerator descriptions: typed, immutable, validated, loaded from YAML.

An `Architecture` is a tree of **storage levels** (any number, any names: `DRAM`, `GLB`,
`RF`, ... each naming its `parent`) and **units** (arrays of PEs) hanging from levels of the
tree. Each level has instances (a mesh of X x Y), a capacity, an access width (`access_bits`,
the block of one access), read/write/shared bandwidths, multiple buffering, per-action
energies (read, write, update, leakage) and an area. A unit has a shape (its PEs along 1 or 2
axes), the cycles one PE takes per scalar operation kind (`OP_KINDS`), the energy of each
primitive operation, optionally its PEs' registers (a storage level with one instance per PE),
its `pipes` and its `drain_cycles`, and the area and leakage of one PE. A unit's *chain* is
the path of levels from the root (the backing store) down to its PEs' registers: the levels a
nest on that unit can keep its tensors in.

Field names are the YAML keys (`architectures/README.md` is the schema); validation is
pydantic's (`values.py` holds the field checks), and every error is an `ArchitectureError`
naming the file (when there is one) and the field by its dotted path, e.g. `arch.yaml:
units.pe2d.shape: expected 1 or 2 positive integers, got [256, -1]`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, PlainValidator, PrivateAttr, ValidationError

from einsum_opt.hardware.errors import ArchitectureError, join_path, show
from einsum_opt.hardware.operations import (
    OP_KINDS,
    OpCost,
    check_op_energies,
    check_ops,
    check_pipes,
    expand,
)
from einsum_opt.hardware.values import (
    Buffering,
    Energy,
    Flag,
    FrozenMap,
    Name,
    NonNegativeInt,
    NonNegativeNumber,
    PositiveInt,
    PositiveNumber,
    Shape,
    Text,
    is_int,
    named,
)
from einsum_opt.hardware.yaml_text import parse_yaml

__all__ = ["OP_KINDS", "Architecture", "ArchitectureError", "StorageLevel", "Unit"]

REGISTERS = "PE"
"""The storage-level name (as in the einsum mapping's `storage`) of a unit's PE registers."""


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, revalidate_instances="never"
    )

    @classmethod
    def validated(cls, data: Mapping[str, Any]) -> Any:
        """An instance from plain data, every problem an `ArchitectureError` naming the field
        relative to this model."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise schema_error(error, cls) from None

    def replace(self, **changes: Any) -> Any:
        """A validated copy with some fields changed (`unit.replace(drain_cycles=5)`)."""
        known = list(type(self).model_fields)
        for key in changes:
            if key not in known:
                raise ArchitectureError(f"unknown field; the fields are {', '.join(known)}", key)
        values = {key: getattr(self, key) for key in known}
        return type(self).validated({**values, **changes})


# -- storage levels ---------------------------------------------------------------------------


class StorageLevel(_Model):
    """One storage level (DRAM, a global buffer, a register file, a PE's registers).

    Energies are per access of `access_bits` bits (one data word when it is None), stored as
    given: `read_pj` for a read, `write_pj` for a fill, `update_pj` (default: `write_pj`) for
    an update of a partial result; `leak_pj_per_cycle` per instance. The capacity is per
    instance, in bytes (`capacity_bytes`) or words (`entries`), or unbounded; bandwidths are
    `bandwidth_bytes_per_s` (shared by reads and writes) and `read_bandwidth`,
    `write_bandwidth`, `shared_bandwidth` in words per cycle per instance, each None when not
    modelled. `mesh` is the instances along X (and Y); `cluster_size` instances share one
    access (Timeloop's clusters); `default_keep` false makes a staging level: a mapping keeps
    in it only the tensors it homes there.
    """

    read_pj: Energy
    write_pj: Energy
    update_pj: Energy | None = None
    leak_pj_per_cycle: Energy = 0.0
    area_um2: NonNegativeNumber = 0.0
    capacity_bytes: PositiveInt | None = None
    entries: PositiveInt | None = None
    access_bits: PositiveInt | None = None
    word_bits: PositiveInt | None = None
    bandwidth_bytes_per_s: PositiveNumber | None = None
    read_bandwidth: PositiveNumber | None = None
    write_bandwidth: PositiveNumber | None = None
    shared_bandwidth: PositiveNumber | None = None
    multiple_buffering: Buffering = 1.0
    cluster_size: PositiveInt = 1
    parent: Name | None = None
    mesh: Shape | None = None
    default_keep: Flag = True

    def model_post_init(self, context: Any, /) -> None:
        if self.entries is not None and self.capacity_bytes is not None:
            raise ArchitectureError(
                "give the capacity either in bytes or in entries, not both", "entries"
            )

    @property
    def has_capacity(self) -> bool:
        """Whether a capacity is given (in bytes or entries)."""
        return self.capacity_bytes is not None or self.entries is not None

    @property
    def update_energy_pj(self) -> float:
        """Energy of one update access (`update_pj`, else `write_pj`)."""
        return self.write_pj if self.update_pj is None else self.update_pj

    @property
    def instances(self) -> int:
        """Instances of this level (the mesh's product; 1 without a mesh)."""
        return math.prod(self.mesh) if self.mesh else 1

    def word_bits_of(self, word_bytes: int) -> int:
        """Bits of one data word at this level."""
        return self.word_bits if self.word_bits is not None else 8 * word_bytes

    def block_words(self, word_bytes: int) -> int:
        """Data words moved by one access (Timeloop's block size: width / datawidth)."""
        if self.access_bits is None:
            return 1
        return max(1, self.access_bits // self.word_bits_of(word_bytes))

    def capacity_in_bytes(self, word_bytes: int) -> int | None:
        """The capacity of one instance in bytes (None: unbounded)."""
        if self.entries is not None:
            return self.entries * self.word_bits_of(word_bytes) // 8
        return self.capacity_bytes

    def capacity_in_values(self, word_bytes: int) -> int | None:
        """How many data words one instance holds (None: unbounded)."""
        if self.capacity_bytes is not None:
            return self.capacity_bytes * 8 // self.word_bits_of(word_bytes)
        return self.entries

    def bytes_per_access(self, word_bytes: int) -> float:
        """Bytes moved by one access (the unit of `read_pj` and `write_pj`)."""
        if self.access_bits is not None:
            return self.access_bits / 8
        return self.word_bits_of(word_bytes) / 8

    def read_pj_per_byte(self, word_bytes: int) -> float:
        """Read energy per byte."""
        return self.read_pj / self.bytes_per_access(word_bytes)

    def write_pj_per_byte(self, word_bytes: int) -> float:
        """Write energy per byte."""
        return self.write_pj / self.bytes_per_access(word_bytes)

    def read_pj_per_value(self, word_bytes: int) -> float:
        """Read energy per data word."""
        return self.read_pj / self.block_words(word_bytes)

    def write_pj_per_value(self, word_bytes: int) -> float:
        """Write energy per data word."""
        return self.write_pj / self.block_words(word_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this level (fields at their defaults are omitted)."""
        data = self.model_dump(exclude_defaults=True)
        if "mesh" in data:
            data["mesh"] = list(data["mesh"])
        return data


# -- units ------------------------------------------------------------------------------------


class Unit(_Model):
    """An array of identical PEs: its shape, per-PE operation costs, registers and area.

    `ops` maps operation kinds (`OP_KINDS`) to cycles on one PE (primitive operations) or to
    compositions (`{"mac": 6}`). `op_energy_pj` gives the energy of each primitive operation,
    and of nothing else: a composition's energy follows from its parts. `registers` are each
    PE's registers (one instance per PE), or None. `pipes` names pipelined functional units
    that work in parallel, each a tuple of primitive operations (every primitive operation in
    exactly one), or is None: all operations on one pipe. `drain_cycles` are the cycles a
    result takes to leave the array after the unit's last invocation. `parent` is the storage
    level the array hangs from (default: the last one listed); `area_um2` and
    `leak_pj_per_cycle` are per PE.
    """

    shape: Shape
    ops: Annotated[FrozenMap[str, OpCost], PlainValidator(check_ops)]
    op_energy_pj: Annotated[FrozenMap[str, float], PlainValidator(lambda v: v)]
    registers: StorageLevel | None = None
    pipes: Annotated[FrozenMap[str, tuple[str, ...]], PlainValidator(lambda v: v)] | None = None
    drain_cycles: NonNegativeInt = 0
    parent: Name | None = None
    area_um2: NonNegativeNumber = 0.0
    leak_pj_per_cycle: Energy = 0.0
    _expansion: FrozenMap[str, FrozenMap[str, int]] = PrivateAttr()
    _pipe_of: FrozenMap[str, str] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._expansion = expand(self.ops)
        object.__setattr__(self, "op_energy_pj", check_op_energies(self.op_energy_pj, self.ops))
        if self.registers is not None:
            if not self.registers.has_capacity:
                raise ArchitectureError(
                    "required field is missing (or give capacity_bytes)", "registers.entries"
                )
            for key in ("parent", "mesh"):
                if getattr(self.registers, key) is not None:
                    raise ArchitectureError(
                        "a unit's registers have one instance per PE and hang from the unit",
                        f"registers.{key}",
                    )
        pipe_of = {op: "" for op, cost in self.ops.items() if not isinstance(cost, Mapping)}
        if self.pipes is not None:
            pipes = check_pipes(self.pipes, self.ops)
            object.__setattr__(self, "pipes", pipes)
            pipe_of = {op: name for name, members in pipes.items() for op in members}
        self._pipe_of = FrozenMap(pipe_of)

    @property
    def expansion(self) -> Mapping[str, Mapping[str, int]]:
        """Each operation as counts of primitive operations (derived from `ops`)."""
        return self._expansion

    @property
    def pipe_of(self) -> Mapping[str, str]:
        """Each primitive operation's pipe (`""` for all without pipes)."""
        return self._pipe_of

    @property
    def pes(self) -> int:
        """The number of PEs."""
        return math.prod(self.shape)

    @property
    def mesh(self) -> tuple[int, int]:
        """PEs along X and Y (a 1D array is N x 1)."""
        return (self.shape[0], self.shape[1] if len(self.shape) > 1 else 1)

    def primitive_counts(self, op_counts: Mapping[str, int]) -> dict[str, int]:
        """`op_counts` with every composition expanded into primitive operations."""
        counts: dict[str, int] = {}
        for op, count in op_counts.items():
            if op not in OP_KINDS:
                raise ArchitectureError(
                    f"unknown operation {op!r}; the operations are {', '.join(OP_KINDS)}"
                )
            if op not in self._expansion:
                raise ArchitectureError(
                    f"no operation {op!r} (this unit has {', '.join(self.ops)})", "ops"
                )
            if not is_int(count) or count < 0:
                raise ArchitectureError(
                    f"expected a non-negative count of {op!r} operations, got {show(count)}"
                )
            for primitive, n in self._expansion[op].items():
                counts[primitive] = counts.get(primitive, 0) + count * n
        return counts

    def cycles(self, op_counts: Mapping[str, int]) -> int:
        """Cycles one PE takes for `op_counts`: operations on one pipe run one after another,
        the pipes in parallel (the busiest pipe's cycles; without `pipes`, the sum)."""
        per_pipe: dict[str, int] = {}
        for op, count in self.primitive_counts(op_counts).items():
            cost = self.ops[op]
            assert not isinstance(cost, Mapping)
            pipe = self._pipe_of[op]
            per_pipe[pipe] = per_pipe.get(pipe, 0) + count * cost
        return max(per_pipe.values(), default=0)

    def energy_pj(self, op_counts: Mapping[str, int]) -> float:
        """Energy in pJ of `op_counts` on one PE."""
        return sum(
            count * self.op_energy_pj[op] for op, count in self.primitive_counts(op_counts).items()
        )

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this unit."""
        data: dict[str, Any] = {}
        if self.parent is not None:
            data["parent"] = self.parent
        data["shape"] = list(self.shape)
        if self.registers is not None:
            data["registers"] = self.registers.to_dict()
        data["ops"] = {
            op: dict(cost) if isinstance(cost, Mapping) else cost for op, cost in self.ops.items()
        }
        data["op_energy_pj"] = dict(self.op_energy_pj)
        if self.pipes is not None:
            data["pipes"] = {name: list(members) for name, members in self.pipes.items()}
        if self.drain_cycles:
            data["drain_cycles"] = self.drain_cycles
        if self.area_um2:
            data["area_um2"] = self.area_um2
        if self.leak_pj_per_cycle:
            data["leak_pj_per_cycle"] = self.leak_pj_per_cycle
        return data


# -- architectures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainLevel:
    """One level of a unit's chain: its name in mappings (`PE` for the unit's registers), the
    name reports use (`pe2d.PE`), the level and its instances along X and Y."""

    name: str
    label: str
    level: StorageLevel
    mesh: tuple[int, int]

    @property
    def instances(self) -> int:
        """The number of instances."""
        return self.mesh[0] * self.mesh[1]


class Architecture(_Model):
    """A spatial accelerator: storage levels (a tree), units, clock and data word size.

    Immutable and validated on construction; `with_changes`, `with_unit` and `with_level`
    make what-if variants. `units` and `storage` are keyed by name, `storage` outermost first.
    """

    name: Name
    clock_mhz: PositiveNumber
    word_bytes: PositiveInt
    units: Annotated[Mapping[str, Unit], named("units", "unit")]
    storage: Annotated[Mapping[str, StorageLevel], named("storage levels", "level")]
    description: Text = ""
    _parents: FrozenMap[str, str | None] = PrivateAttr()
    _chains: FrozenMap[str, tuple[ChainLevel, ...]] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "units", FrozenMap(self.units))
        object.__setattr__(self, "storage", FrozenMap(self.storage))
        if not self.units:
            raise ArchitectureError("expected at least one unit", "units")
        if not self.storage:
            raise ArchitectureError("expected at least one storage level", "storage")
        parents: dict[str, str | None] = {}
        previous: str | None = None
        for level_name, level in self.storage.items():
            parent = level.parent if level.parent is not None else previous
            if previous is None and level.parent is not None:
                raise ArchitectureError(
                    "the first storage level is the root (the backing store): it has no parent",
                    f"storage.{level_name}.parent",
                )
            if parent is not None and parent not in parents:
                raise ArchitectureError(
                    f"no storage level {parent!r} listed before this one (levels are listed "
                    f"outermost first: {', '.join(parents)})",
                    f"storage.{level_name}.parent",
                )
            parents[level_name] = parent
            if parent is not None:
                _check_fanout(self.storage[parent].mesh or (1,), level.mesh or (1,),
                              f"storage.{level_name}.mesh", parent)
            previous = level_name
        self._parents = FrozenMap(parents)
        chains: dict[str, tuple[ChainLevel, ...]] = {}
        last = previous
        for unit_name, unit in self.units.items():
            parent = unit.parent if unit.parent is not None else last
            if parent is None or parent not in self.storage:
                raise ArchitectureError(
                    f"no storage level {parent!r}; the levels are {', '.join(self.storage)}",
                    f"units.{unit_name}.parent",
                )
            path: list[ChainLevel] = []
            node: str | None = parent
            while node is not None:
                level = self.storage[node]
                path.append(ChainLevel(node, node, level, _mesh2(level.mesh)))
                node = parents[node]
            path.reverse()
            _check_fanout(self.storage[parent].mesh or (1,), unit.shape,
                          f"units.{unit_name}.shape", parent)
            if unit.registers is not None:
                path.append(
                    ChainLevel(REGISTERS, f"{unit_name}.{REGISTERS}", unit.registers, unit.mesh)
                )
            chains[unit_name] = tuple(path)
        self._chains = FrozenMap(chains)

    # -- the tree -----------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """The outermost storage level (the backing store)."""
        return next(iter(self.storage))

    def parent_of(self, level: str) -> str | None:
        """The parent of a storage level (None for the root)."""
        return self._parents[level]

    def chain(self, unit: str) -> tuple[ChainLevel, ...]:
        """The levels of `unit`'s chain, outermost first, ending with its PEs' registers."""
        self.unit(unit)
        return self._chains[unit]

    def chain_names(self, unit: str) -> tuple[str, ...]:
        """The names of `unit`'s chain as mappings use them (`PE` for its registers)."""
        return tuple(c.name for c in self.chain(unit))

    def shared_levels(self) -> tuple[str, ...]:
        """The storage levels every unit's chain passes through, outermost first."""
        chains = [set(self.chain_names(u)) for u in self.units]
        return tuple(n for n in self.storage if all(n in c for c in chains))

    def buffer_level(self) -> str:
        """The global buffer: the innermost level every unit shares that keeps tensors by
        default and has a capacity (the root if there is none)."""
        found = [
            n
            for n in self.shared_levels()
            if n != self.root and self.storage[n].default_keep and self.storage[n].has_capacity
        ]
        return found[-1] if found else self.root

    def staging_level(self) -> str | None:
        """The level that stages values between units: a shared level below the buffer that
        keeps only what mappings home there (None if there is none)."""
        shared = self.shared_levels()
        below = shared[shared.index(self.buffer_level()) + 1 :]
        staging = [n for n in below if not self.storage[n].default_keep]
        return staging[-1] if staging else None

    def units_with_axes(self, axes: int) -> tuple[str, ...]:
        """The units whose arrays have `axes` axes (1 or 2), in order."""
        return tuple(n for n, u in self.units.items() if len(u.shape) == axes)

    # -- queries ------------------------------------------------------------------------------

    @property
    def clock_hz(self) -> float:
        """The clock frequency in Hz."""
        return self.clock_mhz * 1e6

    def seconds(self, cycles: float) -> float:
        """`cycles` clock cycles in seconds."""
        return cycles / self.clock_hz

    def unit(self, name: str) -> Unit:
        """The unit called `name` (an error lists the units otherwise)."""
        try:
            return self.units[name]
        except KeyError:
            raise ArchitectureError(
                f"no unit {name!r}; the units are {', '.join(self.units)}", source=self.name
            ) from None

    def level(self, name: str, unit: str | None = None) -> StorageLevel:
        """The storage level `name`, or `PE`: the registers of `unit`."""
        if name == REGISTERS and name not in self.storage:
            if unit is None:
                raise ArchitectureError(
                    f"the {REGISTERS} level is a unit's registers: name the unit", source=self.name
                )
            registers = self.unit(unit).registers
            if registers is None:
                raise ArchitectureError(
                    "this unit has no registers", f"units.{unit}.registers", self.name
                )
            return registers
        try:
            return self.storage[name]
        except KeyError:
            known = ", ".join([*self.storage, REGISTERS])
            raise ArchitectureError(
                f"no storage level {name!r}; the levels are {known}", source=self.name
            ) from None

    def capacity_bytes(self, level: str, unit: str | None = None) -> int | None:
        """The capacity of one instance of a storage level in bytes (None: unbounded)."""
        return self.level(level, unit).capacity_in_bytes(self.word_bytes)

    def capacity_values(self, level: str, unit: str | None = None) -> int | None:
        """How many data words one instance of a storage level holds (None: unbounded)."""
        return self.level(level, unit).capacity_in_values(self.word_bytes)

    def bytes_per_cycle(self, level: str | None = None) -> float:
        """A level's shared bandwidth (`bandwidth_bytes_per_s`) in bytes per clock cycle."""
        level = level or self.root
        bandwidth = self.level(level).bandwidth_bytes_per_s
        if bandwidth is None:
            raise ArchitectureError(
                "no bandwidth given", f"storage.{level}.bandwidth_bytes_per_s", self.name
            )
        return bandwidth / self.clock_hz

    def read_pj_per_byte(self, level: str, unit: str | None = None) -> float:
        """Read energy per byte of a storage level (e.g. DRAM: 249.6 / 8)."""
        return self.level(level, unit).read_pj_per_byte(self.word_bytes)

    def write_pj_per_byte(self, level: str, unit: str | None = None) -> float:
        """Write energy per byte of a storage level."""
        return self.level(level, unit).write_pj_per_byte(self.word_bytes)

    def read_pj_per_value(self, level: str, unit: str | None = None) -> float:
        """Read energy per data word of a storage level."""
        return self.level(level, unit).read_pj_per_value(self.word_bytes)

    def write_pj_per_value(self, level: str, unit: str | None = None) -> float:
        """Write energy per data word of a storage level."""
        return self.level(level, unit).write_pj_per_value(self.word_bytes)

    def cycles(self, unit: str, op_counts: Mapping[str, int]) -> int:
        """Cycles one PE of `unit` takes for one invocation's `op_counts` (operation kind ->
        count), compositions expanded, pipes in parallel: on FuseMax's `pe2d`, `{"exp": 1,
        "add": 1}` is 7; on FLAT's `pe1d` (exp on its own pipe) it is 1."""
        try:
            return self.unit(unit).cycles(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    def primitive_counts(self, unit: str, op_counts: Mapping[str, int]) -> dict[str, int]:
        """`op_counts` on `unit` with compositions expanded into primitive operations."""
        try:
            return self.unit(unit).primitive_counts(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    def op_energy_pj(self, unit: str, op_counts: Mapping[str, int]) -> float:
        """Energy in pJ of `op_counts` on one PE of `unit`, compositions expanded."""
        try:
            return self.unit(unit).energy_pj(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    # -- conversions --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object, source: str = "", default_name: str = "") -> Architecture:
        """An architecture from its YAML mapping. Errors name `source` (a file name) and the
        field; `default_name` is the name when the mapping gives none."""
        if isinstance(data, Mapping) and "name" not in data and default_name:
            data = {"name": default_name, **data}
        if not isinstance(data, Mapping):
            raise ArchitectureError(f"expected a mapping, got {show(data)}", source=source)
        try:
            return cls.validated(data)
        except ArchitectureError as error:
            raise error.from_source(source) from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", default_name: str = "") -> Architecture:
        """An architecture from YAML text (`source` names it in error messages)."""
        return cls.from_dict(parse_yaml(text, source), source, default_name)

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this architecture (`from_dict(to_dict())` gives it back)."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["clock_mhz"] = self.clock_mhz
        data["word_bytes"] = self.word_bytes
        data["units"] = {name: unit.to_dict() for name, unit in self.units.items()}
        data["storage"] = {name: level.to_dict() for name, level in self.storage.items()}
        return data

    def to_yaml(self) -> str:
        """This architecture as YAML text (`from_yaml(to_yaml())` gives it back)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    # -- what-if variants ---------------------------------------------------------------------

    def with_changes(
        self, changes: Mapping[str, object] | None = None, /, **fields: object
    ) -> Architecture:
        """A validated copy with some fields changed, addressed by their dotted schema path
        (`{"units.pe2d.shape": [128, 256], "units.pe2d.drain_cycles": 128}`) or, for
        top-level fields, by keyword (`clock_mhz=470`). A value of None removes the field
        (`{"storage.RF": None}`); `Unit` and `StorageLevel` values are accepted as well."""
        data = self.to_dict()
        for path, value in {**(changes or {}), **fields}.items():
            _set_path(data, path, value)
        return Architecture.from_dict(data, source=f"{self.name} (changed)")

    def with_unit(self, name: str, **changes: Any) -> Architecture:
        """A copy with unit `name`'s fields changed (`arch.with_unit("pe2d", shape=(128,
        256))`)."""
        self.unit(name)
        return self.with_changes({f"units.{name}.{key}": v for key, v in changes.items()})

    def with_level(self, name: str, **changes: Any) -> Architecture:
        """A copy with storage level `name`'s fields changed (`arch.with_level("DRAM",
        bandwidth_bytes_per_s=200 * 2**30)`)."""
        self.level(name)
        return self.with_changes({f"storage.{name}.{key}": v for key, v in changes.items()})


def _mesh2(mesh: tuple[int, ...] | None) -> tuple[int, int]:
    if not mesh:
        return (1, 1)
    return (mesh[0], mesh[1] if len(mesh) > 1 else 1)


def _check_fanout(outer: tuple[int, ...], inner: tuple[int, ...], path: str, parent: str) -> None:
    """Instances along each axis must be a multiple of the parent's (an integer fan-out)."""
    ox, oy = _mesh2(outer)
    ix, iy = _mesh2(inner)
    if ix % ox or iy % oy:
        raise ArchitectureError(
            f"{ix} x {iy} instances under {parent}'s {ox} x {oy}: each axis must be a "
            "multiple of its parent's (an integer fan-out)",
            path,
        )


# -- pydantic errors --------------------------------------------------------------------------

_TYPE_WORDS = {
    "dict_type": "a mapping",
    "mapping_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
}


def schema_error(error: ValidationError, model: type[BaseModel]) -> ArchitectureError:
    """The first problem pydantic found, as an `ArchitectureError` naming the field by its
    dotted path and saying what was expected."""
    first = error.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    path = ".".join(loc)
    kind = first["type"]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ArchitectureError):
        return ArchitectureError(cause.reason, join_path(path, cause.field))
    if kind == "missing":
        return ArchitectureError("required field is missing", path)
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        listed = f"; the fields are {', '.join(known)}" if known else ""
        return ArchitectureError(f"unknown field{listed}", path)
    if kind in _TYPE_WORDS:
        return ArchitectureError(f"expected {_TYPE_WORDS[kind]}, got {show(first['input'])}", path)
    message = str(cause) if cause is not None else first["msg"]
    return ArchitectureError(message.removeprefix("Value error, "), path)


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names of the model found at `loc` under `model` (empty if not a model)."""
    current: type[BaseModel] | None = model
    parts = iter(loc)
    for part in parts:
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return []
        current = _model_of(field.annotation)
        if current is not None and _is_mapping(field.annotation):
            next(parts, None)  # the key of a mapping by name (units.<name>)
    return list(current.model_fields) if current is not None else []


def _is_mapping(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return _is_mapping(get_args(annotation)[0])
    return get_origin(annotation) in (Mapping, dict)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel class inside an annotation (`Unit | None`, `Mapping[str, Unit]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _set_path(data: dict[str, Any], path: str, value: object) -> None:
    """Set (or, for None, remove) the field at dotted `path` of a `to_dict()` mapping."""
    keys = path.split(".")
    node: Any = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            where = ".".join(keys[: depth + 1])
            raise ArchitectureError(f"no such mapping to change (changing {path})", where)
        node = child
    if isinstance(value, Unit | StorageLevel):
        value = value.to_dict()
    elif isinstance(value, tuple):
        value = list(value)
    if value is None:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
