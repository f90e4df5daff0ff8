"""Architecture descriptions: the built-ins, operation costs, YAML round trips, validation
messages and what-if variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from einsum_opt.hardware import (
    OP_KINDS,
    Architecture,
    ArchitectureError,
    builtin_architectures,
    load_architecture,
)

GIB = 2**30
MB = 2**20


def test_builtins_are_listed() -> None:
    assert builtin_architectures() == ("edge", "flat", "fusemax")


@pytest.mark.parametrize("name", ["fusemax", "flat", "edge"])
def test_builtins_load_with_both_arrays(name: str) -> None:
    arch = load_architecture(name)
    assert arch.name == name
    assert set(arch.units) == {"pe2d", "pe1d"}
    assert set(arch.storage) == {"DRAM", "GLB", "RF"}
    assert set(arch.units["pe2d"].ops) == set(OP_KINDS)
    assert set(arch.units["pe1d"].ops) == set(OP_KINDS)


def test_fusemax_reference_numbers() -> None:
    arch = load_architecture("fusemax")
    pe2d, pe1d = arch.units["pe2d"], arch.units["pe1d"]
    assert pe2d.shape == (256, 256) and pe2d.pes == 65536
    assert pe1d.shape == (256,) and pe1d.pes == 256
    assert arch.clock_mhz == 940 and arch.clock_hz == 940e6
    assert arch.word_bytes == 2
    assert arch.storage["DRAM"].bandwidth_bytes_per_s == 400 * GIB
    assert arch.capacity_bytes("GLB") == 16 * MB
    assert arch.capacity_values("RF") == 8192
    assert arch.capacity_values("PE", unit="pe2d") == 16
    assert arch.capacity_values("PE", unit="pe1d") == 32
    # Per-action energies, stored as given.
    dram, glb = arch.storage["DRAM"], arch.storage["GLB"]
    assert (dram.access_bits, dram.read_pj, dram.write_pj) == (64, 249.6, 249.6)
    assert (glb.access_bits, glb.read_pj, glb.write_pj) == (4096, 12512.7, 15751.4)
    registers = pe2d.registers
    assert registers is not None
    assert (registers.read_pj, registers.write_pj) == (0.653, 0.570)
    assert dict(pe2d.op_energy_pj) == {
        "mac": 17.1645,
        "add": 8.3395,
        "max": 0.028036,
        "div": 36.251153,
    }
    # Derived per-byte and per-value energies.
    assert arch.read_pj_per_byte("DRAM") == pytest.approx(249.6 / 8)
    assert arch.write_pj_per_byte("DRAM") == pytest.approx(249.6 / 8)
    assert arch.read_pj_per_value("GLB") == pytest.approx(12512.7 / 256)
    assert arch.write_pj_per_value("GLB") == pytest.approx(15751.4 / 256)
    assert arch.read_pj_per_value("PE", unit="pe1d") == pytest.approx(0.653)
    assert arch.bytes_per_cycle("DRAM") == pytest.approx(400 * GIB / 940e6)


def test_flat_reference_numbers() -> None:
    arch = load_architecture("flat")
    assert arch.capacity_bytes("GLB") == 32 * MB
    assert arch.units["pe2d"].shape == (256, 256)
    assert arch.units["pe1d"].shape == (256,)
    assert arch.storage["DRAM"].bandwidth_bytes_per_s == 400 * GIB
    assert arch.units["pe1d"].op_energy_pj["exp"] == 94.6475
    assert "exp" not in arch.units["pe2d"].op_energy_pj  # the exp unit is on the 1D array only


def test_edge_numbers() -> None:
    arch, fusemax = load_architecture("edge"), load_architecture("fusemax")
    assert arch.units["pe2d"].shape == (32, 32)
    assert arch.units["pe1d"].shape == (32,)
    assert arch.capacity_bytes("GLB") == 512 * 2**10
    assert arch.storage["DRAM"].bandwidth_bytes_per_s == 50 * 10**9
    same: dict[str, object] = {"units.pe2d.shape": [32, 32], "units.pe1d.shape": [32]}
    same |= {"units.pe2d.drain_cycles": 32}
    same |= {"storage.GLB.capacity_bytes": 512 * 2**10, "storage.GLB.access_bits": 256}
    same |= {"storage.GLB.read_pj": 167.9, "storage.GLB.write_pj": 161.3}
    same |= {"storage.DRAM.bandwidth_bytes_per_s": 50 * 10**9}
    scaled = fusemax.with_changes(same, name="edge", description=arch.description)
    assert scaled == arch  # otherwise like fusemax


def test_sln_costs_seven_cycles_on_fusemax_pe2d() -> None:
    arch = load_architecture("fusemax")
    # SLN = exp(QK - RM): the polynomial exp (6 MACs) and the subtraction (1 add).
    assert arch.cycles("pe2d", {"exp": 1, "add": 1}) == 7
    assert arch.primitive_counts("pe2d", {"exp": 1, "add": 1}) == {"mac": 6, "add": 1}
    assert arch.op_energy_pj("pe2d", {"exp": 1, "add": 1}) == pytest.approx(6 * 17.1645 + 8.3395)
    assert arch.cycles("pe1d", {"exp": 1, "add": 1}) == 7  # PRM, on FuseMax's 1D array
    assert arch.cycles("pe2d", {"mac": 64}) == 64  # QK: one MAC per e
    assert arch.cycles("pe1d", {"div": 1}) == 1  # AV
    assert arch.cycles("pe2d", {}) == 0


def test_flat_pe1d_has_a_pipelined_exp() -> None:
    arch = load_architecture("flat")
    assert arch.cycles("pe1d", {"exp": 1}) == 1
    assert arch.op_energy_pj("pe1d", {"exp": 1}) == pytest.approx(94.6475)
    assert arch.cycles("pe2d", {"exp": 1}) == 6


def test_pipes_overlap_on_flat_pe1d() -> None:
    flat, fusemax = load_architecture("flat"), load_architecture("fusemax")
    pe1d = flat.units["pe1d"]
    assert pe1d.pipes == {"alu": ("mac", "add", "max"), "exp": ("exp", "sqrt", "log")} | {
        "div": ("div",)
    }
    assert flat.cycles("pe1d", {"add": 1, "exp": 1}) == 1  # PRM: exp(x - m), one per element
    assert flat.cycles("pe1d", {"max": 1}) == 1
    assert flat.cycles("pe1d", {"add": 2, "div": 1}) == 2  # the busiest pipe
    assert flat.cycles("pe1d", {"mul": 3, "add": 1, "exp": 2}) == 4  # mul runs on the alu
    assert flat.cycles("pe1d", {}) == 0
    assert flat.op_energy_pj("pe1d", {"add": 1, "exp": 1}) == pytest.approx(8.3395 + 94.6475)
    # Without pipes, operations run one after another.
    assert flat.units["pe2d"].pipes is None and fusemax.units["pe1d"].pipes is None
    assert fusemax.cycles("pe1d", {"add": 1, "exp": 1}) == 7
    assert flat.with_changes({"units.pe1d.pipes": None}).cycles("pe1d", {"add": 1, "exp": 1}) == 2


def test_drain_cycles() -> None:
    for name, drain in (("fusemax", 256), ("flat", 256), ("edge", 32)):
        arch = load_architecture(name)
        assert arch.units["pe2d"].drain_cycles == drain, name
        assert arch.units["pe1d"].drain_cycles == 0, name  # the default
    unit = load_architecture("fusemax").units["pe1d"]
    assert "drain_cycles" not in unit.to_dict()
    assert unit.replace(drain_cycles=5).to_dict()["drain_cycles"] == 5


def test_pipes_and_drain_cycles_round_trip(tmp_path: Path) -> None:
    flat = load_architecture("flat")
    data = yaml.safe_load(flat.to_yaml())
    assert data["units"]["pe1d"]["pipes"] == {
        "alu": ["mac", "add", "max"],
        "exp": ["exp", "sqrt", "log"],
        "div": ["div"],
    }
    assert data["units"]["pe2d"]["drain_cycles"] == 256
    assert "pipes" not in data["units"]["pe2d"] and "drain_cycles" not in data["units"]["pe1d"]
    variant = flat.with_changes(
        {
            "units.pe1d.drain_cycles": 3,
            "units.pe1d.pipes.alu": ["mac"],
            "units.pe1d.pipes.misc": ("add", "max"),
        }
    )
    path = tmp_path / "variant.yaml"
    path.write_text(variant.to_yaml())
    again = load_architecture(str(path))
    assert again == variant and hash(again) == hash(variant)
    assert again.units["pe1d"].drain_cycles == 3
    assert again.units["pe1d"].pipes == {
        "alu": ("mac",),
        "exp": ("exp", "sqrt", "log"),
        "div": ("div",),
        "misc": ("add", "max"),
    }
    assert again.cycles("pe1d", {"mac": 1, "add": 1, "max": 1}) == 2


def test_with_changes_on_pipes_and_drain_cycles() -> None:
    fusemax = load_architecture("fusemax")
    drained = fusemax.with_changes({"units.pe2d.drain_cycles": 128})
    assert drained.units["pe2d"].drain_cycles == 128
    assert drained.units["pe1d"] == fusemax.units["pe1d"]
    assert fusemax.units["pe2d"].drain_cycles == 256  # the original is unchanged
    assert fusemax.with_changes({"units.pe2d.drain_cycles": None}).units["pe2d"].drain_cycles == 0
    pipes = {"alu": ["mac", "add", "max"], "div": ["div"]}
    split = fusemax.with_changes({"units.pe1d.pipes": pipes})
    assert split.cycles("pe1d", {"exp": 1, "div": 1}) == 6  # exp's MACs overlap the divide
    assert fusemax.cycles("pe1d", {"exp": 1, "div": 1}) == 7
    one = fusemax.with_unit("pe1d", pipes={"all": ("mac", "add", "max", "div")})
    assert one.cycles("pe1d", {"exp": 1, "div": 1}) == 7
    with pytest.raises(ArchitectureError, match=r"^fusemax \(changed\): units\.pe2d\.drain"):
        fusemax.with_changes({"units.pe2d.drain_cycles": -1})
    flat = load_architecture("flat")
    with pytest.raises(ArchitectureError, match=r"units\.pe1d\.pipes\.exp: 'exp' is a composition"):
        # The pipes must change too.
        flat.with_changes({"units.pe1d.ops.exp": {"mac": 6}, "units.pe1d.op_energy_pj.exp": None})


def test_nested_compositions_expand() -> None:
    arch = load_architecture("fusemax").with_changes(
        {"units.pe1d.ops.log": {"exp": 2, "div": 1}, "units.pe1d.ops.sqrt": {"log": 1, "mul": 3}}
    )
    # sqrt = log + 3 mul = (2 exp + div) + 3 mac = 12 + 1 + 3 mac.
    assert arch.primitive_counts("pe1d", {"sqrt": 2}) == {"mac": 30, "div": 2}
    assert arch.cycles("pe1d", {"sqrt": 2}) == 32


def test_queries_name_what_is_wrong() -> None:
    arch = load_architecture("fusemax")
    with pytest.raises(ArchitectureError, match=r"no unit 'npu'; the units are pe2d, pe1d"):
        arch.cycles("npu", {"add": 1})
    with pytest.raises(ArchitectureError, match=r"unknown operation 'tanh'; the operations are"):
        arch.cycles("pe2d", {"tanh": 1})
    with pytest.raises(ArchitectureError, match=r"non-negative count"):
        arch.cycles("pe2d", {"add": -1})
    lacking = arch.with_changes({"units.pe1d.ops.sqrt": None})
    with pytest.raises(ArchitectureError, match=r"units\.pe1d\.ops: no operation 'sqrt'"):
        lacking.cycles("pe1d", {"sqrt": 1})
    with pytest.raises(ArchitectureError, match=r"no storage level 'L2'"):
        arch.level("L2")
    with pytest.raises(ArchitectureError, match=r"name the unit"):
        arch.level("PE")


def test_unknown_builtin_lists_the_builtins() -> None:
    with pytest.raises(ArchitectureError) as info:
        load_architecture("tpu")
    assert str(info.value) == (
        "unknown architecture 'tpu': the built-ins are edge, flat, fusemax "
        "(or give the path of a YAML file)"
    )


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ArchitectureError, match=r"absent\.yaml: cannot read"):
        load_architecture(str(missing))


@pytest.mark.parametrize("name", ["fusemax", "flat", "edge"])
def test_yaml_round_trip(name: str, tmp_path: Path) -> None:
    arch = load_architecture(name)
    assert Architecture.from_dict(arch.to_dict()) == arch
    path = tmp_path / "copy.yaml"
    path.write_text(arch.to_yaml())
    again = load_architecture(str(path))
    assert again == arch
    assert hash(again) == hash(arch)
    assert again.to_dict() == arch.to_dict()


def test_file_name_is_the_default_name(tmp_path: Path) -> None:
    data = load_architecture("edge").to_dict()
    del data["name"]
    path = tmp_path / "my_npu.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_architecture(path).name == "my_npu"


def test_yaml_conveniences(tmp_path: Path) -> None:
    text = """
name: tiny
clock_mhz: 1e3               # YAML 1.2 style exponent
word_bytes: 2
units:
  pe2d: &pe
    shape: [4, 4]
    ops: {mac: 1, add: 1, exp: {mac: 6, add: 1}}
    op_energy_pj: {mac: 1.5, add: 0.5}
  pe1d: {<<: *pe, shape: [4]}
storage:
  DRAM: {bandwidth_bytes_per_s: 10e9, read_pj: 100, write_pj: 100, access_bits: 64}
  GLB: {entries: 1024, read_pj: 10, write_pj: 10}
"""
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    arch = load_architecture(str(path))
    assert arch.clock_hz == 1e9
    assert arch.units["pe1d"].shape == (4,)
    assert arch.cycles("pe1d", {"exp": 1}) == 7
    assert arch.op_energy_pj("pe1d", {"exp": 1}) == pytest.approx(9.5)
    assert arch.capacity_bytes("GLB") == 2048
    assert arch.read_pj_per_value("GLB") == 10
    assert "RF" not in arch.storage


def test_schema_readme_example_loads(tmp_path: Path) -> None:
    readme = Path(__file__).parent.parent / "hardware" / "architectures" / "README.md"
    example = readme.read_text().split("## Example")[1].split("```yaml")[1].split("```")[0]
    arch = Architecture.from_yaml(example, "README.md")
    assert arch.name == "tiny"
    assert arch.cycles("pe1d", {"exp": 1, "div": 1}) == 10
    assert arch.storage["DRAM"].bandwidth_bytes_per_s == 10e9


# -- invalid files ------------------------------------------------------------------------------


def _fusemax_dict() -> dict[str, Any]:
    return load_architecture("fusemax").to_dict()


def _edit(path: str, value: object) -> dict[str, Any]:
    """FuseMax's description with the field at dotted `path` set (or removed, for `...`)."""
    data = _fusemax_dict()
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


PIPES: dict[str, list[str]] = {"alu": ["mac", "add", "max"], "div": ["div"]}
"""Valid pipes for FuseMax's `pe1d`, whose primitive operations are mac, add, max and div."""


def _pipes(pipes: object, **pe1d: object) -> dict[str, Any]:
    """FuseMax's description with `pipes` on `pe1d` and some other fields of `pe1d` replaced."""
    data = _edit("units.pe1d.pipes", pipes)
    data["units"]["pe1d"] |= pe1d
    return data


BAD: list[tuple[dict[str, Any], str]] = [
    (
        _edit("units.pe2d.shape", [256, -1]),
        "units.pe2d.shape: expected 1 or 2 positive integers, got [256, -1]",
    ),
    (
        _edit("units.pe1d.shape", [4, 4, 4]),
        "units.pe1d.shape: expected 1 or 2 positive integers, got [4, 4, 4]",
    ),
    (
        _edit("units.pe2d.colour", "blue"),
        "units.pe2d.colour: unknown field; the fields are shape, ops, op_energy_pj, registers, "
        "pipes, drain_cycles, parent, area_um2, leak_pj_per_cycle",
    ),
    (
        _edit("frequency", 1),
        "frequency: unknown field; the fields are name, clock_mhz, word_bytes, units, storage, "
        "description",
    ),
    (
        _edit("storage.L3", {"read_pj": 1, "write_pj": 1, "parent": "XL"}),
        "storage.L3.parent: no storage level 'XL' listed before this one (levels are listed "
        "outermost first: DRAM, GLB, RF)",
    ),
    (
        _edit("storage.DRAM.parent", "GLB"),
        "storage.DRAM.parent: the first storage level is the root (the backing store): it has "
        "no parent",
    ),
    (_edit("clock_mhz", ...), "clock_mhz: required field is missing"),
    (_edit("storage", {}), "storage: expected at least one storage level"),
    (
        _edit("storage.GLB.mesh", [3]),
        "storage.RF.mesh: 1 x 1 instances under GLB's 3 x 1: each axis must be a multiple",
    ),
    (
        _edit("storage.RF.mesh", [3]),
        "units.pe2d.shape: 256 x 256 instances under RF's 3 x 1: each axis must be a multiple",
    ),
    (_edit("units.pe2d.parent", "L2"), "units.pe2d.parent: no storage level 'L2'; the levels"),
    (
        _edit("storage.GLB.multiple_buffering", 0.5),
        "storage.GLB.multiple_buffering: expected a number of at least 1, got 0.5",
    ),
    (
        _edit("storage.GLB.read_bandwidth", 0),
        "storage.GLB.read_bandwidth: expected a positive number, got 0",
    ),
    (
        _edit("storage.RF.default_keep", "no"),
        "storage.RF.default_keep: expected true or false, got 'no'",
    ),
    (
        _edit("units.pe1d.registers.mesh", [2]),
        "units.pe1d.registers.mesh: a unit's registers have one instance per PE",
    ),
    (_edit("units.pe2d.ops", ...), "units.pe2d.ops: required field is missing"),
    (_edit("storage.GLB.read_pj", ...), "storage.GLB.read_pj: required field is missing"),
    (_edit("clock_mhz", "fast"), "clock_mhz: expected a positive number, got 'fast'"),
    (_edit("word_bytes", 2.5), "word_bytes: expected a positive integer, got 2.5"),
    (_edit("units", [1, 2]), "units: expected a mapping of units by name, got [1, 2]"),
    (_edit("units", {}), "units: expected at least one unit"),
    (
        _edit("units.pe2d.ops.add", True),
        "units.pe2d.ops.add: expected a positive number of cycles or a composition",
    ),
    (
        _edit("units.pe2d.ops.tanh", 1),
        "units.pe2d.ops.tanh: unknown operation; the operations are mac, mul, add, max, exp, "
        "div, sqrt, log",
    ),
    (
        _edit("units.pe2d.ops.exp", {"fma": 6}),
        "units.pe2d.ops.exp.fma: composition refers to an unknown operation",
    ),
    (
        _edit("units.pe2d.ops.exp", {"mac": 0}),
        "units.pe2d.ops.exp.mac: expected a positive integer, got 0",
    ),
    (
        _edit("units.pe1d.ops", {"mac": 1, "exp": {"log": 1}, "log": {"exp": 1}}),
        "units.pe1d.ops.exp: cyclic composition exp -> log -> exp",
    ),
    (
        _edit("units.pe1d.ops", {"mac": 1, "exp": {"div": 1}}),
        "units.pe1d.ops.exp.div: composition refers to 'div', which this unit's ops do not define",
    ),
    (
        _edit("units.pe2d.op_energy_pj.exp", 94.65),
        "units.pe2d.op_energy_pj.exp: 'exp' is a composition (ops.exp)",
    ),
    (
        _edit("units.pe2d.op_energy_pj.max", ...),
        "units.pe2d.op_energy_pj.max: required field is missing",
    ),
    (
        _edit("units.pe2d.op_energy_pj.max", -0.5),
        "units.pe2d.op_energy_pj.max: expected a non-negative energy in pJ, got -0.5",
    ),
    (
        _edit("storage.GLB.capacity_bytes", 0),
        "storage.GLB.capacity_bytes: expected a positive integer, got 0",
    ),
    (
        _edit("storage.GLB.capacity_bytes", -16),
        "storage.GLB.capacity_bytes: expected a positive integer, got -16",
    ),
    (
        _edit("units.pe1d.registers.entries", ...),
        "units.pe1d.registers.entries: required field is missing",
    ),
    (
        _edit("storage.RF.capacity_bytes", 4096),
        "storage.RF.entries: give the capacity either in bytes or in entries, not both",
    ),
    (
        _edit("units.2d", _fusemax_dict()["units"]["pe2d"]),
        "units.2d: a unit name must be an identifier",
    ),
    (
        _edit("units.pe2d.drain_cycles", -1),
        "units.pe2d.drain_cycles: expected a non-negative integer, got -1",
    ),
    (
        _edit("units.pe2d.drain_cycles", 2.5),
        "units.pe2d.drain_cycles: expected a non-negative integer, got 2.5",
    ),
    (
        _pipes(["mac", "add"]),
        "units.pe1d.pipes: expected a mapping of pipes by name (name: [operations]), "
        "got ['mac', 'add']",
    ),
    (
        _pipes({**PIPES, "2nd": ["div"]}),
        "units.pe1d.pipes.2nd: a pipe name must be an identifier",
    ),
    (
        _pipes({**PIPES, "exp": []}),
        "units.pe1d.pipes.exp: expected a non-empty list of operations, got []",
    ),
    (
        _pipes({**PIPES, "div": "div"}),
        "units.pe1d.pipes.div: expected a non-empty list of operations, got 'div'",
    ),
    (
        _pipes({**PIPES, "exp": ["tanh"]}),
        "units.pe1d.pipes.exp: unknown operation 'tanh'; the operations are mac, mul, add, max, "
        "exp, div, sqrt, log",
    ),
    (
        _pipes(
            {**PIPES, "exp": ["sqrt"]},
            ops={"mac": 1, "add": 1, "max": 1, "div": 1},
        ),
        "units.pe1d.pipes.exp: 'sqrt' is not one of this unit's ops (they are mac, add, max, div)",
    ),
    (
        _pipes({**PIPES, "exp": ["exp"]}),
        "units.pe1d.pipes.exp: 'exp' is a composition (ops.exp); a pipe lists primitive "
        "operations, which are mac, add, max, div",
    ),
    (
        _pipes({**PIPES, "div": ["div", "add"]}),
        "units.pe1d.pipes.div: 'add' is already in pipe 'alu'; each operation is in exactly "
        "one pipe",
    ),
    (
        _pipes({**PIPES, "div": ["div", "div"]}),
        "units.pe1d.pipes.div: 'div' is already in this pipe; each operation is in exactly one "
        "pipe",
    ),
    (
        _pipes({"alu": ["mac", "add"]}),
        "units.pe1d.pipes: primitive operations 'max', 'div' are in no pipe; each primitive "
        "operation must be in exactly one",
    ),
    (
        _pipes({}),
        "units.pe1d.pipes: primitive operations 'mac', 'add', 'max', 'div' are in no pipe; each "
        "primitive operation must be in exactly one",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), BAD, ids=[message.split(":")[0] for _, message in BAD]
)
def test_bad_files_name_the_field(data: dict[str, Any], message: str, tmp_path: Path) -> None:
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ArchitectureError) as info:
        load_architecture(str(path))
    assert str(info.value).startswith(f"{path}: {message}")
    assert info.value.source == str(path)
    assert info.value.field == message.split(":")[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping, got null"),
        ("- 1\n- 2\n", "expected a mapping, got [1, 2]"),
        (
            "name: x\nname: y\n",
            "invalid YAML at line 2, column 1: while reading a mapping; found duplicate key 'name'",
        ),
        ("units: [1\n", "invalid YAML at line 2, column 1: while parsing a flow sequence"),
    ],
)
def test_bad_yaml(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "arch.yaml"
    path.write_text(text)
    with pytest.raises(ArchitectureError) as info:
        load_architecture(str(path))
    assert str(info.value).startswith(f"{path}: {message}")


# -- what-if variants -----------------------------------------------------------------------------


def test_with_changes() -> None:
    arch = load_architecture("fusemax")
    half = arch.with_changes(
        {
            "units.pe2d.shape": (128, 256),
            "storage.DRAM.bandwidth_bytes_per_s": 200 * GIB,
            "storage.GLB.capacity_bytes": 8 * MB,
        },
        clock_mhz=470,
    )
    assert half.units["pe2d"].shape == (128, 256)
    assert half.units["pe2d"].pes == 128 * 256
    assert half.storage["DRAM"].bandwidth_bytes_per_s == 200 * GIB
    assert half.capacity_bytes("GLB") == 8 * MB
    assert half.clock_hz == 470e6
    assert half.units["pe1d"] == arch.units["pe1d"]
    assert arch.units["pe2d"].shape == (256, 256)  # the original is unchanged
    assert "RF" not in arch.with_changes({"storage.RF": None}).storage


def test_with_changes_validates() -> None:
    arch = load_architecture("fusemax")
    with pytest.raises(ArchitectureError) as info:
        arch.with_changes({"units.pe2d.shape": [128, 0]})
    assert str(info.value) == (
        "fusemax (changed): units.pe2d.shape: expected 1 or 2 positive integers, got [128, 0]"
    )
    with pytest.raises(ArchitectureError, match=r"units\.npu: no such mapping to change"):
        arch.with_changes({"units.npu.shape": [4]})


def test_with_unit_and_level() -> None:
    arch = load_architecture("fusemax")
    side = arch.with_unit("pe2d", shape=(128, 128))
    assert side.units["pe2d"].shape == (128, 128)
    assert side.cycles("pe2d", {"exp": 1, "add": 1}) == 7
    slow = arch.with_level("DRAM", bandwidth_bytes_per_s=100 * GIB)
    assert slow.bytes_per_cycle() == pytest.approx(arch.bytes_per_cycle() / 4)
    with pytest.raises(ArchitectureError, match=r"units\.pe2d\.shap: unknown field"):
        arch.with_unit("pe2d", shap=(1,))
    with pytest.raises(ArchitectureError, match=r"storage\.GLB\.capacity_bytes: expected a"):
        arch.with_level("GLB", capacity_bytes=0)


def test_replace() -> None:
    arch = load_architecture("flat")
    pe1d = arch.units["pe1d"].replace(ops={**arch.units["pe1d"].ops, "exp": 4})
    variant = arch.replace(units={**arch.units, "pe1d": pe1d}, word_bytes=4)
    assert variant.cycles("pe1d", {"exp": 1}) == 4
    assert variant.read_pj_per_value("GLB") == pytest.approx(23854.6 / 128)
    assert arch.cycles("pe1d", {"exp": 1}) == 1
    with pytest.raises(ArchitectureError, match=r"^word_bytes: expected a positive integer"):
        arch.replace(word_bytes=0)
    with pytest.raises(ArchitectureError, match=r"^shape: expected 1 or 2 positive integers"):
        arch.units["pe2d"].replace(shape=(256, 256, 1))
    with pytest.raises(ArchitectureError, match=r"^colour: unknown field; the fields are shape"):
        arch.units["pe2d"].replace(colour="blue")


def test_unit_replace_validates_pipes_and_drain_cycles() -> None:
    pe1d = load_architecture("flat").units["pe1d"]
    with pytest.raises(ArchitectureError, match=r"^drain_cycles: expected a non-negative integer"):
        pe1d.replace(drain_cycles=True)
    with pytest.raises(ArchitectureError, match=r"^pipes: expected a mapping of pipes by name"):
        pe1d.replace(pipes=("mac", "add"))
    assert pe1d.pipes is not None
    without_div = {name: ops for name, ops in pe1d.pipes.items() if name != "div"}
    with pytest.raises(ArchitectureError, match=r"^pipes: primitive operations 'div' are in no"):
        pe1d.replace(pipes=without_div)
    with pytest.raises(ArchitectureError, match=r"^pipes\.div: expected a non-empty list"):
        pe1d.replace(pipes={**without_div, "div": ()})


def test_architectures_are_immutable_and_hashable() -> None:
    arch = load_architecture("fusemax")
    with pytest.raises(ValueError, match="frozen"):
        arch.clock_mhz = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        arch.units["pe2d"] = arch.units["pe1d"]  # type: ignore[index]
    assert len({arch, load_architecture("fusemax"), load_architecture("flat")}) == 2


# -- the tree of levels -------------------------------------------------------------------------


def test_builtin_chains_and_roles() -> None:
    arch = load_architecture("fusemax")
    assert arch.root == "DRAM"
    assert arch.chain_names("pe2d") == ("DRAM", "GLB", "RF", "PE")
    assert [c.label for c in arch.chain("pe1d")] == ["DRAM", "GLB", "RF", "pe1d.PE"]
    assert [c.mesh for c in arch.chain("pe2d")] == [(1, 1), (1, 1), (1, 1), (256, 256)]
    assert arch.shared_levels() == ("DRAM", "GLB", "RF")
    assert arch.buffer_level() == "GLB"
    assert arch.staging_level() == "RF"  # default_keep: false
    assert arch.units_with_axes(2) == ("pe2d",) and arch.units_with_axes(1) == ("pe1d",)
    assert arch.storage["GLB"].block_words(arch.word_bytes) == 256
    assert arch.storage["DRAM"].block_words(arch.word_bytes) == 4


TREE = """
name: tree
clock_mhz: 1000
word_bytes: 1
storage:
  MainMemory: {read_pj: 100, write_pj: 100, access_bits: 64, read_bandwidth: 8}
  Shared: {entries: 4096, read_pj: 10, write_pj: 8, update_pj: 9, leak_pj_per_cycle: 0.01}
  Column: {parent: Shared, mesh: [4], entries: 64, read_pj: 1, write_pj: 1, area_um2: 50}
  Vector: {parent: Shared, entries: 256, read_pj: 2, write_pj: 2, multiple_buffering: 2}
units:
  grid: {parent: Column, shape: [4, 8], ops: {mac: 1}, op_energy_pj: {mac: 0.5}, area_um2: 3}
  row: {parent: Vector, shape: [16], ops: {mac: 1, add: 1}, op_energy_pj: {mac: 0.5, add: 0.2}}
"""


def test_levels_form_a_tree_with_meshes_and_fanouts() -> None:
    arch = Architecture.from_yaml(TREE, "tree.yaml")
    assert arch.parent_of("Column") == "Shared" and arch.parent_of("Shared") == "MainMemory"
    assert arch.chain_names("grid") == ("MainMemory", "Shared", "Column")
    assert arch.chain_names("row") == ("MainMemory", "Shared", "Vector")
    assert arch.chain("grid")[-1].mesh == (4, 1)
    assert arch.shared_levels() == ("MainMemory", "Shared")
    assert arch.buffer_level() == "Shared"
    assert arch.staging_level() is None
    shared = arch.storage["Shared"]
    assert (shared.update_energy_pj, arch.storage["Vector"].update_energy_pj) == (9, 2)
    assert arch.storage["Vector"].multiple_buffering == 2
    assert arch.storage["MainMemory"].read_bandwidth == 8
    again = Architecture.from_yaml(arch.to_yaml(), "again.yaml")
    assert again == arch


def test_fanout_must_divide() -> None:
    bad = TREE.replace("shape: [4, 8]", "shape: [6, 8]")
    with pytest.raises(ArchitectureError, match=r"units\.grid\.shape: 6 x 8 instances under"):
        Architecture.from_yaml(bad, "tree.yaml")
