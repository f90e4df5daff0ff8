"""The cost model: hand-written dataflow programs against hand computations (docs/dataflow.md)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.costmodel.model import (
    CostModelError,
    _max_mean_cycle,
    evaluate,
    evaluate_module,
)
from einsum_opt.costmodel.report import ENERGY_COMPONENTS, CostReport
from einsum_opt.dialects.dataflow import ProgramOp, programs_in
from einsum_opt.frontends.loading import parse_mlir
from einsum_opt.hardware.architecture import Architecture, load_architecture

FUSEMAX = load_architecture("fusemax")
BYTES_PER_CYCLE = 400 * 2**30 / 940e6


def program(source: str) -> ProgramOp:
    module = parse_mlir(source, "<test>")
    module.verify()
    (found,) = programs_in(module)
    return found


def cost(source: str, arch: Architecture = FUSEMAX) -> CostReport:
    return evaluate(program(source), arch)


def test_a_single_stage_runs_runs_times_times_cycles_per_invocation() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @QK on pe2d runs 10 times 64 ops {mac = 1} extent [256, 256]
        }"""
    )
    assert report.cycles == 10 * 64 * 1
    assert report.compute_cycles == 640
    assert report.utilization["pe2d"] == pytest.approx(1.0)
    assert report.utilization["pe1d"] == 0.0
    assert report.per_einsum["QK"].cycles == 640
    assert report.per_einsum["QK"]["unit"] == "pe2d"
    assert report.latency_s == pytest.approx(640 / 940e6)
    # exp is 6 MACs and the subtraction an add: 7 cycles per invocation.
    exp = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @SLN on pe2d runs 3 times 2 ops {exp = 1, add = 1} extent [256, 256]
        }"""
    )
    assert exp.cycles == 3 * 2 * 7


def test_a_sequence_adds_latencies() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @A on pe2d runs 10 times 5 ops {mac = 1} extent [256, 256]
          dataflow.compute @B on pe1d runs 10 times 3 ops {add = 1} extent [256] after [@A]
        }"""
    )
    assert report.cycles == 50 + 30
    assert report.utilization["pe2d"] == pytest.approx(50 / 80)
    assert report.utilization["pe1d"] == pytest.approx(30 / 80)


PIPELINE = """dataflow.program @p arch "fusemax" {{
  dataflow.repeat "b" count {repeat} {{
    dataflow.pipeline "m1" count {count} {{
      dataflow.compute @A on pe2d runs {count} times 10 ops {{mac = 1}} extent [256, 256]
      dataflow.compute @B on pe1d runs {count} times 8 ops {{add = 1}} extent [256] after [@A]
    }}
  }}
}}"""


def test_two_units_overlap_in_a_pipeline() -> None:
    report = cost(PIPELINE.format(repeat=1, count=100))
    # II = max(1000, 800) / 100 = 10; CP = 10 + 8: busy of the slower unit plus the fill.
    assert report.cycles == 99 * 10 + 18
    assert report.cycles == pytest.approx(max(1000, 800) + 8)
    assert report.utilization["pe2d"] == pytest.approx(1000 / 1008)
    assert report.utilization["pe1d"] == pytest.approx(800 / 1008)


def test_a_repeat_multiplies_its_body() -> None:
    once = cost(PIPELINE.format(repeat=1, count=100))
    seven = cost(PIPELINE.format(repeat=7, count=100))
    assert seven.cycles == 7 * once.cycles
    assert seven.per_einsum["A"].cycles == 7 * 1000
    assert seven.utilization == pytest.approx(dict(once.utilization))
    assert seven.energy_pj == pytest.approx(7 * once.energy_pj)


def test_a_recurrence_bound_dominates() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.pipeline "m1" count 100 {
            dataflow.compute @A on pe2d runs 100 times 2 ops {mac = 1} extent [256, 256]
            dataflow.compute @B on pe1d runs 100 times 3 ops {add = 1} extent [256] after [@A] carried [@C]
            dataflow.compute @C on pe2d runs 100 times 4 ops {max = 1} extent [256, 256] after [@B]
          }
        }"""
    )
    # Resources: pe2d 6, pe1d 3 per iteration; the cycle B -> C -> (next) B takes 7.
    assert report.cycles == 99 * 7 + (2 + 3 + 4)
    assert report.utilization["pe2d"] == pytest.approx(600 / 702)


def test_a_self_carried_stage_bounds_the_interval_by_its_latency() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.pipeline "m1" count 50 {
            dataflow.compute @A on pe2d runs 50 times 1 ops {mac = 1} extent [256, 256]
            dataflow.compute @R on pe1d runs 50 times 9 ops {add = 1} extent [256] after [@A] carried [@R]
            dataflow.compute @S on pe1d runs 50 times 1 ops {add = 1} extent [256] after [@R]
          }
        }"""
    )
    # II = max(pe1d 10, R = 9) = 10: the resource bound still wins here.
    assert report.cycles == 49 * 10 + 11
    alone = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.pipeline "m1" count 50 {
            dataflow.compute @R on pe1d runs 50 times 9 ops {add = 1} extent [256] carried [@R]
            dataflow.compute @A on pe2d runs 50 times 20 ops {mac = 1} extent [256, 256] carried [@A]
          }
        }"""
    )
    assert alone.cycles == 49 * 20 + 20


def test_the_recurrence_bound_is_a_mean_per_carried_edge() -> None:
    # A cycle through two carried edges (each stage waits for the other's previous
    # iteration) spans two iterations: (4 + 6) / 2.
    assert _max_mean_cycle(["A", "B"], [("A", "B", 4), ("B", "A", 6)]) == Fraction(5)
    assert _max_mean_cycle(["A", "B"], [("A", "B", 4)]) == 0
    assert _max_mean_cycle(["A"], [("A", "A", 3)]) == 3


def test_a_stage_that_runs_less_often_loads_its_unit_less() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.pipeline "m1, p1" count 256 {
            dataflow.compute @A on pe1d runs 256 times 4 ops {add = 1} extent [256]
            dataflow.compute @AV on pe1d runs 2 times 64 ops {div = 1} extent [256] after [@A]
          }
        }"""
    )
    # II = (256 * 4 + 2 * 64) / 256 = 4.5; CP = 4 + 64.
    assert report.compute_cycles == pytest.approx(255 * 4.5 + 68)
    assert report.cycles == math.ceil(255 * 4.5 + 68)


def test_a_dram_bound_program() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @A on pe1d runs 1 times 1000 ops {add = 1} extent [256]
          dataflow.transfer @A "X" from DRAM to GLB bytes 1000000000
          dataflow.transfer @A "Y" from GLB to PE bytes 5000
        }"""
    )
    memory = 1e9 / BYTES_PER_CYCLE
    assert report.dram_bytes == 1_000_000_000
    assert report.memory_cycles == pytest.approx(memory)
    assert report.cycles == math.ceil(memory)
    assert report.latency_s == pytest.approx(1e9 / (400 * 2**30))
    assert report.bound == "memory"
    assert report.utilization["pe1d"] == pytest.approx(1000 / memory)
    assert report.utilization["pe1d"] < 1
    assert report.per_einsum["A"].dram_bytes == 1_000_000_000


def test_halving_an_array_side_doubles_times() -> None:
    full = """dataflow.program @p arch "fusemax" {
      dataflow.compute @QK on pe2d runs 32 times 64 ops {mac = 1} extent [256, 256]
    }"""
    half = """dataflow.program @p arch "fusemax" {
      dataflow.compute @QK on pe2d runs 32 times 128 ops {mac = 1} extent [128, 256]
    }"""
    smaller = FUSEMAX.with_changes({"units.pe2d.shape": [128, 256]})
    on_full = cost(full)
    on_half = cost(half, smaller)
    assert on_half.cycles == 2 * on_full.cycles
    assert on_half.utilization["pe2d"] == pytest.approx(1.0)
    # The same operations: the same compute energy.
    assert on_half.energy_breakdown_pj["compute"] == pytest.approx(
        on_full.energy_breakdown_pj["compute"]
    )
    with pytest.raises(CostModelError, match=r"extent \[256, 256\] exceeds unit pe2d's shape"):
        cost(full, smaller)
    # A faster clock shortens seconds, not cycles.
    faster = cost(full, FUSEMAX.with_changes(clock_mhz=1880))
    assert faster.cycles == on_full.cycles
    assert faster.latency_s == pytest.approx(on_full.latency_s / 2)


def test_energy_of_a_known_op_mix_is_the_hand_sum() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @S on pe2d runs 2 times 3 ops {mac = 1, exp = 1, add = 1} extent [4, 8]
          dataflow.compute @T on pe1d runs 1 times 1 ops {max = 2, div = 1} extent [16]
          dataflow.transfer @S "X" from DRAM to GLB bytes 1024
          dataflow.transfer @S "Y" from GLB to RF bytes 512
          dataflow.transfer @T "Z" from RF to DRAM bytes 64
        }"""
    )
    mac, add, max_, div = 17.16, 8.34, 0.028, 36.25
    reg_read, reg_write = 0.653, 0.570
    s_ops = 2 * 3 * 32
    t_ops = 16
    compute = s_ops * (mac + 6 * mac + add) + t_ops * (2 * max_ + div)
    registers = s_ops * (
        (2 * reg_read + reg_write) + (reg_read + reg_write) + (2 * reg_read + reg_write)
    ) + t_ops * (2 * (2 * reg_read + reg_write) + (2 * reg_read + reg_write))
    dram = 1024 * 249.6 / 8 + 64 * 249.6 / 8
    glb = 512 * 451.30 / 256 + 256 * 484.97 / 256
    rf = 256 * 0.570 + 32 * 0.653
    expected = {"compute": compute, "registers": registers, "DRAM": dram, "GLB": glb, "RF": rf}
    assert report.energy_breakdown_pj == pytest.approx(expected)
    assert report.energy_pj == pytest.approx(sum(expected.values()))
    assert report.dram_bytes == 1024 + 64
    t = report.per_einsum["T"]
    assert t.energy_pj == pytest.approx(
        t_ops * (2 * max_ + div + 3 * (2 * reg_read + reg_write)) + 64 * 249.6 / 8 + 32 * 0.653
    )


def test_a_buffer_overflow_is_reported_with_its_spill() -> None:
    capacity = 16 * 2**20
    report = cost(
        f"""dataflow.program @p arch "fusemax" {{
          dataflow.repeat "b" count 3 {{
            dataflow.compute @A on pe1d runs 1 times 1 ops {{add = 1}} extent [256]
          }}
          dataflow.buffer GLB bytes {capacity + 1000} holds ["Q" = {capacity}, "K" = 1000]
          dataflow.buffer RF bytes 64 holds ["X" = 64]
        }}"""
    )
    assert report.buffer_overflow
    assert report.buffer_peak_bytes == {"GLB": capacity + 1000, "RF": 64}
    assert report.buffer_capacity_bytes["GLB"] == capacity
    # The excess is written out and read back once per repetition.
    assert report.spill_bytes == {"GLB": 2 * 1000 * 3}
    assert report.dram_bytes == 6000
    assert report.energy_breakdown_pj["DRAM"] == pytest.approx(3000 * 2 * 249.6 / 8)
    assert report.energy_breakdown_pj["GLB"] == pytest.approx(1500 * (484.97 + 451.30) / 256)
    assert "OVERFLOW" in report.to_table()
    fits = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.compute @A on pe1d runs 1 times 1 ops {add = 1} extent [256]
          dataflow.buffer GLB bytes 1000 holds ["Q" = 1000]
        }"""
    )
    assert not fits.buffer_overflow
    assert fits.spill_bytes == {}
    assert fits.dram_bytes == 0


def test_an_rf_overflow_spills_to_the_global_buffer() -> None:
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.repeat "b" count 2 {
            dataflow.compute @A on pe1d runs 1 times 1 ops {add = 1} extent [256]
            dataflow.buffer RF bytes 16484 holds ["X" = 16484]
          }
        }"""
    )
    assert report.buffer_overflow
    assert report.spill_bytes == {"RF": 2 * 100 * 2}
    assert report.dram_bytes == 0
    assert report.energy_breakdown_pj["GLB"] == pytest.approx(100 * (484.97 + 451.30) / 256)


def test_json_has_the_report_keys() -> None:
    report = cost(PIPELINE.format(repeat=2, count=8))
    data = json.loads(report.to_json())
    for key in (
        "cycles",
        "latency_s",
        "energy_pj",
        "dram_bytes",
        "utilization",
        "energy_breakdown_pj",
        "per_einsum",
        "buffer_peak_bytes",
        "buffer_overflow",
        "spill_bytes",
        "compute_cycles",
        "memory_cycles",
    ):
        assert key in data
    assert set(data["energy_breakdown_pj"]) == set(ENERGY_COMPONENTS)
    assert set(data["per_einsum"]["A"]) == {"cycles", "unit", "energy_pj", "dram_bytes"}
    assert data["cycles"] == report.cycles
    table = report.to_table()
    assert "latency (cycles)" in table and "pe2d" in table


def _traced_events(source: str) -> int:
    """Python-level line events of evaluating `source`, in the dialect and cost model code."""
    prog = program(source)
    ours = ("costmodel/model.py", "costmodel/report.py", "dialects/dataflow.py")
    events = 0

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal events
        if not frame.f_code.co_filename.endswith(ours):
            return None
        events += 1
        return tracer

    sys.settrace(tracer)
    try:
        evaluate(prog, FUSEMAX)
    finally:
        sys.settrace(None)
    return events


def test_running_time_does_not_depend_on_counts() -> None:
    source = """dataflow.program @p arch "fusemax" {{
      dataflow.repeat "b, h" count {n} {{
        dataflow.pipeline "m1" count {n} {{
          dataflow.compute @A on pe2d runs {n} times {n} ops {{mac = 1}} extent [256, 256]
          dataflow.compute @B on pe1d runs {n} times 3 ops {{add = 1}} extent [256] after [@A] carried [@B]
        }}
      }}
      dataflow.transfer @A "X" from DRAM to GLB bytes {n}
      dataflow.buffer GLB bytes {n} holds ["X" = {n}]
    }}"""
    small = _traced_events(source.format(n=10))
    large = _traced_events(source.format(n=10**6))
    assert small == large > 0


# -- FuseMax, BERT at 64K -------------------------------------------------------------------

B, H, M, P, E, F = 64, 12, 65536, 65536, 64, 64
M0 = P0 = 256
M1 = M // M0  # 256 key tiles
P2 = 2
P1 = P // P0 // P2  # 128 query blocks per P2
REPEAT = B * H * P2
N = M1 * P1
WORD = 2

FUSEMAX_BERT = f"""dataflow.program @attention arch "fusemax" {{
  dataflow.repeat "b, h, p2" count {REPEAT} {{
    dataflow.pipeline "m1, p1" count {N} {{
      dataflow.compute @QK on pe2d runs {N} times {E} ops {{mac = 1}} extent [256, 256]
      dataflow.compute @LM on pe2d runs {N} times 1 ops {{max = 1}} extent [256, 256] after [@QK]
      dataflow.compute @RM on pe1d runs {N} times 1 ops {{max = 1}} extent [256] after [@LM] carried [@RM]
      dataflow.compute @SLN on pe2d runs {N} times 1 ops {{exp = 1, add = 1}} extent [256, 256] after [@RM]
      dataflow.compute @SLD on pe2d runs {N} times 1 ops {{add = 1}} extent [256, 256] after [@SLN]
      dataflow.compute @SLNV on pe2d runs {N} times {F} ops {{mac = 1}} extent [256, 256] after [@SLN]
      dataflow.compute @PRM on pe1d runs {N} times 1 ops {{exp = 1, add = 1}} extent [256] after [@RM]
      dataflow.compute @SPD on pe1d runs {N} times 1 ops {{mac = 1}} extent [256] after [@PRM] carried [@RD]
      dataflow.compute @RD on pe1d runs {N} times 1 ops {{add = 1}} extent [256] after [@SLD, @SPD]
      dataflow.compute @SPNV on pe1d runs {N} times {F} ops {{mac = 1}} extent [256] after [@PRM] carried [@RNV]
      dataflow.compute @RNV on pe1d runs {N} times {F} ops {{add = 1}} extent [256] after [@SLNV, @SPNV]
      dataflow.compute @AV on pe1d runs {P1} times {F} ops {{div = 1}} extent [256] after [@RNV]
    }}
  }}
  dataflow.transfer @QK "Q" from DRAM to GLB bytes {B * H * P * E * WORD}
  dataflow.transfer @QK "BK" from DRAM to GLB bytes {B * H * M * E * WORD * P2}
  dataflow.transfer @SLNV "BV" from DRAM to GLB bytes {B * H * M * F * WORD * P2}
  dataflow.transfer @AV "AV" from GLB to DRAM bytes {B * H * P * F * WORD}
  dataflow.buffer GLB bytes {P1 * P0 * (E + 2 + F) * WORD + 2 * M0 * E * WORD} holds ["Q" = {P1 * P0 * E * WORD}, "RM" = {P1 * P0 * WORD}, "RD" = {P1 * P0 * WORD}, "RNV" = {P1 * P0 * F * WORD}, "BK" = {M0 * E * WORD}, "BV" = {M0 * F * WORD}]
}}"""


def test_fusemax_bert_64k_matches_the_reference_composition() -> None:
    # Reference (fusemax.md §4), per query block over its M1 key tiles, in cycles.
    qk, lm, rm, sln, sld, slnv = M1 * E, M1, M1, M1 * 7, M1, M1 * F
    prm, spd, rd, spnv, rnv, av = M1 * 7, M1, M1, M1 * F, M1 * F, F
    per_block = max(qk + lm, rd + rnv + av) + rm + max(sln + sld, prm + spd) + max(slnv, spnv)
    compute = per_block * P1 * P2 * B * H
    dram = B * H * WORD * (P * E + 2 * M * E + 2 * M * F + P * F)
    reference = max(compute, dram / BYTES_PER_CYCLE)

    report = cost(FUSEMAX_BERT)
    assert report.cycles == pytest.approx(reference, rel=0.10)
    assert report.bound == "compute"
    assert report.dram_bytes == dram
    assert report.utilization["pe2d"] >= 0.97
    assert report.utilization["pe1d"] == pytest.approx(1.0, abs=0.01)
    assert not report.buffer_overflow
    assert report.per_einsum["QK"].cycles == B * H * P2 * N * E


def test_fusemax_bert_via_the_api_and_the_targets(tmp_path: Path) -> None:
    module = parse_mlir(FUSEMAX_BERT, "<test>")
    via_api = api.cost(module)
    assert via_api == evaluate_module(module, "fusemax")
    assert api.cost(module, "flat").arch == "flat"
    path = tmp_path / "bert.mlir"
    path.write_text(FUSEMAX_BERT)
    tool = [sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(path)]
    out = subprocess.run(
        [*tool, "-t", "cost-json{arch=fusemax}"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["cycles"] == via_api.cycles
    table = subprocess.run([*tool, "-t", "cost-report"], capture_output=True, text=True, check=True)
    assert f"{via_api.cycles:,}" in table.stdout


def test_a_module_without_a_program_is_an_error() -> None:
    with pytest.raises(CostModelError, match="run lower-to-dataflow"):
        evaluate_module(ModuleOp([]), FUSEMAX)
    result = subprocess.run(
        [sys.executable, "-m", "einsum_opt.tools.einsum_opt", "-t", "cost-json"],
        input="builtin.module {}\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no dataflow.program in the module: run lower-to-dataflow first "
        "(e.g. -p ...,lower-to-dataflow)"
    ]


def test_programs_of_a_module_run_one_after_another() -> None:
    one = PIPELINE.format(repeat=1, count=100)
    module = parse_mlir(one + "\n" + one.replace("@p", "@q"), "<test>")
    report = evaluate_module(module, FUSEMAX)
    assert report.programs == ("p", "q")
    assert report.cycles == 2 * 1008
    assert report.per_einsum["A"].cycles == 2 * 1000


def test_unknown_units_and_levels_are_errors() -> None:
    with pytest.raises(CostModelError, match="no unit 'gpu'"):
        cost(
            """dataflow.program @p arch "fusemax" {
              dataflow.compute @A on gpu runs 1 times 1 ops {add = 1} extent [4]
            }"""
        )
    with pytest.raises(CostModelError, match="no storage level 'L3'"):
        cost(
            """dataflow.program @p arch "fusemax" {
              dataflow.transfer @A "X" from DRAM to L3 bytes 4
            }"""
        )


def test_a_serial_pipeline_runs_one_iteration_at_a_time() -> None:
    """`serial`: N times the critical path of one iteration, where B on pe1d also waits for
    A's results to leave the 2D array (FuseMax's pe2d drains in 256 cycles); an overlapped
    pipeline hides the drain."""
    serial = PIPELINE.replace("count {count} {{", "count {count} serial {{")
    assert cost(serial.format(repeat=1, count=100)).cycles == 100 * (10 + 256 + 8)
    undrained = FUSEMAX.with_changes({"units.pe2d.drain_cycles": 0})
    assert cost(serial.format(repeat=1, count=100), undrained).cycles == 100 * (10 + 8)
    assert cost(PIPELINE.format(repeat=1, count=100)).cycles == 99 * 10 + 18


def test_a_buffer_in_a_pipeline_spills_once_per_iteration() -> None:
    """A buffer inside a pipeline is one iteration's footprint: its excess over the GLB is
    written out and read back in every iteration."""
    report = cost(
        """dataflow.program @p arch "fusemax" {
          dataflow.pipeline "p1" count 4 {
            dataflow.compute @A on pe1d runs 4 times 8 ops {add = 1} extent [256]
            dataflow.buffer GLB bytes 16778240 holds ["A" = 16778240]
          }
        }"""
    )
    assert report.buffer_overflow
    assert report.spill_bytes["GLB"] == 4 * 2 * 1024
    assert report.dram_bytes == 4 * 2 * 1024
