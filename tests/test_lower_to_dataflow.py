"""lower-to-dataflow: loop nests of a cascade -> a dataflow program (docs/dataflow.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.dataflow import (
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    TransferOp,
    programs_in,
)
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.frontends.loading import parse_mlir
from einsum_opt.hardware.architecture import load_architecture
from einsum_opt.lowering.einsum_to_loopnest import lower_to_loopnest
from einsum_opt.lowering.loopnest_to_dataflow import lower_to_dataflow
from einsum_opt.transforms.map_fusemax import map_fusemax
from einsum_opt.transforms.reorder_loops import reorder_loops
from einsum_opt.transforms.set_ranks import set_rank_sizes

ROOT = Path(__file__).resolve().parent.parent
ONE_PASS = ROOT / "examples" / "attention" / "1pass.mlir"
HAS_MODEL = importlib.util.find_spec("einsum_opt.costmodel.model") is not None

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


def lowered(
    sizes: dict[str, int] | None = None,
    arch: str = "fusemax",
    mapped: bool = True,
    order: list[str] | None = None,
    buffer: int = 16 * 2**20,
) -> ModuleOp:
    """The 1-pass attention, mapped the FuseMax way (or not), lowered to dataflow."""
    module = parse_mlir(ONE_PASS.read_text(), str(ONE_PASS))
    if sizes:
        set_rank_sizes(module, sizes)
    for cascade in cascades_in(module):
        if mapped:
            map_fusemax(cascade, buffer=buffer)
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


def stages(program: ProgramOp) -> dict[str, ComputeOp]:
    return {op.einsum_name: op for op in program.walk() if isinstance(op, ComputeOp)}


def dram(program: ProgramOp) -> dict[tuple[str, str], int]:
    return {
        (op.einsum_name, op.tensor_name): op.bytes_value
        for op in program.walk()
        if isinstance(op, TransferOp) and "DRAM" in (op.source_level, op.dest_level)
    }


BIG = {"M": 65536, "P": 65536}


def test_structure_of_one_pass_attention() -> None:
    program = program_of(lowered(BIG))
    assert program.program_name == "attention" and program.arch_name == "fusemax"
    (repeat,) = [op for op in program.body.block.ops if isinstance(op, RepeatOp)]
    assert (repeat.loop_names, repeat.count_value) == ("p2", 2)
    (pipeline,) = [op for op in repeat.body.block.ops if isinstance(op, PipelineOp)]
    assert (pipeline.loop_names, pipeline.count_value) == ("m1, p1", 256 * 128)
    found = stages(program)
    assert set(found) == set(REFERENCE_OPS)  # BK, BV are views: no stage
    assert found["AV"].runs_value == 128
    assert all(s.runs_value == 32768 for n, s in found.items() if n != "AV")
    assert found["QK"].extent_list() == [256, 256] and found["RM"].extent_list() == [256]
    assert found["RM"].carried_names() == ["RM"] and found["RM"].after_names() == ["LM"]
    assert found["PRM"].after_names() == ["RM"] and found["PRM"].carried_names() == ["RM"]
    assert found["SPD"].carried_names() == ["RD"]
    assert found["SPNV"].carried_names() == ["RNV"]
    assert found["AV"].after_names() == ["RNV", "RD"]


def test_op_counts_match_reference_costs() -> None:
    arch = load_architecture("fusemax")
    for name, stage in stages(program_of(lowered(BIG))).items():
        assert stage.op_counts() == REFERENCE_OPS[name], name
        assert arch.cycles(stage.unit_name, stage.op_counts()) == REFERENCE_CYCLES[name], name
        assert stage.times_value == REFERENCE_TIMES[name], name


def test_views_and_traffic() -> None:
    traffic = dram(program_of(lowered(BIG)))
    word = 2
    head = 64 * 65536 * word  # one of Q, K, V, AV
    # Q stays resident across M1; K and V (read through the views BK, BV) once per P2 block.
    assert traffic == {
        ("QK", "Q"): head,
        ("QK", "K"): 2 * head,
        ("SLNV", "V"): 2 * head,
        ("AV", "AV"): head,
    }


def test_buffer_is_the_p1_rule() -> None:
    program = program_of(lowered(BIG))
    (buffer,) = [op for op in program.body.block.ops if isinstance(op, BufferOp)]
    queries = 128 * 256
    assert buffer.holds_map() == {
        "Q": 64 * queries * 2,
        "K": 64 * 256 * 2,
        "RM": queries * 2,
        "RD": queries * 2,
        "V": 64 * 256 * 2,
        "RNV": 64 * queries * 2,
    }
    assert buffer.bytes_value <= 16 * 2**20


@pytest.mark.parametrize(
    "order",
    [["P2", "P1", "M1", "E", "P0", "M0"], ["M1", "P2", "P1", "E", "P0", "M0"]],
)
def test_loop_order_changes_dram_traffic(order: list[str]) -> None:
    base = dram(program_of(lowered(BIG)))
    moved = dram(program_of(lowered(BIG, order=order)))
    assert moved[("QK", "K")] != base[("QK", "K")]
    assert moved[("SLNV", "V")] == base[("SLNV", "V")]


def test_default_mapping_is_an_error() -> None:
    with pytest.raises(PassFailedException, match="unit 'default'.*map-fusemax or apply-mapping"):
        lowered(mapped=False)


def test_unknown_architecture_is_an_error() -> None:
    with pytest.raises(PassFailedException, match="unknown architecture"):
        lowered(arch="nope")


def small_glb(tmp_path: Path) -> str:
    data = yaml.safe_load((ROOT / "hardware" / "architectures" / "fusemax.yaml").read_text())
    data["storage"]["GLB"]["capacity_bytes"] = 64 * 1024
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_tiny_buffer_overflows_and_refetches(tmp_path: Path) -> None:
    arch = small_glb(tmp_path)
    program = program_of(lowered(BIG, arch=arch))
    assert program.arch_name == arch
    (buffer,) = [op for op in program.body.block.ops if isinstance(op, BufferOp)]
    assert buffer.bytes_value > 64 * 1024
    # Nothing fits beside the resident state any more: Q is re-read for every key block.
    assert dram(program)[("QK", "Q")] == 256 * 64 * 65536 * 2


@pytest.mark.skipif(not HAS_MODEL, reason="the cost model is not there yet")
def test_tiny_buffer_reports_overflow(tmp_path: Path) -> None:
    from einsum_opt.costmodel.model import evaluate

    arch = small_glb(tmp_path)
    report = evaluate(program_of(lowered(BIG, arch=arch)), arch)
    assert report.buffer_overflow


@pytest.mark.skipif(not HAS_MODEL, reason="the cost model is not there yet")
def test_bert_64k_utilisation_per_head() -> None:
    """BERT at 64K tokens, one head (the example has no batch or head ranks: the batch x heads
    repetitions scale busy time and latency alike, so utilisation is per head)."""
    from einsum_opt.costmodel.model import evaluate

    report = evaluate(program_of(lowered(BIG)), "fusemax")
    assert report.utilization["pe2d"] >= 0.97
    assert report.utilization["pe1d"] == pytest.approx(1.0, abs=0.01)
