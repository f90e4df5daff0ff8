"""The Timeloop v0.4 frontend: what it reads from the corpus inputs, a mapping given in a file
of its own, and one-line errors naming the file and the field path."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from einsum_opt.costmodel.nest_analysis import Loop, Term, analyze
from einsum_opt.costmodel.timeloop_import import to_level_hardware, to_nest_spec
from einsum_opt.frontends.timeloop_spec import TimeloopSpecError, load_timeloop_spec
from einsum_opt.frontends.timeloop_tables import component_name

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "timeloop"
THREE_LEVELS = CORPUS / "03-conv1d-oc-3level-bypass"


def _input() -> dict[str, Any]:
    return yaml.safe_load((THREE_LEVELS / "input.yaml").read_text())


def _write(tmp_path: Path, document: object, name: str = "input.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_three_level_case_reads_as_timeloop_reads_it() -> None:
    spec = load_timeloop_spec(THREE_LEVELS / "input.yaml", THREE_LEVELS / "ERT.yaml")
    names = [level.name for level in spec.architecture.storage]
    assert names == ["MainMemory", "GlobalBuffer", "RegisterFile"]
    dram, glb, rf = spec.architecture.storage
    assert (dram.technology, dram.block_size, dram.size) == ("DRAM", 32, None)  # 256 / 8
    assert (glb.technology, glb.block_size, glb.size) == ("SRAM", 8, 32768 * 8)
    assert (rf.block_size, rf.size) == (1, 64)
    assert spec.architecture.arithmetic.name == "MACC"
    assert spec.problem.bounds == {"K": 32, "R": 3, "P": 16}
    inputs = spec.problem.data_spaces[1]
    assert [[t.dim for t in rank] for rank in inputs.projection] == [["R", "P"]]
    glb_mapping = spec.mapping.levels[1]
    # permutation PRK is innermost first: K is the outermost loop
    assert [(lp.dim, lp.factor) for lp in glb_mapping.temporal] == [("K", 16), ("R", 1), ("P", 16)]
    assert glb_mapping.keep == {"Weights", "Inputs"}
    assert spec.ert is not None and spec.ert["GlobalBuffer"]["read"] == 43.353054
    nest = to_nest_spec(spec)
    assert nest.levels[1].loops[0] == Loop("K", 16)
    assert nest.tensors[1].projection == ((Term(1, "R"), Term(1, "P")),)
    levels, compute = to_level_hardware(spec)
    assert (levels[1].read_pj, levels[1].write_pj, levels[1].leak_pj_per_cycle) == (
        43.353054,
        30.878292,
        0.007972,
    )
    assert compute.compute_pj == 0.845 and compute.instances == 1


def test_a_mapping_in_a_file_of_its_own_replaces_the_inputs(tmp_path: Path) -> None:
    document = _input()
    mapping = {"mapping": document.pop("mapping")}
    document["mapping"] = []
    alone = load_timeloop_spec(
        _write(tmp_path, document), mapping_path=_write(tmp_path, mapping, "map.yaml")
    )
    together = load_timeloop_spec(THREE_LEVELS / "input.yaml")
    assert alone.mapping == together.mapping
    assert analyze(to_nest_spec(alone)) == analyze(to_nest_spec(together))


def test_factors_written_without_equals_signs_and_spatial_splits(tmp_path: Path) -> None:
    document = _input()
    arch = document["architecture"]["subtree"][0]["local"]
    for level in arch[1:]:
        level["name"] = level["name"].replace("[1..1]", "[1..4]")
        level["attributes"]["meshX"] = 2
        level["attributes"]["meshY"] = 2
    arch[0]["attributes"]["meshX"] = arch[0]["attributes"]["meshY"] = 1
    document["mapping"][1]["factors"] = "R1 P8 K8"
    document["mapping"].append(
        {
            "target": "MainMemory",
            "type": "spatial",
            "factors": "K2 P2",
            "permutation": "KP",
            "split": 1,
        }
    )
    spec = load_timeloop_spec(_write(tmp_path, document))
    assert spec.architecture.storage[1].instances == 4
    spatial = spec.mapping.levels[0].spatial
    # the first `split` dimensions of the permutation go to X (innermost)
    assert [(lp.dim, lp.factor, lp.axis) for lp in spatial if lp.factor > 1] == [
        ("P", 2, "Y"),
        ("K", 2, "X"),
    ]
    counts = analyze(to_nest_spec(spec))
    assert counts.levels["GlobalBuffer"].utilized_instances == 4


def test_component_names_of_the_tables() -> None:
    assert component_name("system_top_level.DRAM[1..1]") == "DRAM"
    assert component_name("top.PE[0..15].RF[10..20]") == "RF"
    assert component_name("buffer") == "buffer"


def test_an_action_listed_per_argument_set_costs_the_most(tmp_path: Path) -> None:
    ert = yaml.safe_load((THREE_LEVELS / "ERT.yaml").read_text())
    ert["ERT"]["tables"][1]["actions"].append({"name": "read", "energy": 50.0})
    spec = load_timeloop_spec(
        THREE_LEVELS / "input.yaml", ert_path=_write(tmp_path, ert, "ERT.yaml")
    )
    assert spec.ert is not None and spec.ert["GlobalBuffer"]["read"] == 50.0


def _mutated(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(_input())
    change(document)
    return document


def _set(path: list[str | int], value: object) -> Any:
    def change(document: Any) -> None:
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set(["mapping", 3, "factors"], "R=3,P=1,Z=2"),
            "input.yaml: mapping[3].factors: unknown dimension 'Z'",
        ),
        (
            _set(["mapping", 1, "target"], "L2"),
            "input.yaml: mapping[1].target: unknown storage level 'L2' "
            "(levels: MainMemory, GlobalBuffer, RegisterFile)",
        ),
        (
            _set(["mapping", 3, "factors"], "R=3,P=1,K=4"),
            "input.yaml: mapping: the factors of 'K' multiply to 64 (16 at GlobalBuffer × 4 at "
            "RegisterFile), not its size 32",
        ),
        (
            _set(["mapping", 2, "keep"], ["Weights", "Outputz"]),
            "input.yaml: mapping[2].keep[1]: unknown data space 'Outputz'",
        ),
        (
            _set(["mapping", 3, "permutation"], "RPKX"),
            "input.yaml: mapping[3].permutation: unknown dimension 'X'",
        ),
        (
            _set(["mapping", 0, "type"], "spatial"),
            "input.yaml: mapping[0]: 'MainMemory' has no spatial fan-out "
            "(the level below has as many instances)",
        ),
        (
            _set(["mapping", 0, "type"], "skew"),
            "input.yaml: mapping[0].type: skew directives are not supported",
        ),
        (
            _set(["problem", "shape", "data_spaces", 1, "projection"], [[["R"], ["Q"]]]),
            "input.yaml: problem.shape.data_spaces[1].projection[0][1]: unknown dimension 'Q'",
        ),
        (
            _set(["problem", "instance", "K"], 0),
            "input.yaml: problem.instance.K: must be at least 1, found 0",
        ),
        (
            _set(["problem", "shape", "dimensions"], ["K", "R", "PP"]),
            "input.yaml: problem.shape.dimensions[2]: dimension names must be one character, "
            "found 'PP'",
        ),
        (
            _set(["architecture", "subtree", 0, "local", 1, "attributes", "depth"], "deep"),
            "input.yaml: architecture.subtree[0].local[1].attributes.depth: "
            "expected a number, found 'deep'",
        ),
        (
            _set(["architecture", "subtree", 0, "local", 1, "attributes", "width"], 60),
            "input.yaml: architecture.subtree[0].local[1].attributes.width: "
            "60 bits is not a multiple of block_size 1 × datawidth 8",
        ),
        (
            _set(["architecture", "subtree", 0, "local", 2, "attributes", "meshX"], 3),
            "input.yaml: architecture.subtree[0].local[2].attributes.meshX: "
            "meshX 3 × meshY 1 is not the 1 instances",
        ),
        (_set(["mapping"], []), "input.yaml: mapping: no mapping directives"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path: Path, change: Any, message: str) -> None:
    path = _write(tmp_path, _mutated(change))
    with pytest.raises(TimeloopSpecError) as error:
        load_timeloop_spec(path)
    text = str(error.value).replace(str(tmp_path) + "/", "")
    # `input.yaml:LINE:COL: error: field.path: ...`: the file, the place and the field
    file, _, field_message = message.partition(": ")
    placed = re.fullmatch(r"(\S+):(\d+):(\d+): error: (.*)", text)
    assert placed is not None, text
    assert placed[1] == file and placed[4].startswith(field_message), text
    assert 1 <= int(placed[2]) <= len(path.read_text().splitlines())
    assert "\n" not in text


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TimeloopSpecError, match=r"nothing\.yaml: cannot read"):
        load_timeloop_spec(tmp_path / "nothing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("architecture: [unclosed\n")
    with pytest.raises(TimeloopSpecError, match=r"bad\.yaml:2:1: error: invalid YAML"):
        load_timeloop_spec(bad)
    ert = _write(tmp_path, {"ERT": {"version": "0.2", "tables": []}}, "ERT.yaml")
    with pytest.raises(
        TimeloopSpecError,
        match=r"ERT\.yaml:\d+:\d+: error: ERT\.version: unsupported ERT version 0\.2",
    ):
        load_timeloop_spec(THREE_LEVELS / "input.yaml", ert_path=ert)
