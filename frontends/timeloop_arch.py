"""Reading a Timeloop v0.4 architecture tree (`subtree`/`local`) into `Architecture`.

Follows how timeloop-model reads it: one subtree per node, a node's `local` components are
outer to its subtree's, `name[1..N]` multiplies the instances of everything below it, a
component is a buffer when its class names one (DRAM, SRAM, regfile, smartbuffer, storage) and
compute when it names a MAC; meshX/meshY/instances are reconciled as Timeloop does, and the
block size follows from width and datawidth when it is not given."""

from __future__ import annotations

import re

from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_types import Architecture, ArithmeticLevel, StorageLevel

BUFFER_CLASSES = ("DRAM", "SRAM", "regfile", "smartbuffer", "storage")
COMPUTE_CLASSES = ("mac", "intmac", "fpmac", "compute")
NETWORK_CLASSES = ("XY_NoC", "Legacy", "ReductionTree", "SimpleMulticast")
NOTHING_CLASSES = ("nothing",)
DEFAULT_WORD_BITS = 16

_RANGE = re.compile(r"\[\s*(\d+)\s*\.\.\s*(\d+)\s*\]")
_UNSUPPORTED = ("network_fill_latency", "network_drain_latency", "metadata_storage_depth")


def base_name(name: str) -> str:
    """A component name without its `[first..last]` range."""
    return name.split("[", 1)[0]


def element_count(name: Field) -> int:
    """How many elements `name[first..last]` stands for (1 without a range)."""
    text = name.text()
    found = _RANGE.search(text)
    if found is None:
        if "[" in text:
            name.fail(f"expected 'name[first..last]', found '{text}'")
        return 1
    first, last = int(found.group(1)), int(found.group(2))
    if last < first:
        name.fail(f"empty range in '{text}'")
    return last - first + 1


def read_architecture(root: Field) -> Architecture:
    """The storage levels (outermost first) and the arithmetic level of `architecture`."""
    node = root
    if not node.has("subtree"):
        node.fail("expected a tree of levels ('subtree') or a list of 'nodes'")
    storage: list[StorageLevel] = []
    arithmetic: list[ArithmeticLevel] = []
    multiplication = 1
    while node.has("subtree"):
        subtrees = list(node.get("subtree").items())
        if len(subtrees) != 1:
            node.get("subtree").fail("Timeloop supports exactly one subtree per node")
        node = subtrees[0]
        if node.has("name"):
            multiplication *= element_count(node.get("name"))
        for component in node.get("local").items():
            _read_component(component, multiplication, storage, arithmetic)
    if not storage:
        root.fail("no storage level (a component whose class is a buffer)")
    if len(arithmetic) != 1:
        root.fail(f"expected one arithmetic component (a MAC), found {len(arithmetic)}")
    return Architecture(tuple(storage), arithmetic[0])


def component_kind(class_name: str) -> str | None:
    """'storage', 'compute', 'network' or 'nothing' for a component class, as Timeloop's front
    end classifies it (by the names it contains); None for any other class."""
    for kind, names in (
        ("storage", BUFFER_CLASSES),
        ("compute", COMPUTE_CLASSES),
        ("network", NETWORK_CLASSES),
        ("nothing", NOTHING_CLASSES),
    ):
        if any(c in class_name for c in names):
            return kind
    return None


def _read_component(
    component: Field,
    multiplication: int,
    storage: list[StorageLevel],
    arithmetic: list[ArithmeticLevel],
) -> None:
    name_field = component.need("name")
    class_name = component.get("class").text() if component.has("class") else ""
    elements = multiplication * element_count(name_field)
    kind = component_kind(class_name)
    attributes = component.get("attributes")
    if kind == "storage":
        mesh = _instances(attributes, elements)
        level = read_storage(attributes, base_name(name_field.text()), class_name, mesh)
        add_storage(storage, level, name_field)
    elif kind == "compute":
        mesh = _instances(attributes, elements)
        arithmetic.append(
            read_arithmetic(attributes, base_name(name_field.text()), class_name, mesh)
        )
    elif kind == "network":
        component.get("class").fail(f"network components ('{class_name}') are not supported")
    # Timeloop ignores components of other classes; so do we.


def add_storage(storage: list[StorageLevel], level: StorageLevel, name: Field) -> None:
    """Append `level`, whose name must be new."""
    if any(existing.name == level.name for existing in storage):
        name.fail(f"a second storage level called '{level.name}'")
    storage.append(level)


def _instances(attributes: Field, elements: int) -> tuple[int, int, int]:
    """(instances, meshX, meshY) reconciled as Timeloop's ValidateTopology does."""
    instances = attributes.get("instances").integer(1) if attributes.has("instances") else elements
    mesh_x = attributes.get("meshX").integer(1) if attributes.has("meshX") else None
    mesh_y = attributes.get("meshY").integer(1) if attributes.has("meshY") else None
    if mesh_x is None and mesh_y is None:
        return instances, instances, 1
    if mesh_x is None:
        assert mesh_y is not None
        if instances % mesh_y:
            attributes.get("meshY").fail(f"{mesh_y} does not divide the {instances} instances")
        return instances, instances // mesh_y, mesh_y
    if mesh_y is None:
        if instances % mesh_x:
            attributes.get("meshX").fail(f"{mesh_x} does not divide the {instances} instances")
        return instances, mesh_x, instances // mesh_x
    if mesh_x * mesh_y != instances:
        attributes.get("meshX").fail(
            f"meshX {mesh_x} × meshY {mesh_y} is not the {instances} instances"
        )
    return instances, mesh_x, mesh_y


def _optional_number(attributes: Field, *keys: str) -> float | None:
    for key in keys:
        if attributes.has(key):
            return attributes.get(key).number()
    return None


def _optional_integer(attributes: Field, *keys: str) -> tuple[int | None, Field | None]:
    for key in keys:
        if attributes.has(key):
            return attributes.get(key).integer(1), attributes.get(key)
    return None, None


def read_storage(
    attributes: Field, name: str, class_name: str, mesh: tuple[int, int, int]
) -> StorageLevel:
    """A buffer from its attributes; `mesh` is (instances, meshX, meshY)."""
    attributes.mapping()
    for key in _UNSUPPORTED:
        if attributes.has(key) and attributes.get(key).number() != 0:
            attributes.get(key).fail("is not supported")
    if attributes.has("network_type") and attributes.get("network_type").text() == "M:N":
        attributes.get("network_type").fail("distributed multicast (M:N) is not supported")
    instances, mesh_x, mesh_y = mesh
    word_bits = _optional_integer(attributes, "word_bits", "word_width", "datawidth")[0]
    word_bits = word_bits or DEFAULT_WORD_BITS
    block, _ = _optional_integer(attributes, "block_size", "n_words")
    cluster, _ = _optional_integer(attributes, "cluster_size")
    width, width_field = _optional_integer(
        attributes, "width", "memory_width", "data_storage_width"
    )
    block_size, cluster_size = block or 1, cluster or 1
    if width is not None and width_field is not None:
        if width % (word_bits * block_size):
            width_field.fail(
                f"{width} bits is not a multiple of block_size {block_size} × datawidth {word_bits}"
            )
        if block is not None and cluster is not None:
            if block * word_bits * cluster != width:
                width_field.fail("block_size × datawidth × cluster_size is not the width")
        elif cluster is not None:
            block_size = width // cluster // word_bits
        elif block is not None:
            cluster_size = width // (word_bits * block)
        else:
            block_size = width // word_bits
    if block_size < 1:
        attributes.fail("the block size (width / datawidth / cluster_size) is below one word")
    size: int | None = None
    if attributes.has("entries"):
        size = attributes.get("entries").integer(1)
    elif depth := _optional_integer(attributes, "depth", "memory_depth", "data_storage_depth")[0]:
        size = depth * block_size
    elif attributes.has("sizeKB"):
        size = attributes.get("sizeKB").integer(1) * 1024 * 8 // word_bits
    technology = "DRAM" if "DRAM" in class_name else "SRAM"
    if attributes.has("technology") and attributes.get("technology").value == "DRAM":
        technology = "DRAM"
    read_bw = _optional_number(attributes, "read_bandwidth")
    write_bw = _optional_number(attributes, "write_bandwidth")
    if attributes.has("bandwidth"):  # deprecated in Timeloop: split evenly
        half = attributes.get("bandwidth").number() / 2
        read_bw = read_bw if read_bw is not None else half
        write_bw = write_bw if write_bw is not None else half
    multiple_buffering = _optional_number(attributes, "multiple_buffering")
    return StorageLevel(
        name=name,
        class_name=class_name,
        instances=instances,
        mesh_x=mesh_x,
        mesh_y=mesh_y,
        technology=technology,
        word_bits=word_bits,
        block_size=block_size,
        cluster_size=cluster_size,
        size=size,
        multiple_buffering=1.0 if multiple_buffering is None else multiple_buffering,
        read_bandwidth=read_bw,
        write_bandwidth=write_bw,
        shared_bandwidth=_optional_number(attributes, "shared_bandwidth"),
        vector_access_energy=_optional_number(attributes, "vector_access_energy"),
    )


def read_arithmetic(
    attributes: Field, name: str, class_name: str, mesh: tuple[int, int, int]
) -> ArithmeticLevel:
    """The compute units from their attributes; `mesh` is (instances, meshX, meshY)."""
    attributes.mapping()
    instances, mesh_x, mesh_y = mesh
    word_bits = _optional_integer(attributes, "word_bits", "datawidth")[0] or DEFAULT_WORD_BITS
    return ArithmeticLevel(
        name=name,
        class_name=class_name,
        instances=instances,
        mesh_x=mesh_x,
        mesh_y=mesh_y,
        word_bits=word_bits,
        energy=_optional_number(attributes, "energy"),
        area=_optional_number(attributes, "area"),
    )
