"""The v0.4 front end's form of an architecture, the one Timeloop users write: a list of
`nodes` tagged `!Container`, `!Component`, `!Parallel`, `!Hierarchical`, `!Pipelined` or
`!Nothing`. It becomes the chain of levels timeloop-model reads, flattened as the front end
flattens it before calling the model:

- a container's `attributes` are inherited by every component after it (its own win);
- a container's or a component's `spatial` fan-out (meshX × meshY) multiplies the instances of
  the component itself and of everything after it, and a dummy level `inter_<name>_spatial`
  (one word, keeping no data space, trip-one loops) is put before it at the instances before
  the fan-out: the spatial loops of that fan-out sit there, so a `type: spatial` directive for
  the container or component is one for its dummy;
- the nodes of a `!Parallel` become consecutive levels (a container or fan-out inside one is
  an error, as in the front end); those of `!Hierarchical` and `!Pipelined` are read in place;
  `!Nothing` and components with `enabled: false` are left out;
- a component's `constraints` (`temporal`, `spatial`, `dataspace`) are mapping directives for
  it, as are a fanning-out container's `spatial` ones, and those the spec lists apart
  (`constraints: {targets: [...]}`); they combine with the mapping's.
"""

from __future__ import annotations

from einsum_opt.frontends.timeloop_arch import (
    add_storage,
    base_name,
    component_kind,
    read_arithmetic,
    read_storage,
)
from einsum_opt.frontends.timeloop_fields import Field, Places
from einsum_opt.frontends.timeloop_mapping import Directive
from einsum_opt.frontends.timeloop_types import Architecture, ArithmeticLevel, StorageLevel

_BRANCHES = ("Hierarchical", "Parallel", "Pipelined")
_DIRECTIVE_CONSTRAINTS = ("temporal", "spatial", "dataspace")
"""Constraint kinds that are mapping directives; the others (`max_overbooked_proportion`,
`utilization`) steer only timeloop-mapper's search."""


def is_node_form(architecture: Field) -> bool:
    """Whether `architecture` is written as the front end's `nodes` list."""
    return architecture.has("nodes") and not architecture.has("subtree")


def read_node_architecture(root: Field) -> tuple[Architecture, list[Directive]]:
    """The levels of a `nodes` architecture and the mapping directives its constraints give
    (see the module docstring)."""
    pending: list[tuple[Field, bool]] = [(n, False) for n in root.need("nodes").items()]
    mesh_x = mesh_y = 1
    inherited: dict[str, Field] = {}
    storage: list[StorageLevel] = []
    arithmetic: list[ArithmeticLevel] = []
    fanouts: dict[str, str] = {}
    containers: set[str] = set()
    directives: list[Directive] = []
    while pending:
        node, in_parallel = pending.pop(0)
        tag = node.tag()
        if tag in _BRANCHES:
            pending[:0] = [(n, tag == "Parallel") for n in node.get("nodes").items()]
            continue
        if tag == "Nothing" or (node.has("enabled") and not node.get("enabled").flag()):
            continue
        if tag not in ("Container", "Component"):
            node.fail(
                "expected a node tagged !Container, !Component, !Parallel, !Hierarchical, "
                "!Pipelined or !Nothing"
            )
        name_field = node.need("name")
        name = base_name(name_field.text())
        kind = "container" if tag == "Container" else _kind(node)
        if kind == "nothing":
            continue
        if arithmetic:
            node.fail(f"'{name}' comes after the compute component {arithmetic[0].name}")
        fan_x, fan_y = _fanout(node)
        if in_parallel and (kind == "container" or fan_x * fan_y > 1):
            node.fail("a container or a spatial fan-out inside a !Parallel is not supported")
        if fan_x * fan_y > 1:
            dummy = f"inter_{name}_spatial"
            add_storage(storage, _dummy_level(dummy, mesh_x, mesh_y), name_field)
            fanouts[name] = dummy
        mesh_x, mesh_y = mesh_x * fan_x, mesh_y * fan_y
        mesh = (mesh_x * mesh_y, mesh_x, mesh_y)
        if kind == "container":
            if name in containers:
                name_field.fail(f"a second container called '{name}'")
            containers.add(name)
            if list(node.get("networks").items()):
                node.get("networks").fail("network components are not supported")
            for attribute in node.get("attributes").mapping():
                inherited[attribute] = node.get("attributes").get(attribute)
        else:
            attributes = _with_inherited(node.get("attributes"), inherited)
            class_name = node.need("class").text()
            if kind == "storage":
                add_storage(storage, read_storage(attributes, name, class_name, mesh), name_field)
            else:
                arithmetic.append(read_arithmetic(attributes, name, class_name, mesh))
        directives += _constraints(node, name, kind, name in fanouts)
    if not storage:
        root.fail("no storage level (a !Component whose class is a buffer)")
    if not arithmetic:
        root.fail("no compute component (a !Component whose class is a MAC) at the end")
    architecture = Architecture(
        tuple(storage), arithmetic[0], fanouts, frozenset(containers), node_form=True
    )
    return architecture, directives


def _kind(component: Field) -> str:
    """The component's kind ('storage', 'compute' or 'nothing'), or an error."""
    class_field = component.need("class")
    class_name = class_field.text()
    kind = component_kind(class_name)
    if kind == "network":
        class_field.fail(f"network components ('{class_name}') are not supported")
    if kind is None:
        class_field.fail(
            f"unknown component class '{class_name}' (a buffer names DRAM, SRAM, regfile, "
            "smartbuffer or storage; a compute unit mac, intmac, fpmac or compute)"
        )
    return kind


def _fanout(node: Field) -> tuple[int, int]:
    """(meshX, meshY) of the node's `spatial` fan-out (1 where not given)."""
    spatial = node.get("spatial")
    spatial.mapping()
    return tuple(  # type: ignore[return-value]
        spatial.get(axis).integer(1) if spatial.has(axis) else 1 for axis in ("meshX", "meshY")
    )


def _dummy_level(name: str, mesh_x: int, mesh_y: int) -> StorageLevel:
    """The front end's placeholder before a fan-out: one word of one bit, no data kept."""
    return StorageLevel(
        name=name,
        class_name="dummy_storage",
        instances=mesh_x * mesh_y,
        mesh_x=mesh_x,
        mesh_y=mesh_y,
        technology="SRAM",
        word_bits=1,
        block_size=1,
        cluster_size=1,
        size=1,
        multiple_buffering=1.0,
        read_bandwidth=None,
        write_bandwidth=None,
        shared_bandwidth=None,
        vector_access_energy=None,
    )


def _with_inherited(own: Field, inherited: dict[str, Field]) -> Field:
    """The component's attributes with the containers' it does not set, each with its place."""
    values = own.mapping()
    added = {key: field for key, field in inherited.items() if key not in values}
    merged = {**{key: field.value for key, field in added.items()}, **values}
    old = own.places
    table = dict(old.table) if old is not None else {}
    here: dict[object, tuple[int, int]] = {
        key: field.place for key, field in added.items() if field.place is not None
    }
    here.update(old.table.get(id(own.value), {}) if old is not None else {})
    table[id(merged)] = here
    places = Places((old.root if old is not None else None, merged), table)
    return Field(own.file, own.path, merged, own.place, places)


def _constraints(node: Field, name: str, kind: str, fans_out: bool) -> list[Directive]:
    """The node's constraints that are mapping directives (a container has only spatial ones,
    for its fan-out)."""
    directives: list[Directive] = []
    constraints = node.get("constraints")
    for key in constraints.mapping():
        if key not in _DIRECTIVE_CONSTRAINTS:
            continue
        field = constraints.get(key)
        if field.is_null():
            continue
        if kind == "container" and not (key == "spatial" and fans_out):
            field.fail(f"container '{name}' has no {key} loops (it holds no data)")
        directives.append(Directive(name, key, field))
    return directives


def read_constraint_targets(root: Field) -> list[Directive]:
    """The mapping directives of a node-form spec's `constraints: {targets: [...]}`, which the
    front end attaches to the nodes they name, as a node's own `constraints`."""
    directives: list[Directive] = []
    for item in root.get("targets").items():
        kind = item.need("type").text()
        if kind in _DIRECTIVE_CONSTRAINTS:
            target = item.need("target")
            directives.append(Directive(target.text(), kind, item, target))
    return directives
