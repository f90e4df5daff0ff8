"""TeAAL `mapping:` and `bindings:` sections (and our `storage:`) -> `#einsum.mapping`.

Shared by the TeAAL frontend and the `apply-mapping` pass. Reading happens in two phases:
`read_mapping_sections` checks the YAML's form and keeps each Einsum's entries with their
nodes; `resolve_mapping` then checks them against the Einsum op and builds its `MappingAttr`.

- `partitioning`: `uniform_shape(N)` with an integer N becomes a partition shape (outer to
  inner, as `#einsum.mapping` orders them: `[uniform_shape(4), uniform_shape(2)]` gives M2, M1,
  M0). What a dense mapping cannot represent (`uniform_shape(NAME)`, `nway_shape`,
  `uniform_occupancy`, `flatten()` on a tuple of ranks, `follow`) is ignored with a warning;
  the Einsum's `loop-order` and `spacetime` entries are then dropped with a warning when they
  name ranks that no longer exist.
- `loop-order` -> `loops`; `spacetime`: `space: [P0, M0]` -> spatial axes 0 and 1 in list order
  (`.pos`/`.coord` suffixes stripped), `time` -> temporal (checked, not stored).
- `bindings`: a plain string is the unit; TeAAL's list form gives the unit of its `config`
  entry (its component bindings are not imported); otherwise the unit is `default`.
- `storage: {EINSUM: {TENSOR: LEVEL}}` (our extension) -> `storage`.
- `rank-order` is returned to the caller (the frontend keeps it as a cascade attribute).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum import EinsumOp
from einsum_opt.dialects.einsum_attrs import RANK_NAME
from einsum_opt.dialects.einsum_mapping import (
    MappingAttr,
    check_mapping,
    einsum_ranks,
    loop_ranks,
)
from einsum_opt.frontends.teaal_yaml import SpecReader
from einsum_opt.support.errors import integer_of

DEFAULT_UNIT = "default"
"""The unit of an Einsum with a mapping but no binding."""

MAPPING_KEYS = ("rank-order", "partitioning", "loop-order", "spacetime")
"""Keys of TeAAL's `mapping:` section."""

UNREPRESENTABLE = ("nway_shape", "uniform_occupancy", "flatten", "follow")
"""TeAAL partitionings with no dense, uniform equivalent."""

_CALL = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*")
_SPACETIME_RANK = re.compile(r"([A-Za-z_]\w*)(?:\.(?:pos|coord))?")
_UNIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")
"""Unit and storage-level names print bare in `#einsum.mapping`, so they must be identifiers."""


@dataclass
class EinsumMappingSpec:
    """One Einsum's mapping entries as written, each with its YAML node."""

    einsum: str
    node: yaml.Node
    """The first key naming the Einsum (where errors about the whole mapping point)."""
    partition: dict[str, tuple[list[int], yaml.Node]] = field(default_factory=dict)
    partition_ignored: bool = False
    """Some partitioning of this Einsum could not be represented and was dropped."""
    loops: tuple[list[tuple[str, yaml.Node]], yaml.Node] | None = None
    space: list[tuple[str, yaml.Node]] = field(default_factory=list)
    time: list[tuple[str, yaml.Node]] = field(default_factory=list)
    spacetime_node: yaml.Node | None = None
    unit: tuple[str, yaml.Node] | None = None
    storage: dict[str, tuple[str, yaml.Node]] = field(default_factory=dict)
    storage_node: yaml.Node | None = None


@dataclass
class MappingSections:
    """What the `mapping`, `bindings` and `storage` sections say."""

    einsums: dict[str, EinsumMappingSpec] = field(default_factory=dict)
    rank_order: dict[str, list[str]] = field(default_factory=dict)
    rank_order_node: yaml.Node | None = None

    def spec(self, einsum: str, node: yaml.Node) -> EinsumMappingSpec:
        """The entries of `einsum`, created at `node` on first mention."""
        if einsum not in self.einsums:
            self.einsums[einsum] = EinsumMappingSpec(einsum, node)
        return self.einsums[einsum]


def read_mapping_sections(
    reader: SpecReader,
    mapping: yaml.Node | None,
    bindings: yaml.Node | None,
    storage: yaml.Node | None,
) -> MappingSections:
    """Read the three sections (any may be None); fail on malformed entries."""
    out = MappingSections()
    if mapping is not None:
        for key, key_node, value in reader.entries(mapping, "mapping"):
            if key == "rank-order":
                out.rank_order_node = key_node
                for tensor, _, ranks in reader.entries(value, "mapping.rank-order"):
                    names = reader.names(ranks, f"mapping.rank-order.{tensor}")
                    out.rank_order[tensor] = [n for n, _ in names]
            elif key == "partitioning":
                _read_partitioning(reader, value, out)
            elif key == "loop-order":
                _read_loop_order(reader, value, out)
            elif key == "spacetime":
                _read_spacetime(reader, value, out)
            else:
                reader.warn(
                    key_node,
                    f"mapping.{key} is not a TeAAL mapping key (known: "
                    f"{', '.join(MAPPING_KEYS)}); ignored",
                )
    if bindings is not None:
        _read_bindings(reader, bindings, out)
    if storage is not None:
        for einsum, key_node, value in reader.entries(storage, "storage"):
            spec = out.spec(einsum, key_node)
            spec.storage_node = key_node
            for tensor, _, level in reader.entries(value, f"storage.{einsum}"):
                spec.storage[tensor] = (_unit_name(reader, level, "storage level"), level)
    return out


def _read_partitioning(reader: SpecReader, node: yaml.Node, out: MappingSections) -> None:
    for einsum, key_node, ranks in reader.entries(node, "mapping.partitioning"):
        spec = out.spec(einsum, key_node)
        for rank, rank_node, parts in reader.entries(ranks, f"mapping.partitioning.{einsum}"):
            where = f"mapping.partitioning.{einsum}.{rank}"
            items = reader.items(parts, where)
            if not RANK_NAME.fullmatch(rank):
                reader.warn(
                    rank_node,
                    f"{where}: partitioning a tuple of ranks ({rank}) cannot be represented "
                    "densely; ignored",
                )
                spec.partition_ignored = True
                continue
            shapes: list[int] = []
            for part in items:
                shape = _uniform_shape(reader, part, where)
                if shape is None:
                    spec.partition_ignored = True
                    break
                shapes.append(shape)
            else:
                if shapes:
                    spec.partition[rank] = (shapes, rank_node)


def _uniform_shape(reader: SpecReader, node: yaml.Node, where: str) -> int | None:
    """The integer of `uniform_shape(N)`; None (after a warning) for an unrepresentable one."""
    text = reader.scalar(node, f"an entry of {where}")
    call = _CALL.fullmatch(text)
    if call is None:
        reader.fail(
            node, f"{where}: expected a partitioning such as uniform_shape(4), got '{text}'"
        )
    kind, argument = call.group(1), call.group(2).strip()
    if kind == "uniform_shape":
        if re.fullmatch(r"[+-]?\d+", argument):
            try:
                shape = integer_of(argument)
            except ValueError as e:
                reader.fail(node, f"{where}: uniform_shape: {e}")
            if shape <= 0:
                reader.fail(node, f"{where}: uniform_shape({argument}) must be positive")
            return shape
        reader.warn(
            node,
            f"{where}: {text.strip()} has a symbolic shape, which a dense mapping cannot "
            "represent; the partitioning of this rank is ignored",
        )
        return None
    if kind in UNREPRESENTABLE:
        reader.warn(
            node,
            f"{where}: {text.strip()} is not a uniform shape, which a dense mapping cannot "
            "represent; the partitioning of this rank is ignored",
        )
        return None
    known = ", ".join(("uniform_shape", *UNREPRESENTABLE))
    reader.fail(node, f"{where}: unknown partitioning '{kind}' (known: {known})")


def _read_loop_order(reader: SpecReader, node: yaml.Node, out: MappingSections) -> None:
    entries: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.SequenceNode):
        # A list of one-entry mappings (`- D: I, J`) is read as one mapping.
        reader.warn(node, "mapping.loop-order is a list; read as a mapping of its entries")
        for item in node.value:
            entries += reader.entries(item, "an entry of mapping.loop-order")
    else:
        entries = reader.entries(node, "mapping.loop-order")
    for einsum, key_node, order in entries:
        spec = out.spec(einsum, key_node)
        if spec.loops is not None:
            reader.fail(key_node, f"mapping.loop-order gives {einsum} twice")
        names = reader.names(order, f"mapping.loop-order.{einsum}")
        spec.loops = (names, order)


def _read_spacetime(reader: SpecReader, node: yaml.Node, out: MappingSections) -> None:
    for einsum, key_node, value in reader.entries(node, "mapping.spacetime"):
        spec = out.spec(einsum, key_node)
        spec.spacetime_node = key_node
        for key, sub_node, ranks in reader.entries(value, f"mapping.spacetime.{einsum}"):
            where = f"mapping.spacetime.{einsum}.{key}"
            if key not in ("space", "time"):
                reader.warn(sub_node, f"{where} is not imported (only space and time are)")
                continue
            names: list[tuple[str, yaml.Node]] = []
            for name, name_node in reader.names(ranks, where):
                match = _SPACETIME_RANK.fullmatch(name)
                if match is None:
                    reader.fail(
                        name_node, f"{where}: expected a rank (R, R.pos or R.coord), got '{name}'"
                    )
                names.append((match.group(1), name_node))
            if key == "space":
                spec.space = names
            else:
                spec.time = names


def _read_bindings(reader: SpecReader, node: yaml.Node, out: MappingSections) -> None:
    for einsum, key_node, value in reader.entries(node, "bindings"):
        spec = out.spec(einsum, key_node)
        if isinstance(value, yaml.ScalarNode) and not reader.is_null(value):
            spec.unit = (_unit_name(reader, value, "unit"), value)
            continue
        items = (
            [value]
            if isinstance(value, yaml.MappingNode)
            else reader.items(value, f"bindings.{einsum}")
        )
        for item in items:
            fields = {k: v for k, _, v in reader.entries(item, f"an entry of bindings.{einsum}")}
            if "config" in fields:
                if spec.unit is not None:
                    reader.fail(item, f"bindings.{einsum} names two configs")
                spec.unit = (_unit_name(reader, fields["config"], "config"), fields["config"])
            elif "component" in fields:
                reader.warn(
                    item,
                    "bindings: component bindings are not imported (each Einsum's config "
                    "becomes its unit)",
                    once="component-bindings",
                )


def _unit_name(reader: SpecReader, node: yaml.Node, what: str) -> str:
    name = reader.scalar(node, f"a {what}")
    if not _UNIT_NAME.fullmatch(name):
        reader.fail(node, f"{what} name '{name}' must be an identifier (letters, digits, _, $, .)")
    return name


def check_einsum_names(
    reader: SpecReader, sections: MappingSections, known: Mapping[str, object]
) -> None:
    """Fail at the first mapping entry naming an Einsum not in `known`."""
    for name, spec in sections.einsums.items():
        if name not in known:
            listed = ", ".join(known) or "none"
            reader.fail(
                spec.node, f"mapping for {name}, which no Einsum writes (Einsums: {listed})"
            )


def resolve_mapping(
    reader: SpecReader, spec: EinsumMappingSpec, op: EinsumOp, sizes: Mapping[str, int]
) -> MappingAttr:
    """The `#einsum.mapping` of `op`; fails at the entry that does not fit it."""
    unit = spec.unit[0] if spec.unit else DEFAULT_UNIT
    name = spec.einsum
    ranks = einsum_ranks(op)
    partition: dict[str, list[int]] = {}
    for rank, (shapes, node) in spec.partition.items():
        if rank not in ranks:
            reader.fail(
                node,
                f"partitioning of {name} names rank {rank}, which {name} does not "
                f"iterate (its ranks: {', '.join(ranks)})",
            )
        partition[rank] = shapes
        _checked(reader, node, op, MappingAttr.make(unit, (), partition), sizes)
    current = MappingAttr.make(unit, (), partition)
    expected = loop_ranks(op, current)
    loops: list[str] = []
    if spec.loops is not None:
        names, node = spec.loops
        loops = [n for n, _ in names]
        if _drop_unknown(reader, spec, names, expected, "loop-order"):
            loops = []
        elif sorted(loops) != sorted(expected):
            reader.fail(
                node,
                f"loop-order of {name} [{', '.join(loops)}] is not a permutation of "
                f"its loop ranks [{', '.join(expected)}]",
            )
    space: dict[str, int] = {}
    if spec.spacetime_node is not None and not _drop_unknown(
        reader, spec, [*spec.space, *spec.time], expected, "spacetime"
    ):
        space = {rank: axis for axis, (rank, _) in enumerate(spec.space)}
        for rank, node in spec.time:
            if rank in space:
                reader.fail(node, f"spacetime of {name}: rank {rank} is both space and time")
    storage = {tensor: level for tensor, (level, _) in spec.storage.items()}
    _checked(
        reader,
        spec.loops[1] if spec.loops else spec.node,
        op,
        MappingAttr.make(unit, loops, partition),
        sizes,
    )
    _checked(
        reader,
        spec.spacetime_node or spec.node,
        op,
        MappingAttr.make(unit, loops, partition, space),
        sizes,
    )
    final = MappingAttr.make(unit, loops, partition, space, storage)
    _checked(reader, spec.storage_node or spec.node, op, final, sizes)
    return final


def _drop_unknown(
    reader: SpecReader,
    spec: EinsumMappingSpec,
    names: list[tuple[str, yaml.Node]],
    expected: list[str],
    what: str,
) -> bool:
    """Whether `what` names a rank that is not a loop rank and is dropped for that (after a
    warning) because some partitioning was ignored; fails if no partitioning was ignored."""
    for rank, node in names:
        if rank in expected:
            continue
        if spec.partition_ignored:
            reader.warn(
                node,
                f"{what} of {spec.einsum} names rank {rank}, which does not exist once the "
                f"partitioning that is not represented is ignored; {what} of {spec.einsum} "
                "ignored",
            )
            return True
        reader.fail(
            node,
            f"{what} of {spec.einsum} names rank {rank}, which is not one of its "
            f"loop ranks [{', '.join(expected)}]",
        )
    return False


def _checked(
    reader: SpecReader,
    node: yaml.Node,
    op: EinsumOp,
    mapping: MappingAttr,
    sizes: Mapping[str, int],
) -> None:
    """`check_mapping`, failing at `node`."""
    try:
        check_mapping(op, mapping, sizes)
    except VerifyException as e:
        reader.fail(node, str(e))
