"""Timeloop's v0.4 user form: an architecture of `nodes` (`!Container`, `!Component`,
`!Parallel`, ...) reads as the chain of levels Timeloop's front end hands to timeloop-model
(written out here in the `subtree` form to compare with), constraints of nodes are mapping
directives, and mistakes are one-line errors with their line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.timeloop_import import to_nest_spec
from einsum_opt.frontends.timeloop_spec import TimeloopSpecError, load_timeloop_spec

GEMM = Path(__file__).resolve().parent.parent / "examples" / "timeloop" / "gemm" / "input.yaml"


def problem(m: int, n: int, k: int) -> str:
    """A GEMM problem Z[m, n] = A[m, k] * B[k, n] of these sizes."""
    return f"""
problem:
  shape:
    name: GEMM
    dimensions: [M, N, K]
    data_spaces:
    - {{name: A, projection: [[[M]], [[K]]]}}
    - {{name: B, projection: [[[K]], [[N]]]}}
    - {{name: Z, projection: [[[M]], [[N]]], read_write: true}}
  instance: {{M: {m}, N: {n}, K: {k}}}
"""


PROBLEM = problem(8, 4, 6)

# The front end's flattening of examples/timeloop/gemm, written by hand: the PE container's
# fan-out is a dummy level of one word before the RF, at the instances before the fan-out,
# keeping nothing; the RF and the MAC are 256 instances on a 16 x 16 mesh.
GEMM_ARCHITECTURE = """
architecture:
  version: 0.4
  subtree:
  - name: system_top_level
    local:
    - {name: "DRAM[1..1]", class: DRAM, attributes: {width: 64, datawidth: 8}}
    - name: "GLB[1..1]"
      class: SRAM
      attributes: {depth: 8192, width: 64, datawidth: 8}
    - name: "inter_PE_spatial[1..1]"
      class: dummy_storage
      attributes: {width: 1, depth: 1, datawidth: 1}
    - name: "RF[1..256]"
      class: regfile
      attributes: {depth: 16, width: 8, datawidth: 8, meshX: 16, meshY: 16}
    - name: "MAC[1..256]"
      class: intmac
      attributes: {width: 8, meshX: 16, meshY: 16}
"""
GEMM_FLATTENED = (
    GEMM_ARCHITECTURE
    + problem(64, 64, 64)
    + """
mapping:
- {target: DRAM, type: temporal, factors: M=1 N=1 K=1, permutation: MNK}
- {target: GLB, type: temporal, factors: M=4 N=4 K=1, permutation: NMK}
- {target: inter_PE_spatial, type: temporal, factors: M=1 N=1 K=1}
- {target: inter_PE_spatial, type: spatial, factors: M=16 N=16 K=1, permutation: MNK, split: 1}
- {target: inter_PE_spatial, type: bypass, bypass: [A, B, Z]}
- {target: RF, type: temporal, factors: M=1 N=1 K=64, permutation: KMN}
- {target: RF, type: bypass, keep: [Z], bypass: [A, B]}
"""
)


def write(tmp_path: Path, text: str, name: str = "input.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_example_reads_as_the_front_end_flattens_it(tmp_path: Path) -> None:
    nodes = load_timeloop_spec(GEMM)
    flat = load_timeloop_spec(write(tmp_path, GEMM_FLATTENED))
    assert [lv.name for lv in nodes.architecture.storage] == [
        "DRAM",
        "GLB",
        "inter_PE_spatial",
        "RF",
    ]
    assert nodes.architecture.storage == flat.architecture.storage
    assert nodes.architecture.arithmetic == flat.architecture.arithmetic
    assert nodes.mapping == flat.mapping
    assert nodes.problem == flat.problem
    assert analyze(to_nest_spec(nodes)) == analyze(to_nest_spec(flat))
    assert nodes.architecture.fanouts == {"PE": "inter_PE_spatial"}


def arch(body: str) -> str:
    return "architecture:\n  version: 0.4\n  nodes:\n" + body


ONE_LEVEL_MAPPING = """
mapping:
- {target: Buf, type: temporal, factors: [M=8, N=4, K=6], permutation: [K, N, M]}
"""


def test_containers_lend_their_attributes_and_fan_out(tmp_path: Path) -> None:
    text = arch(
        """
  - !Container {name: chip, attributes: {datawidth: 16, technology: 45nm}}
  - !Component {name: DRAM, class: DRAM, attributes: {width: 64}}
  - !Container {name: Tile, spatial: {meshX: 2}}
  - !Component {name: Buf, class: SRAM, attributes: {depth: 64, width: 32, datawidth: 8}}
  - !Container {name: Lane, spatial: {meshY: 2}}
  - !Component {name: Reg, class: regfile, attributes: {depth: 4, width: 16}}
  - !Component {name: MAC, class: intmac, attributes: {width: 16}}
"""
    )
    mapping = """
mapping:
- {target: Tile, type: spatial, factors: [M=2]}
- {target: Buf, type: temporal, factors: [M=4, K=6]}
- {target: Lane, type: spatial, factors: [N=2], split: 0}
- {target: Reg, type: temporal, factors: [N=2]}
"""
    spec = load_timeloop_spec(write(tmp_path, text + PROBLEM + mapping))
    levels = {level.name: level for level in spec.architecture.storage}
    assert list(levels) == ["DRAM", "inter_Tile_spatial", "Buf", "inter_Lane_spatial", "Reg"]
    assert levels["DRAM"].word_bits == 16 and levels["DRAM"].block_size == 4  # inherited
    assert levels["Buf"].word_bits == 8 and levels["Buf"].block_size == 4  # its own wins
    # each fan-out multiplies what follows; its dummy sits at the instances before it
    meshes = {name: (lv.instances, lv.mesh_x, lv.mesh_y) for name, lv in levels.items()}
    assert meshes == {
        "DRAM": (1, 1, 1),
        "inter_Tile_spatial": (1, 1, 1),
        "Buf": (2, 2, 1),
        "inter_Lane_spatial": (2, 2, 1),
        "Reg": (4, 2, 2),
    }
    assert spec.architecture.arithmetic.instances == 4
    mapped = {level.target: level for level in spec.mapping.levels}
    # a spatial directive for a container is one for its dummy, which keeps nothing
    assert [
        (lp.dim, lp.factor, lp.axis) for lp in mapped["inter_Lane_spatial"].spatial if lp.factor > 1
    ] == [("N", 2, "Y")]
    assert mapped["inter_Tile_spatial"].keep == frozenset()
    assert mapped["Buf"].keep == {"A", "B", "Z"}
    assert analyze(to_nest_spec(spec)).computes == 8 * 4 * 6


def test_a_component_with_its_own_fan_out_and_a_parallel_group(tmp_path: Path) -> None:
    text = arch(
        """
  - !Component {name: Buf, class: SRAM, attributes: {depth: 64, width: 8, datawidth: 8}}
  - !Component
    name: Spad
    class: smartbuffer_SRAM
    spatial: {meshX: 4}
    attributes: {depth: 16, width: 8, datawidth: 8}
    constraints: {spatial: {factors: [M=4]}}
  - !Parallel
    nodes:
    - !Component {name: RegA, class: storage, attributes: {depth: 1, width: 8, datawidth: 8}}
    - !Nothing
    - !Component {name: RegB, class: storage, attributes: {depth: 1, width: 8, datawidth: 8}}
    - !Component {name: Off, class: storage, enabled: false, attributes: {depth: 1}}
  - !Component {name: MAC, class: intmac, attributes: {width: 8}}
"""
    )
    mapping = """
mapping:
- {target: Buf, type: temporal, factors: [M=2, N=4, K=6]}
- {target: RegA, type: dataspace, keep: [A], bypass: [B, Z]}
- {target: RegB, type: dataspace, keep: [B], bypass: [A, Z]}
"""
    spec = load_timeloop_spec(write(tmp_path, text + PROBLEM + mapping))
    names = [level.name for level in spec.architecture.storage]
    assert names == ["Buf", "inter_Spad_spatial", "Spad", "RegA", "RegB"]
    assert [level.instances for level in spec.architecture.storage] == [1, 1, 4, 4, 4]
    mapped = {level.target: level for level in spec.mapping.levels}
    # the component's spatial constraint is its dummy's fan-out
    assert [
        (lp.dim, lp.factor) for lp in mapped["inter_Spad_spatial"].spatial if lp.factor > 1
    ] == [("M", 4)]
    assert (mapped["RegA"].keep, mapped["RegB"].keep) == ({"A"}, {"B"})


def test_constraints_combine_with_the_mapping_unless_it_is_a_file(tmp_path: Path) -> None:
    text = arch(
        """
  - !Component {name: DRAM, class: DRAM, attributes: {width: 8, datawidth: 8}}
  - !Component
    name: Buf
    class: SRAM
    attributes: {depth: 512, width: 8, datawidth: 8}
    constraints:
      dataspace: {keep: [Z], bypass: [A, B]}
      temporal: {permutation: [K, N, M]}
  - !Component {name: MAC, class: intmac, attributes: {width: 8}}
"""
    )
    mapping = """
mapping:
- {target: Buf, type: temporal, factors: [M=8, N=4, K=6]}
"""
    spec = load_timeloop_spec(write(tmp_path, text + PROBLEM + mapping))
    buf = spec.mapping.levels[1]
    assert buf.keep == {"Z"}
    assert [(lp.dim, lp.factor) for lp in buf.temporal] == [("M", 8), ("N", 4), ("K", 6)]
    # A mapping file (a mapper's .map.yaml) is the whole mapping, as timeloop-model reads it.
    alone = load_timeloop_spec(
        write(tmp_path, text + PROBLEM, "arch.yaml"),
        mapping_path=write(tmp_path, mapping, "map.yaml"),
    )
    assert alone.mapping.levels[1].keep == {"A", "B", "Z"}
    contradiction = mapping.replace(
        "factors: [M=8, N=4, K=6]", "factors: [M=8, N=4, K=6], permutation: [M, N, K]"
    )
    with pytest.raises(
        TimeloopSpecError,
        match=r"input\.yaml:\d+:\d+: error: mapping\[0\]\.permutation: contradicts",
    ):
        load_timeloop_spec(write(tmp_path, text + PROBLEM + contradiction))


def test_constraints_listed_apart_are_directives_too(tmp_path: Path) -> None:
    text = arch(LEVELS_WITH_DRAM) + PROBLEM + ONE_LEVEL_MAPPING
    targets = """
constraints:
  targets:
  - {target: Buf, type: dataspace, keep: [A, Z], bypass: [B]}
  - {target: Buf, type: max_overbooked_proportion, proportion: 0.5}
"""
    spec = load_timeloop_spec(write(tmp_path, text + targets))
    assert spec.mapping.levels[1].keep == {"A", "Z"}
    wrong = targets.replace("target: Buf, type: dataspace", "target: Buff, type: dataspace")
    with pytest.raises(
        TimeloopSpecError, match=r"constraints\.targets\[0\]\.target: unknown storage level 'Buff'"
    ):
        load_timeloop_spec(write(tmp_path, text + wrong))


LEVELS_WITH_DRAM = """
  - !Component {name: DRAM, class: DRAM, attributes: {width: 8, datawidth: 8}}
  - !Component {name: Buf, class: SRAM, attributes: {depth: 64, width: 8, datawidth: 8}}
  - !Component {name: MAC, class: intmac, attributes: {width: 8}}
"""


def test_hyphenated_attribute_names_are_read(tmp_path: Path) -> None:
    text = arch(
        """
  - !Component {name: Buf, class: SRAM, attributes: {depth: 64, width: 32, word-bits: 8, block-size: 4}}
  - !Component {name: MAC, class: intmac, attributes: {width: 8}}
"""
    )
    spec = load_timeloop_spec(write(tmp_path, text + PROBLEM + ONE_LEVEL_MAPPING))
    buf = spec.architecture.storage[0]
    assert (buf.word_bits, buf.block_size, buf.size) == (8, 4, 256)


LEVELS = """
  - !Component {name: Buf, class: SRAM, attributes: {depth: 64, width: 8, datawidth: 8}}
  - !Component {name: MAC, class: intmac, attributes: {width: 8}}
"""


@pytest.mark.parametrize(
    ("body", "mapping", "place", "message"),
    [
        (
            "  - !Widget {name: X}\n" + LEVELS,
            ONE_LEVEL_MAPPING,
            (4, 5),
            "invalid YAML: could not determine a constructor for the tag '!Widget'",
        ),
        (
            "  - !Component {name: Buf, class: flipflop}\n" + LEVELS,
            ONE_LEVEL_MAPPING,
            (4, 35),
            "architecture.nodes[0].class: unknown component class 'flipflop'",
        ),
        (
            "  - !Parallel\n    nodes:\n    - !Container {name: C, spatial: {meshX: 2}}\n" + LEVELS,
            ONE_LEVEL_MAPPING,
            (6, 7),
            "architecture.nodes[0].nodes[0]: a container or a spatial fan-out inside a !Parallel",
        ),
        (
            "  - name: Buf\n" + LEVELS,
            ONE_LEVEL_MAPPING,
            (4, 5),
            "architecture.nodes[0]: expected a node tagged !Container, !Component",
        ),
        (
            LEVELS + "  - !Component {name: Late, class: SRAM, attributes: {depth: 1, width: 8}}\n",
            ONE_LEVEL_MAPPING,
            (7, 5),
            "architecture.nodes[2]: 'Late' comes after the compute component MAC",
        ),
        (
            "  - !Container {name: Box}\n" + LEVELS,
            ONE_LEVEL_MAPPING + "- {target: Box, type: temporal, factors: [M=1]}\n",
            (21, 12),
            "mapping[1].target: 'Box' is a container",
        ),
        (
            LEVELS,
            ONE_LEVEL_MAPPING.replace("M=8", "M<=8"),
            (19, 42),
            "mapping[0].factors: 'M<=8' bounds a factor for timeloop-mapper",
        ),
        (
            LEVELS,
            ONE_LEVEL_MAPPING.replace("K=6", "K=3"),
            (19, 1),
            "mapping: the factors of 'K' multiply to 3 (3 at Buf), not its size 6",
        ),
    ],
)
def test_mistakes_are_one_line_errors_at_their_place(
    tmp_path: Path, body: str, mapping: str, place: tuple[int, int], message: str
) -> None:
    path = write(tmp_path, arch(body) + PROBLEM + mapping)
    with pytest.raises(TimeloopSpecError) as error:
        load_timeloop_spec(path)
    text = str(error.value)
    found = re.fullmatch(r"(.*):(\d+):(\d+): error: (.*)", text)
    assert found is not None, text
    assert (found[1], (int(found[2]), int(found[3]))) == (str(path), place), text
    assert found[4].startswith(message), text
