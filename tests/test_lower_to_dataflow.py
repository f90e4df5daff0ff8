"""lower-to-dataflow: loop nests of a cascade -> a dataflow program: compute stages, and each
nest placed on its unit's chain of storage levels and analysed, Timeloop's way, into accesses
per tensor and level and what each level holds at its peak. Counts are recomputed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dataflow_queries import accesses, buffers, stages
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.costmodel.model import evaluate
from einsum_opt.dialects.dataflow import (
    AccessOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    programs_in,
)
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.frontends.loading import parse_mlir
from einsum_opt.hardware import load_architecture
from einsum_opt.lowering.einsum_to_loopnest import lower_to_loopnest
from einsum_opt.lowering.loopnest_to_dataflow import lower_to_dataflow
from einsum_opt.transforms.map_fusemax import map_fusemax
from einsum_opt.transforms.reorder_loops import reorder_loops
from einsum_opt.transforms.set_ranks import set_rank_sizes

ROOT = Path(__file__).resolve().parent.parent
ONE_PASS = ROOT / "examples" / "attention" / "1pass.mlir"
FUSEMAX_YAML = ROOT / "hardware" / "architectures" / "fusemax.yaml"
WORD = 2

# The reference's per-element costs (fusemax.md §4) as op counts, and their cycles on a PE.
REFERENCE_OPS = {
    "QK": {"mac": 1},
    "LM": {"max": 1},
    "RM": {"max": 1},
    "SLN": {"exp": 1, "add": 1},
    "PRM": {"exp": 1, "add": 1},
    "SPD": {"mul": 1},
    "SLD": {"add": 1},
    "RD": {"add": 1},
    "SLNV": {"mac": 1},
    "SPNV": {"mul": 1},
    "RNV": {"add": 1},
    "AV": {"div": 1},
}
REFERENCE_CYCLES = {name: 7 if name in ("SLN", "PRM") else 1 for name in REFERENCE_OPS}
# Per output element, the E / F loop multiplies QK, SLNV, SPNV, RNV and AV.
REFERENCE_TIMES = {
    name: 64 if name in ("QK", "SLNV", "SPNV", "RNV", "AV") else 1 for name in REFERENCE_OPS
}

# One head of BERT at 64K tokens: M = P = 65536, E = F = 64, tiles of 256 keys and queries;
# map-fusemax picks P1 = 128 query tiles per block (16 MB buffer), so P2 = 2 blocks.
M = P = 65536
E = F = 64
M0 = P0 = 256
M1 = M // M0
P1 = 128
P2 = P // P0 // P1
BIG = {"M": M, "P": P}


def lowered(
    sizes: dict[str, int] | None = None,
    arch: str = "fusemax",
    mapped: bool = True,
    order: list[str] | None = None,
) -> ModuleOp:
    """The 1-pass attention, mapped the FuseMax way (or not), lowered to dataflow."""
    module = parse_mlir(ONE_PASS.read_text(), str(ONE_PASS))
    if sizes:
        set_rank_sizes(module, sizes)
    for cascade in cascades_in(module):
        if mapped:
            map_fusemax(cascade)
        if order is not None:
            qk = next(op for op in cascade.einsums() if op.tensor_name == "QK")
            reorder_loops(qk, order, cascade.rank_sizes())
        lower_to_loopnest(cascade)
    lower_to_dataflow(module, arch)
    module.verify()
    return module


def program_of(module: ModuleOp) -> ProgramOp:
    (program,) = programs_in(module)
    return program


def by_tensor(program: ProgramOp, level: str) -> dict[str, tuple[int, int, int]]:
    """Tensor -> (reads, fills, updates) at `level`, over every Einsum."""
    out: dict[str, tuple[int, int, int]] = {}
    for (_, tensor), counts in accesses(program, level).items():
        old = out.get(tensor, (0, 0, 0))
        out[tensor] = (old[0] + counts[0], old[1] + counts[1], old[2] + counts[2])
    return out


@pytest.fixture(scope="module")
def bert() -> ProgramOp:
    """One head of BERT at 64K tokens, FuseMax's mapping, on FuseMax."""
    return program_of(lowered(BIG))


def test_structure_of_one_pass_attention(bert: ProgramOp) -> None:
    assert bert.program_name == "attention" and bert.arch_name == "fusemax"
    (repeat,) = [op for op in bert.body.block.ops if isinstance(op, RepeatOp)]
    assert (repeat.loop_names, repeat.count_value) == ("p2", P2)
    (pipeline,) = [op for op in repeat.body.block.ops if isinstance(op, PipelineOp)]
    assert (pipeline.loop_names, pipeline.count_value) == ("m1, p1", M1 * P1)
    found = stages(bert)
    assert set(found) == set(REFERENCE_OPS)  # BK, BV are views: no stage
    assert found["AV"].runs_value == P1
    assert all(s.runs_value == M1 * P1 for n, s in found.items() if n != "AV")
    assert found["QK"].extent_list() == [256, 256] and found["RM"].extent_list() == [256]
    assert found["RM"].carried_names() == ["RM"] and found["RM"].after_names() == ["LM"]
    assert found["SLN"].after_names() == ["QK", "RM"]
    assert found["PRM"].after_names() == ["RM"] and found["PRM"].carried_names() == ["RM"]
    assert found["SPD"].carried_names() == ["RD"]
    assert found["SPNV"].carried_names() == ["RNV"]
    assert found["RD"].after_names() == ["SPD", "SLD"]
    assert found["AV"].after_names() == ["RNV", "RD"]


def test_op_counts_match_reference_costs(bert: ProgramOp) -> None:
    arch = load_architecture("fusemax")
    for name, stage in stages(bert).items():
        assert stage.op_counts() == REFERENCE_OPS[name], name
        assert arch.cycles(stage.unit_name, stage.op_counts()) == REFERENCE_CYCLES[name], name
        assert stage.times_value == REFERENCE_TIMES[name], name


def test_dram_accesses_by_hand(bert: ProgramOp) -> None:
    """Q stays in the buffer across the key tiles: read once. K and V (read through the views
    BK and BV, so charged to their readers as K and V) once per P2 block of queries. AV is
    written once, straight from the PEs."""
    assert accesses(bert, "DRAM") == {
        ("QK", "Q"): (P * E, 0, 0),
        ("QK", "K"): (P2 * M * E, 0, 0),
        ("SLNV", "V"): (P2 * M * F, 0, 0),
        ("AV", "AV"): (0, 0, P * F),
    }


def test_glb_accesses_by_hand(bert: ProgramOp) -> None:
    """The global buffer: each input filled from DRAM with what DRAM sends, and read into the
    2D array once per key tile (Q) or once per query tile (K, V). The running values are
    updated once per step of M1 and read by their readers: RM by itself at the previous step
    (not before the first), SLN and PRM; RD by SPD and, its final value, once by AV; RNV by
    SPNV and once by AV. AV bypasses the buffer."""
    queries = P  # one running value per query (and per f for RNV)
    assert by_tensor(bert, "GLB") == {
        "Q": (M1 * P * E, P * E, 0),
        "K": ((P // P0) * M * E, P2 * M * E, 0),
        "V": ((P // P0) * M * F, P2 * M * F, 0),
        "RM": ((M1 - 1) * queries + 2 * M1 * queries, 0, M1 * queries),
        "RD": (M1 * queries + queries, 0, M1 * queries),
        "RNV": ((M1 + 1) * queries * F, 0, M1 * queries * F),
    }


def test_the_staging_level_holds_only_what_is_homed_there(bert: ProgramOp) -> None:
    """FuseMax's RF keeps only the values passed from the 2D to the 1D array (homed there by
    map-fusemax: LM, SLD, SLNV), written by their producer and read by their consumer once
    per element."""
    scores = M1 * P  # one value per query and key tile
    assert accesses(bert, "RF") == {
        ("LM", "LM"): (0, 0, scores),
        ("RM", "LM"): (scores, 0, 0),
        ("SLD", "SLD"): (0, 0, scores),
        ("RD", "SLD"): (scores, 0, 0),
        ("SLNV", "SLNV"): (0, 0, scores * F),
        ("RNV", "SLNV"): (scores * F, 0, 0),
    }
    assert buffers(bert)["RF"] == {"LM": P0 * WORD, "SLD": P0 * WORD, "SLNV": P0 * WORD}


def test_the_buffer_holds_one_query_block(bert: ProgramOp) -> None:
    """The global buffer holds, for a block of P1 x P0 queries, Q's rows and the running
    values RM, RD and RNV, plus one key tile of K and V: (E + 2 + F) * 2 bytes per query.
    P1 = 128 is the largest block that fits 16 MB (256 would need 17 MB)."""
    queries = P1 * P0
    assert buffers(bert)["GLB"] == {
        "Q": E * queries * WORD,
        "K": E * M0 * WORD,
        "RM": queries * WORD,
        "RD": queries * WORD,
        "RNV": F * queries * WORD,
        "V": F * M0 * WORD,
    }
    per_query = (E + 2 + F) * WORD
    assert per_query * queries <= 16 * 2**20 < per_query * 2 * queries


def test_registers_are_per_instance(bert: ProgramOp) -> None:
    """A PE's registers hold one value of each tensor it touches; the access counts are
    summed over the 65536 (2D) or 256 (1D) instances."""
    (qk_q,) = [
        op
        for op in bert.walk()
        if isinstance(op, AccessOp)
        and op.level_name == "pe2d.PE"
        and op.einsum_name == "QK"
        and op.tensor_name == "Q"
    ]
    assert qk_q.instances_value == 65536 and qk_q.capacity_value == 1
    # Every MAC of QK reads one Q value its PE was sent: M * P * E of them.
    assert qk_q.counts()[:2] == (M * P * E, M * P * E)
    assert all(v == WORD for level in ("pe2d.PE", "pe1d.PE") for v in buffers(bert)[level].values())


def test_loop_order_changes_dram_traffic(bert: ProgramOp) -> None:
    """M1 outermost for QK: each key tile is fetched once, but Q is fetched again for every
    key tile."""
    moved = program_of(lowered(BIG, order=["M1", "P2", "P1", "E", "P0", "M0"]))
    assert accesses(moved, "DRAM")[("QK", "Q")] == (M1 * P * E, 0, 0)
    assert accesses(moved, "DRAM")[("QK", "K")] == (M * E, 0, 0)
    assert accesses(moved, "DRAM")[("SLNV", "V")] == accesses(bert, "DRAM")[("SLNV", "V")]


def test_keep_bypasses_a_level() -> None:
    """`keep = {Q = [DRAM, PE]}` in QK's mapping streams Q from DRAM into the PEs: no buffer
    access and no buffer space for Q, and Q is fetched once per key tile instead of once."""
    text = str(
        api.apply(api.parse(ONE_PASS.read_text()), 'set-ranks{sizes="M=65536,P=65536"},map-fusemax')
    )
    old = "storage = {Q = DRAM, BK = DRAM, QK = PE}, at = {P2 = DRAM, P1 = GLB, P0 = RF}>"
    assert text.count(old) == 1
    kept = api.parse(text.replace(old, old[:-1] + ", keep = {Q = [DRAM, PE]}>"))
    program = program_of(api.apply(kept, "lower-to-loopnest,lower-to-dataflow"))
    assert accesses(program, "DRAM")[("QK", "Q")] == (M1 * P * E, 0, 0)
    assert "Q" not in by_tensor(program, "GLB")
    assert "Q" not in buffers(program)["GLB"]


GEMM = """builtin.module {{
  einsum.cascade @gemm(%A: !einsum.tensor<[K, M], f32>, %B: !einsum.tensor<[K, N], f32>) -> !einsum.tensor<[M, N], f32> ranks(K = 512, M = 512, N = 512) {{
    %Z = einsum.einsum Z[m, n] = %A[k, m] * %B[k, n] {{mapping = #einsum.mapping<unit = pe2d, loops = [M1, N1, K, M0, N0], partition = {{M = [256], N = [256]}}, space = {{M0 = 0, N0 = 1}}, storage = {{A = {home}, B = DRAM, Z = DRAM}}{at}>}} : !einsum.tensor<[M, N], f32>
    einsum.return %Z : !einsum.tensor<[M, N], f32>
  }}
}}"""
SIDE = 512  # K = M = N
TILE = 256


def gemm(at: str = "", home: str = "DRAM", arch: str = "fusemax") -> ProgramOp:
    module = api.parse(GEMM.format(at=at, home=home))
    return program_of(api.apply(module, f'lower-to-loopnest,lower-to-dataflow{{arch="{arch}"}}'))


@pytest.mark.parametrize(
    ("at", "b_fetches", "b_tile"),
    [
        (", at = {M1 = DRAM, K = GLB, M0 = RF}", SIDE // TILE, SIDE * TILE),  # N1 at DRAM
        (", at = {M1 = DRAM, N1 = GLB, M0 = RF}", 1, SIDE * SIDE),  # N1 at the buffer
    ],
)
def test_at_places_loops_and_decides_tiles(at: str, b_fetches: int, b_tile: int) -> None:
    """`at` puts each block of loops at a level. With N1 at DRAM the buffer holds a K x N0
    tile of B, fetched again for every M1; with N1 at the buffer it holds all of B, fetched
    once. A's K x M0 tile is fetched once either way; Z is written once."""
    program = gemm(at)
    size = SIDE * SIDE
    assert by_tensor(program, "DRAM") == {
        "A": (size, 0, 0),
        "B": (b_fetches * size, 0, 0),
        "Z": (0, 0, size),
    }
    glb = {
        op.tensor_name: op.capacity_value
        for op in program.walk()
        if isinstance(op, AccessOp) and op.level_name == "GLB"
    }
    assert glb["A"] == SIDE * TILE and glb["B"] == b_tile


def test_a_contraction_holds_its_operands_and_its_output_apart() -> None:
    """Z = A x B keeps its tile of Z while it reads its tiles of A and B: the buffer holds all
    three (A: K x M0, B: all of B, Z: M0 x N)."""
    program = gemm(", at = {M1 = DRAM, N1 = GLB, M0 = RF}")
    assert buffers(program)["GLB"] == {
        "A": SIDE * TILE * WORD,
        "B": SIDE * SIDE * WORD,
        "Z": TILE * SIDE * WORD,
    }


def test_any_hierarchy_a_level_between_dram_and_the_buffer(tmp_path: Path) -> None:
    """The hierarchy is the architecture's: an L2 between DRAM and the GLB, with its own
    bandwidth, is a level tensors can be homed in; it gets accesses, energy and cycles of its
    own (here A, B and Z pass through it once; at 64 words per cycle its 2 x 512^2 reads take
    8192 cycles, more than the 4096 of compute)."""
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    storage = data["storage"]
    l2 = {
        "capacity_bytes": 64 * 2**20,
        "access_bits": 512,
        "read_pj": 100.0,
        "write_pj": 120.0,
        "read_bandwidth": 64,
    }
    data["storage"] = {
        "DRAM": storage["DRAM"],
        "L2": l2,
        "GLB": storage["GLB"],
        "RF": storage["RF"],
    }
    data["name"] = "deep"
    path = tmp_path / "deep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    program = gemm(", at = {M1 = DRAM, N1 = GLB, M0 = RF}", home="L2", arch=str(path))
    size = SIDE * SIDE
    assert by_tensor(program, "L2") == {
        "A": (size, size, 0),
        "B": (size, size, 0),
        "Z": (0, 0, size),
    }
    report = evaluate(program, str(path))
    assert list(report.energy_breakdown_pj) == ["compute", "registers", "DRAM", "L2", "GLB", "RF"]
    # Per access of 512 bits (32 words): 2 x 8192 reads; 2 x 8192 fills and 8192 updates.
    assert report.energy_breakdown_pj["L2"] == pytest.approx(2 * 8192 * 100.0 + 3 * 8192 * 120.0)
    assert report.compute_cycles == 2 * 2 * SIDE
    assert report.cycles == 2 * size // 64
    assert report.bound == "L2"


def test_default_mapping_is_an_error() -> None:
    with pytest.raises(PassFailedException, match="unit 'default'.*map-fusemax or apply-mapping"):
        lowered(mapped=False)


def test_unknown_architecture_is_an_error() -> None:
    with pytest.raises(PassFailedException, match="unknown architecture"):
        lowered(arch="nope")


def small_glb(tmp_path: Path) -> str:
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    data["storage"]["GLB"]["capacity_bytes"] = 64 * 1024
    data["name"] = "tiny"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_mapping_for_a_larger_buffer_overflows_a_smaller_one(tmp_path: Path) -> None:
    """Mapped for FuseMax's 16 MB, lowered for a 64 KB buffer: the placement the mapping gives
    is kept (same traffic), and the overflow is reported with the level and what it holds."""
    arch = small_glb(tmp_path)
    program = program_of(lowered(BIG, arch=arch))
    assert program.arch_name == arch
    assert accesses(program, "DRAM") == accesses(program_of(lowered(BIG)), "DRAM")
    report = evaluate(program, arch)
    assert report.buffer_overflow
    (overflow,) = report.overflows
    assert overflow.level == "GLB" and overflow.capacity_bytes == 64 * 1024
    assert set(overflow.tensors) == {"Q", "K", "RM", "RD", "RNV", "V"}
    assert overflow.peak_bytes == sum(buffers(program)["GLB"].values())


def test_mapping_for_a_buffer_too_small_for_one_tile_is_an_error(tmp_path: Path) -> None:
    module = parse_mlir(ONE_PASS.read_text(), str(ONE_PASS))
    set_rank_sizes(module, BIG)
    (cascade,) = cascades_in(module)
    with pytest.raises(PassFailedException, match="the state of 256 queries does not fit"):
        map_fusemax(cascade, arch=small_glb(tmp_path))


def test_bert_64k_utilisation_per_head(bert: ProgramOp) -> None:
    """BERT at 64K tokens, one head (the example has no batch or head ranks: the batch x heads
    repetitions scale busy time and latency alike, so utilisation is per head)."""
    report = evaluate(bert, "fusemax")
    assert report.utilization["pe2d"] >= 0.97
    assert report.utilization["pe1d"] == pytest.approx(1.0, abs=0.01)
    assert not report.buffer_overflow
