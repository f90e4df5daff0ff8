"""Spatial accelerator descriptions: typed, immutable, loaded from YAML and validated.

An `Architecture` is what the cost model needs to know about the hardware:

- **units**: arrays of processing elements, each with a shape (1 or 2 axes: `[256, 256]` for a
  2D array, `[256]` for a 1D array), the cycles one PE takes per scalar operation kind
  (`OP_KINDS`), the energy of each primitive operation, and optionally its PE registers, its
  `pipes` and its `drain_cycles`. An operation is either primitive (`add: 1`, one cycle on its
  own hardware) or a composition of other operations (`exp: {mac: 6}`: FuseMax computes exp
  with a 5th-order polynomial, 5 FMAs and a multiply, on the MAC unit), expanded recursively
  for both cycles and energy. `pipes` groups the primitive operations into pipelined functional
  units that work in parallel (FLAT's exp unit beside the ALU); `drain_cycles` is how long a
  result takes to leave the array after the unit's last invocation;
- **storage** levels `DRAM` (with a bandwidth), `GLB` (the global buffer, with a capacity) and
  optionally `RF` (the register file staging values between arrays), each with the energy of
  one read and one write of `access_bits` bits;
- the clock (`clock_mhz`) and the data word size (`word_bytes`).

Field names are the YAML keys (see `architectures/README.md` for the schema), so
`dataclasses.replace(arch, word_bytes=4)`, `Architecture.with_changes({"units.pe2d.shape":
[128, 256]})` and `to_dict()` all speak the same language. Every constructor validates: a bad
value raises `ArchitectureError`, whose message names the file (when there is one) and the
field by its dotted path, e.g. `arch.yaml: units.pe2d.shape: expected 1 or 2 positive integers,
got [256, -1]`.

The built-in descriptions are `fusemax`, `flat` and `edge` (`architectures/*.yaml`);
`load_architecture` takes one of those names or the path of a YAML file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml

OP_KINDS: tuple[str, ...] = ("mac", "mul", "add", "max", "exp", "div", "sqrt", "log")
"""Scalar operation kinds a unit's `ops` table may cost. A subtraction counts as an `add`, a
`min` as a `max`, a multiply-accumulate (`a * b + c`) as one `mac`."""

STORAGE_LEVELS: tuple[str, ...] = ("DRAM", "GLB", "RF")
"""Storage levels an architecture may describe, outermost first; DRAM and GLB are required."""

REGISTERS = "PE"
"""The storage-level name (as in the einsum mapping's `storage`) of a unit's PE registers."""

ARCHITECTURE_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "clock_mhz",
    "word_bytes",
    "units",
    "storage",
)
"""Top-level keys of an architecture file."""

UNIT_KEYS: tuple[str, ...] = (
    "shape",
    "registers",
    "ops",
    "op_energy_pj",
    "pipes",
    "drain_cycles",
)
"""Keys of one unit."""

LEVEL_KEYS: tuple[str, ...] = (
    "capacity_bytes",
    "entries",
    "bandwidth_bytes_per_s",
    "access_bits",
    "read_pj",
    "write_pj",
)
"""Keys of one storage level (and of a unit's `registers`)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

K = TypeVar("K")
V = TypeVar("V")

OpCost = int | Mapping[str, int]
"""One entry of a unit's `ops` table: cycles of a primitive operation, or a composition
(operation -> how many of it)."""


class ArchitectureError(ValueError):
    """An invalid architecture description or query: `source: field.path: reason`.

    `source` is the file (or another name for where the description came from) and `field`
    the dotted path of the offending field in the YAML schema; either may be empty.
    """

    def __init__(self, reason: str, field: str = "", source: str = ""):
        self.reason = reason
        self.field = field
        self.source = source
        super().__init__(": ".join(part for part in (source, field, reason) if part))

    def within(self, prefix: str) -> ArchitectureError:
        """The same error about the field `prefix.<field>`."""
        return ArchitectureError(self.reason, _join(prefix, self.field), self.source)

    def from_source(self, source: str) -> ArchitectureError:
        """The same error, attributed to `source` unless it already names one."""
        return ArchitectureError(self.reason, self.field, self.source or source)


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping that keeps insertion order."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()):
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


# -- value checks ---------------------------------------------------------------------------


def _join(prefix: str, path: str) -> str:
    return ".".join(part for part in (prefix, path) if part)


def _show(value: object) -> str:
    """`value` as it would read in YAML flow style (lists in brackets, null, true/false)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: object, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ArchitectureError(f"expected a positive integer, got {_show(value)}", path)


def _positive_number(value: object, path: str) -> float:
    if isinstance(value, int | float) and _is_number(value) and value > 0:
        return value
    raise ArchitectureError(f"expected a positive number, got {_show(value)}", path)


def _non_negative_int(value: object, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ArchitectureError(f"expected a non-negative integer, got {_show(value)}", path)


def _energy(value: object, path: str) -> float:
    if isinstance(value, int | float) and _is_number(value) and value >= 0:
        return value
    raise ArchitectureError(f"expected a non-negative energy in pJ, got {_show(value)}", path)


def _check_keys(value: object, path: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    """`value` as a mapping whose keys are all in `known` (an error lists them otherwise)."""
    if not isinstance(value, Mapping):
        raise ArchitectureError(f"expected a mapping, got {_show(value)}", path)
    for key in value:
        if key not in known:
            raise ArchitectureError(
                f"unknown key; the known keys are {', '.join(known)}", _join(path, str(key))
            )
    return value


def _require(value: Mapping[str, Any], path: str, keys: Iterable[str]) -> None:
    for key in keys:
        if key not in value:
            raise ArchitectureError("required field is missing", _join(path, key))


def _named_entries(value: object, path: str) -> Mapping[str, Any]:
    """A mapping from identifiers (unit names) to anything."""
    if not isinstance(value, Mapping):
        raise ArchitectureError(f"expected a mapping of units by name, got {_show(value)}", path)
    for key in value:
        if not isinstance(key, str) or not _NAME.match(key):
            raise ArchitectureError(
                "a unit name must be an identifier (letters, digits, _)", _join(path, str(key))
            )
    return value


# -- storage levels ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageLevel:
    """One storage level (DRAM, the global buffer, a register file, a PE's registers).

    `read_pj` and `write_pj` are the energies of one access of `access_bits` bits (one data
    word when `access_bits` is None), stored as given; the `*_per_byte` / `*_per_value`
    helpers derive per-byte and per-value energies from them. The capacity is given either in
    bytes (`capacity_bytes`) or in data words (`entries`), or not at all (unbounded); the
    bandwidth, in bytes per second, is None when it is not modelled.
    """

    read_pj: float
    write_pj: float
    capacity_bytes: int | None = None
    entries: int | None = None
    bandwidth_bytes_per_s: float | None = None
    access_bits: int | None = None

    def __post_init__(self) -> None:
        _energy(self.read_pj, "read_pj")
        _energy(self.write_pj, "write_pj")
        if self.capacity_bytes is not None:
            _positive_int(self.capacity_bytes, "capacity_bytes")
        if self.entries is not None:
            _positive_int(self.entries, "entries")
            if self.capacity_bytes is not None:
                raise ArchitectureError(
                    "give the capacity either in bytes or in entries, not both", "entries"
                )
        if self.bandwidth_bytes_per_s is not None:
            _positive_number(self.bandwidth_bytes_per_s, "bandwidth_bytes_per_s")
        if self.access_bits is not None:
            _positive_int(self.access_bits, "access_bits")

    @property
    def has_capacity(self) -> bool:
        """Whether a capacity is given (in bytes or entries)."""
        return self.capacity_bytes is not None or self.entries is not None

    def capacity_in_bytes(self, word_bytes: int) -> int | None:
        """The capacity in bytes (None: unbounded)."""
        if self.entries is not None:
            return self.entries * word_bytes
        return self.capacity_bytes

    def capacity_in_values(self, word_bytes: int) -> int | None:
        """How many data words fit (None: unbounded)."""
        if self.capacity_bytes is not None:
            return self.capacity_bytes // word_bytes
        return self.entries

    def bytes_per_access(self, word_bytes: int) -> float:
        """Bytes moved by one access (the unit of `read_pj` and `write_pj`)."""
        return self.access_bits / 8 if self.access_bits is not None else float(word_bytes)

    def read_pj_per_byte(self, word_bytes: int) -> float:
        """Read energy per byte."""
        return self.read_pj / self.bytes_per_access(word_bytes)

    def write_pj_per_byte(self, word_bytes: int) -> float:
        """Write energy per byte."""
        return self.write_pj / self.bytes_per_access(word_bytes)

    def read_pj_per_value(self, word_bytes: int) -> float:
        """Read energy per data word of `word_bytes` bytes."""
        return self.read_pj_per_byte(word_bytes) * word_bytes

    def write_pj_per_value(self, word_bytes: int) -> float:
        """Write energy per data word of `word_bytes` bytes."""
        return self.write_pj_per_byte(word_bytes) * word_bytes

    @classmethod
    def from_dict(cls, data: object, path: str = "") -> StorageLevel:
        """A level from its YAML mapping; errors name fields under `path`."""
        try:
            fields = _check_keys(data, "", LEVEL_KEYS)
            _require(fields, "", ("read_pj", "write_pj"))
            return cls(**fields)
        except ArchitectureError as error:
            raise error.within(path) from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this level (fields left at None are omitted)."""
        values = {
            "capacity_bytes": self.capacity_bytes,
            "entries": self.entries,
            "bandwidth_bytes_per_s": self.bandwidth_bytes_per_s,
            "access_bits": self.access_bits,
            "read_pj": self.read_pj,
            "write_pj": self.write_pj,
        }
        return {key: value for key, value in values.items() if value is not None}


# -- units ------------------------------------------------------------------------------------


def _check_shape(shape: object) -> tuple[int, ...]:
    if (
        not isinstance(shape, list | tuple)
        or len(shape) not in (1, 2)
        or not all(_is_int(side) and side > 0 for side in shape)
    ):
        raise ArchitectureError(f"expected 1 or 2 positive integers, got {_show(shape)}", "shape")
    return tuple(shape)


def _check_ops(ops: object) -> FrozenMap[str, OpCost]:
    """The `ops` table: known kinds; primitive cycles or compositions of defined operations."""
    if not isinstance(ops, Mapping):
        raise ArchitectureError(f"expected a mapping of operation costs, got {_show(ops)}", "ops")
    if not ops:
        raise ArchitectureError("expected at least one operation", "ops")
    table: dict[str, OpCost] = {}
    for op, cost in ops.items():
        path = f"ops.{op}"
        if op not in OP_KINDS:
            raise ArchitectureError(
                f"unknown operation; the operations are {', '.join(OP_KINDS)}", path
            )
        if isinstance(cost, Mapping):
            if not cost:
                raise ArchitectureError("expected at least one operation in the composition", path)
            for part, count in cost.items():
                part_path = f"{path}.{part}"
                if part not in OP_KINDS:
                    raise ArchitectureError(
                        f"composition refers to an unknown operation; the operations are "
                        f"{', '.join(OP_KINDS)}",
                        part_path,
                    )
                if part not in ops:
                    raise ArchitectureError(
                        f"composition refers to {part!r}, which this unit's ops do not define "
                        f"(they define {', '.join(ops)})",
                        part_path,
                    )
                _positive_int(count, part_path)
            table[op] = FrozenMap(cost)
        elif _is_int(cost) and cost > 0:
            table[op] = cost
        else:
            raise ArchitectureError(
                f"expected a positive number of cycles or a composition such as {{mac: 6}}, "
                f"got {_show(cost)}",
                path,
            )
    return FrozenMap(table)


def _expand(ops: Mapping[str, OpCost]) -> FrozenMap[str, FrozenMap[str, int]]:
    """Each operation as counts of primitive operations; a cyclic composition is an error."""
    done: dict[str, FrozenMap[str, int]] = {}

    def visit(op: str, stack: list[str]) -> FrozenMap[str, int]:
        if op in done:
            return done[op]
        if op in stack:
            cycle = [*stack[stack.index(op) :], op]
            raise ArchitectureError(f"cyclic composition {' -> '.join(cycle)}", f"ops.{op}")
        cost = ops[op]
        counts: dict[str, int] = {}
        if isinstance(cost, Mapping):
            for part, count in cost.items():
                for primitive, n in visit(part, [*stack, op]).items():
                    counts[primitive] = counts.get(primitive, 0) + count * n
        else:
            counts[op] = 1
        done[op] = FrozenMap(counts)
        return done[op]

    for op in ops:
        visit(op, [])
    return FrozenMap((op, done[op]) for op in ops)


def _check_pipes(pipes: object, ops: Mapping[str, OpCost]) -> FrozenMap[str, tuple[str, ...]]:
    """The `pipes` table: each primitive operation of `ops` in exactly one named pipe."""
    if not isinstance(pipes, Mapping):
        raise ArchitectureError(
            f"expected a mapping of pipes by name (name: [operations]), got {_show(pipes)}",
            "pipes",
        )
    primitives = [op for op, cost in ops.items() if not isinstance(cost, Mapping)]
    pipe_of: dict[str, str] = {}
    table: dict[str, tuple[str, ...]] = {}
    for name, members in pipes.items():
        path = f"pipes.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ArchitectureError("a pipe name must be an identifier (letters, digits, _)", path)
        if not isinstance(members, list | tuple) or not members:
            raise ArchitectureError(
                f"expected a non-empty list of operations, got {_show(members)}", path
            )
        for op in members:
            if op not in OP_KINDS:
                raise ArchitectureError(
                    f"unknown operation {_show(op)}; the operations are {', '.join(OP_KINDS)}",
                    path,
                )
            if op not in ops:
                raise ArchitectureError(
                    f"{op!r} is not one of this unit's ops (they are {', '.join(ops)})", path
                )
            if isinstance(ops[op], Mapping):
                raise ArchitectureError(
                    f"{op!r} is a composition (ops.{op}); a pipe lists primitive operations, "
                    f"which are {', '.join(primitives)}",
                    path,
                )
            if op in pipe_of:
                where = "this pipe" if pipe_of[op] == name else f"pipe {pipe_of[op]!r}"
                raise ArchitectureError(
                    f"{op!r} is already in {where}; each operation is in exactly one pipe", path
                )
            pipe_of[op] = name
        table[name] = tuple(members)
    missing = [op for op in primitives if op not in pipe_of]
    if missing:
        raise ArchitectureError(
            f"primitive operations {', '.join(map(repr, missing))} are in no pipe; each "
            f"primitive operation must be in exactly one",
            "pipes",
        )
    return FrozenMap(table)


@dataclass(frozen=True)
class Unit:
    """An array of identical PEs: its shape, per-PE operation costs and registers.

    `ops` maps operation kinds (`OP_KINDS`) to cycles on one PE (primitive operations) or to
    compositions (`{"mac": 6}`). `op_energy_pj` gives the energy of each primitive operation,
    and of nothing else: a composition's energy follows from its parts. `registers` are each
    PE's registers (`entries` of one data word), or None. `pipes` names pipelined functional
    units that work in parallel, each a tuple of primitive operations (every primitive operation
    in exactly one), or is None: all operations on one pipe. `drain_cycles` are the cycles a
    result takes to leave the array after the unit's last invocation.
    """

    shape: tuple[int, ...]
    ops: Mapping[str, OpCost]
    op_energy_pj: Mapping[str, float]
    registers: StorageLevel | None = None
    pipes: Mapping[str, tuple[str, ...]] | None = None
    drain_cycles: int = 0
    expansion: Mapping[str, Mapping[str, int]] = field(init=False, repr=False, compare=False)
    """Each operation as counts of primitive operations (derived from `ops`)."""
    pipe_of: Mapping[str, str] = field(init=False, repr=False, compare=False)
    """Each primitive operation's pipe (derived from `pipes`; `""` for all without pipes)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _check_shape(self.shape))
        ops = _check_ops(self.ops)
        object.__setattr__(self, "ops", ops)
        object.__setattr__(self, "expansion", _expand(ops))
        energies = self.op_energy_pj
        if not isinstance(energies, Mapping):
            raise ArchitectureError(
                f"expected a mapping of energies by operation, got {_show(energies)}",
                "op_energy_pj",
            )
        for op, energy in energies.items():
            path = f"op_energy_pj.{op}"
            if op not in OP_KINDS:
                raise ArchitectureError(
                    f"unknown operation; the operations are {', '.join(OP_KINDS)}", path
                )
            if op not in ops:
                raise ArchitectureError(f"{op!r} is not one of this unit's ops", path)
            if isinstance(ops[op], Mapping):
                raise ArchitectureError(
                    f"{op!r} is a composition (ops.{op}); its energy follows from its parts",
                    path,
                )
            _energy(energy, path)
        for op, cost in ops.items():
            if not isinstance(cost, Mapping) and op not in energies:
                raise ArchitectureError(
                    f"required field is missing (the energy of primitive operation {op!r})",
                    f"op_energy_pj.{op}",
                )
        object.__setattr__(self, "op_energy_pj", FrozenMap(energies))
        if self.registers is not None:
            if not isinstance(self.registers, StorageLevel):
                raise ArchitectureError(
                    f"expected a StorageLevel, got {_show(self.registers)}", "registers"
                )
            if not self.registers.has_capacity:
                raise ArchitectureError(
                    "required field is missing (or give capacity_bytes)", "registers.entries"
                )
        pipe_of = {op: "" for op, cost in ops.items() if not isinstance(cost, Mapping)}
        if self.pipes is not None:
            pipes = _check_pipes(self.pipes, ops)
            object.__setattr__(self, "pipes", pipes)
            pipe_of = {op: name for name, members in pipes.items() for op in members}
        object.__setattr__(self, "pipe_of", FrozenMap(pipe_of))
        _non_negative_int(self.drain_cycles, "drain_cycles")

    @property
    def pes(self) -> int:
        """The number of PEs."""
        return math.prod(self.shape)

    def primitive_counts(self, op_counts: Mapping[str, int]) -> dict[str, int]:
        """`op_counts` with every composition expanded into primitive operations."""
        counts: dict[str, int] = {}
        for op, count in op_counts.items():
            if op not in OP_KINDS:
                raise ArchitectureError(
                    f"unknown operation {op!r}; the operations are {', '.join(OP_KINDS)}"
                )
            if op not in self.expansion:
                raise ArchitectureError(
                    f"no operation {op!r} (this unit has {', '.join(self.ops)})", "ops"
                )
            if not _is_int(count) or count < 0:
                raise ArchitectureError(
                    f"expected a non-negative count of {op!r} operations, got {_show(count)}"
                )
            for primitive, n in self.expansion[op].items():
                counts[primitive] = counts.get(primitive, 0) + count * n
        return counts

    def cycles(self, op_counts: Mapping[str, int]) -> int:
        """Cycles one PE takes for `op_counts`: operations on one pipe run one after another,
        the pipes in parallel (the busiest pipe's cycles; without `pipes`, the sum)."""
        per_pipe: dict[str, int] = {}
        for op, count in self.primitive_counts(op_counts).items():
            cost = self.ops[op]
            assert not isinstance(cost, Mapping)
            pipe = self.pipe_of[op]
            per_pipe[pipe] = per_pipe.get(pipe, 0) + count * cost
        return max(per_pipe.values(), default=0)

    def energy_pj(self, op_counts: Mapping[str, int]) -> float:
        """Energy in pJ of `op_counts` on one PE."""
        return sum(
            count * self.op_energy_pj[op] for op, count in self.primitive_counts(op_counts).items()
        )

    @classmethod
    def from_dict(cls, data: object, path: str = "") -> Unit:
        """A unit from its YAML mapping; errors name fields under `path`."""
        try:
            fields = _check_keys(data, "", UNIT_KEYS)
            _require(fields, "", ("shape", "ops", "op_energy_pj"))
            registers = fields.get("registers")
            return cls(
                shape=fields["shape"],
                ops=fields["ops"],
                op_energy_pj=fields["op_energy_pj"],
                registers=(
                    None if registers is None else StorageLevel.from_dict(registers, "registers")
                ),
                pipes=fields.get("pipes"),
                drain_cycles=fields.get("drain_cycles", 0),
            )
        except ArchitectureError as error:
            raise error.within(path) from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of this unit."""
        data: dict[str, Any] = {"shape": list(self.shape)}
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
        return data


# -- architectures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """A spatial accelerator: units (PE arrays), storage levels, clock and data word size.

    Immutable and validated on construction; `dataclasses.replace`, `with_changes`,
    `with_unit` and `with_level` make what-if variants. `units` and `storage` are keyed by
    name (`pe2d`; `DRAM`, `GLB`, `RF`).
    """

    name: str
    clock_mhz: float
    word_bytes: int
    units: Mapping[str, Unit]
    storage: Mapping[str, StorageLevel]
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ArchitectureError(f"expected a non-empty string, got {_show(self.name)}", "name")
        if not isinstance(self.description, str):
            raise ArchitectureError(
                f"expected a string, got {_show(self.description)}", "description"
            )
        _positive_number(self.clock_mhz, "clock_mhz")
        _positive_int(self.word_bytes, "word_bytes")
        units = _named_entries(self.units, "units")
        if not units:
            raise ArchitectureError("expected at least one unit", "units")
        for unit_name, unit in units.items():
            if not isinstance(unit, Unit):
                raise ArchitectureError(f"expected a Unit, got {_show(unit)}", f"units.{unit_name}")
        storage = _check_keys(self.storage, "storage", STORAGE_LEVELS)
        for level_name in ("DRAM", "GLB"):
            if level_name not in storage:
                raise ArchitectureError("required field is missing", f"storage.{level_name}")
        for level_name, level in storage.items():
            if not isinstance(level, StorageLevel):
                raise ArchitectureError(
                    f"expected a StorageLevel, got {_show(level)}", f"storage.{level_name}"
                )
            if level_name != "DRAM" and not level.has_capacity:
                raise ArchitectureError(
                    "required field is missing (or give entries)",
                    f"storage.{level_name}.capacity_bytes",
                )
        if storage["DRAM"].bandwidth_bytes_per_s is None:
            raise ArchitectureError(
                "required field is missing", "storage.DRAM.bandwidth_bytes_per_s"
            )
        object.__setattr__(self, "units", FrozenMap(units))
        object.__setattr__(
            self,
            "storage",
            FrozenMap((name, storage[name]) for name in STORAGE_LEVELS if name in storage),
        )

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
        """The storage level `name` (`DRAM`, `GLB`, `RF`), or `PE`: the registers of `unit`."""
        if name == REGISTERS:
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
        """The capacity of a storage level in bytes (None: unbounded)."""
        return self.level(level, unit).capacity_in_bytes(self.word_bytes)

    def capacity_values(self, level: str, unit: str | None = None) -> int | None:
        """How many data words a storage level holds (None: unbounded)."""
        return self.level(level, unit).capacity_in_values(self.word_bytes)

    def bytes_per_cycle(self, level: str = "DRAM") -> float:
        """A level's bandwidth in bytes per clock cycle."""
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
        """Read energy per data word of a storage level (e.g. GLB: 484.97 / 256)."""
        return self.level(level, unit).read_pj_per_value(self.word_bytes)

    def write_pj_per_value(self, level: str, unit: str | None = None) -> float:
        """Write energy per data word of a storage level."""
        return self.level(level, unit).write_pj_per_value(self.word_bytes)

    def cycles(self, unit: str, op_counts: Mapping[str, int]) -> int:
        """Cycles one PE of `unit` takes for one invocation's `op_counts` (operation kind ->
        count), compositions expanded, pipes in parallel: on FuseMax's `pe2d`, `{"exp": 1,
        "add": 1}` is 7; on FLAT's `pe1d` (exp on its own pipe) it is 1."""
        on = self.unit(unit)
        try:
            return on.cycles(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    def primitive_counts(self, unit: str, op_counts: Mapping[str, int]) -> dict[str, int]:
        """`op_counts` on `unit` with compositions expanded into primitive operations."""
        on = self.unit(unit)
        try:
            return on.primitive_counts(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    def op_energy_pj(self, unit: str, op_counts: Mapping[str, int]) -> float:
        """Energy in pJ of `op_counts` on one PE of `unit`, compositions expanded."""
        on = self.unit(unit)
        try:
            return on.energy_pj(op_counts)
        except ArchitectureError as error:
            raise error.within(f"units.{unit}").from_source(self.name) from None

    # -- conversions --------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: object, source: str = "", default_name: str = "") -> Architecture:
        """An architecture from its YAML mapping. Errors name `source` (a file name) and the
        field; `default_name` is the name when the mapping gives none."""
        try:
            fields = _check_keys(data, "", ARCHITECTURE_KEYS)
            if "name" not in fields and not default_name:
                raise ArchitectureError("required field is missing", "name")
            _require(fields, "", ("clock_mhz", "word_bytes", "units", "storage"))
            units = _named_entries(fields["units"], "units")
            storage = _check_keys(fields["storage"], "storage", STORAGE_LEVELS)
            return cls(
                name=fields.get("name", default_name),
                description=fields.get("description", ""),
                clock_mhz=fields["clock_mhz"],
                word_bytes=fields["word_bytes"],
                units={name: Unit.from_dict(unit, f"units.{name}") for name, unit in units.items()},
                storage={
                    name: StorageLevel.from_dict(level, f"storage.{name}")
                    for name, level in storage.items()
                },
            )
        except ArchitectureError as error:
            raise error.from_source(source) from None

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>", default_name: str = "") -> Architecture:
        """An architecture from YAML text (`source` names it in error messages)."""
        return cls.from_dict(_parse_yaml(text, source), source, default_name)

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
        """A copy with `dataclasses.replace(unit, **changes)` as unit `name`
        (`arch.with_unit("pe2d", shape=(128, 256))`)."""
        try:
            unit = _replace(self.unit(name), changes)
        except ArchitectureError as error:
            raise error.within(f"units.{name}").from_source(self.name) from None
        return _replace(self, {"units": {**self.units, name: unit}})

    def with_level(self, name: str, **changes: Any) -> Architecture:
        """A copy with `dataclasses.replace(level, **changes)` as storage level `name`
        (`arch.with_level("DRAM", bandwidth_bytes_per_s=200 * 2**30)`)."""
        try:
            level = _replace(self.level(name), changes)
        except ArchitectureError as error:
            raise error.within(f"storage.{name}").from_source(self.name) from None
        return _replace(self, {"storage": {**self.storage, name: level}})


_T = TypeVar("_T", Architecture, Unit, StorageLevel)


def _replace(obj: _T, changes: Mapping[str, Any]) -> _T:
    """`dataclasses.replace(obj, **changes)`, with unknown fields as `ArchitectureError`."""
    known = tuple(f.name for f in dataclasses.fields(obj) if f.init)
    for key in changes:
        if key not in known:
            raise ArchitectureError(f"unknown field; the fields are {', '.join(known)}", key)
    values = {key: getattr(obj, key) for key in known}
    return type(obj)(**{**values, **changes})


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


# -- YAML and the built-ins -------------------------------------------------------------------


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads `1e9` as a number (as YAML 1.2 does) and rejects
    duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {_show(key)}",
                    key_node.start_mark,
                )
            seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse_yaml(text: str, source: str) -> object:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: builds plain data only
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise ArchitectureError(f"invalid YAML{where}: {problem}", source=source) from None
    except yaml.YAMLError as error:
        raise ArchitectureError(f"invalid YAML: {error}", source=source) from None


def _builtin_dir() -> Traversable:
    return resources.files("einsum_opt.hardware").joinpath("architectures")


@functools.cache
def builtin_architectures() -> tuple[str, ...]:
    """The names of the built-in architectures (`edge`, `flat`, `fusemax`)."""
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in _builtin_dir().iterdir()
            if entry.name.endswith(".yaml")
        )
    )


@functools.cache
def _load_builtin(name: str) -> Architecture:
    text = _builtin_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return Architecture.from_yaml(text, source=f"{name}.yaml")


def load_architecture(name_or_path: str | Path) -> Architecture:
    """A built-in architecture by name (`fusemax`, `flat`, `edge`) or one read from a YAML
    file. Raises `ArchitectureError` for unknown names, unreadable files and invalid
    descriptions (naming the file and the field)."""
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in builtin_architectures():
        return _load_builtin(text)
    path = Path(text)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or path.suffix in (".yaml", ".yml")
        or "/" in text
        or "\\" in text
        or path.exists()
    )
    if not looks_like_path:
        raise ArchitectureError(
            f"unknown architecture {text!r}: the built-ins are "
            f"{', '.join(builtin_architectures())} (or give the path of a YAML file)"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ArchitectureError(f"cannot read: {error.strerror or error}", source=text) from None
    return Architecture.from_yaml(content, source=text, default_name=path.stem)
