"""The cost model: hand-written dataflow programs against hand computations (the semantics in
costmodel/model.py's docstring: latencies of stages, sequences, pipelines, recurrences and
repeats; utilisation as spatial occupancy; block-granular access energy per level and
instance; bandwidth throttling per level; leakage, area, overflows)."""

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
    ACCOUNTINGS,
    CostModelError,
    _max_mean_cycle,
    evaluate,
    evaluate_module,
)
from einsum_opt.costmodel.report import CostReport, Overflow
from einsum_opt.dialects.dataflow import ProgramOp, programs_in
from einsum_opt.frontends.loading import parse_mlir
from einsum_opt.hardware import Architecture, load_architecture

FUSEMAX = load_architecture("fusemax")
CLOCK_HZ = 940e6
BYTES_PER_CYCLE = 400 * 2**30 / CLOCK_HZ
WORDS_PER_CYCLE = BYTES_PER_CYCLE / 2  # 16-bit words

# FuseMax's per-action energies (pJ), fusemax.yaml / reference/fusemax-energy.md §2.
MAC, ADD, MAX, DIV = 17.1645, 8.3395, 0.028036, 36.251153
DRAM_ACCESS = 249.6  # one 64-bit access: 4 words
GLB_READ, GLB_WRITE = 12512.7, 15751.4  # one 4096-bit row: 256 words
RF_READ, RF_WRITE = 2.194455, 1.906455  # one word
REG_READ, REG_WRITE = 0.653, 0.570  # one word, per PE


def program(source: str) -> ProgramOp:
    module = parse_mlir(source, "<test>")
    module.verify()
    (found,) = programs_in(module)
    return found


def cost(source: str, arch: Architecture = FUSEMAX, accounting: str = "physical") -> CostReport:
    return evaluate(program(source), arch, accounting)


def wrap(body: str) -> str:
    """A program on FuseMax around `body`."""
    return f'dataflow.program @p arch "fusemax" {{\n{body}\n}}'


# -- compute: latencies and utilisation -------------------------------------------------------


def test_a_single_stage_runs_runs_times_times_cycles_per_invocation() -> None:
    report = cost(
        wrap("dataflow.compute @QK on pe2d runs 10 times 64 ops {mac = 1} extent [256, 256]")
    )
    assert report.cycles == 10 * 64 * 1
    assert report.compute_cycles == 640
    assert report.computes == 10 * 64 * 65536
    assert report.utilization == {"pe2d": 1.0, "pe1d": 0.0}
    assert report.per_einsum["QK"].cycles == 640
    assert report.per_einsum["QK"]["unit"] == "pe2d"
    assert report.latency_s == pytest.approx(640 / CLOCK_HZ)
    assert report.energy_breakdown_pj["compute"] == pytest.approx(10 * 64 * 65536 * MAC)
    assert report.bound == "compute"
    # exp is 6 MACs and the subtraction an add: 7 cycles per invocation.
    exp = cost(
        wrap(
            "dataflow.compute @SLN on pe2d runs 3 times 2 ops {exp = 1, add = 1} extent [256, 256]"
        )
    )
    assert exp.cycles == 3 * 2 * 7


@pytest.mark.parametrize(
    ("unit", "extent", "pes"),
    [("pe2d", "[4, 2]", 8), ("pe2d", "[256, 1]", 256), ("pe1d", "[64]", 64)],
)
def test_utilisation_counts_the_pes_a_stage_occupies(unit: str, extent: str, pes: int) -> None:
    """Utilisation is spatial occupancy (Timeloop's): PE-cycles used over PEs x latency; a
    stage on 4 x 2 of the 256 x 256 PEs keeps the array 8/65536 busy, not 100%."""
    report = cost(
        wrap(f"dataflow.compute @Z on {unit} runs 1 times 64 ops {{mac = 1}} extent {extent}")
    )
    total = FUSEMAX.unit(unit).pes
    assert report.cycles == 64
    assert Fraction(report.utilization[unit]).limit_denominator(1 << 20) == Fraction(pes, total)
    assert report.computes == 64 * pes


def test_a_sequence_adds_latencies() -> None:
    report = cost(
        wrap(
            "dataflow.compute @A on pe2d runs 10 times 5 ops {mac = 1} extent [256, 256]\n"
            "dataflow.compute @B on pe1d runs 10 times 3 ops {add = 1} extent [256] after [@A]"
        )
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
    assert seven.computes == 7 * once.computes
    assert seven.utilization == pytest.approx(dict(once.utilization))
    assert seven.energy_pj == pytest.approx(7 * once.energy_pj)


def test_a_recurrence_bound_dominates() -> None:
    report = cost(
        wrap(
            """dataflow.pipeline "m1" count 100 {
              dataflow.compute @A on pe2d runs 100 times 2 ops {mac = 1} extent [256, 256]
              dataflow.compute @B on pe1d runs 100 times 3 ops {add = 1} extent [256] after [@A] carried [@C]
              dataflow.compute @C on pe2d runs 100 times 4 ops {max = 1} extent [256, 256] after [@B]
            }"""
        )
    )
    # Resources: pe2d 6, pe1d 3 per iteration; the cycle B -> C -> (next) B takes 7.
    assert report.cycles == 99 * 7 + (2 + 3 + 4)
    assert report.utilization["pe2d"] == pytest.approx(600 / 702)


def test_a_self_carried_stage_bounds_the_interval_by_its_latency() -> None:
    report = cost(
        wrap(
            """dataflow.pipeline "m1" count 50 {
              dataflow.compute @A on pe2d runs 50 times 1 ops {mac = 1} extent [256, 256]
              dataflow.compute @R on pe1d runs 50 times 9 ops {add = 1} extent [256] after [@A] carried [@R]
              dataflow.compute @S on pe1d runs 50 times 1 ops {add = 1} extent [256] after [@R]
            }"""
        )
    )
    # II = max(pe1d 10, R = 9) = 10: the resource bound still wins here.
    assert report.cycles == 49 * 10 + 11
    alone = cost(
        wrap(
            """dataflow.pipeline "m1" count 50 {
              dataflow.compute @R on pe1d runs 50 times 9 ops {add = 1} extent [256] carried [@R]
              dataflow.compute @A on pe2d runs 50 times 20 ops {mac = 1} extent [256, 256] carried [@A]
            }"""
        )
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
        wrap(
            """dataflow.pipeline "m1, p1" count 256 {
              dataflow.compute @A on pe1d runs 256 times 4 ops {add = 1} extent [256]
              dataflow.compute @AV on pe1d runs 2 times 64 ops {div = 1} extent [256] after [@A]
            }"""
        )
    )
    # II = (256 * 4 + 2 * 64) / 256 = 4.5; CP = 4 + 64.
    assert report.compute_cycles == pytest.approx(255 * 4.5 + 68)
    assert report.cycles == math.ceil(255 * 4.5 + 68)


def test_a_serial_pipeline_runs_one_iteration_at_a_time() -> None:
    """`serial`: N times the critical path of one iteration, where B on pe1d also waits for
    A's results to leave the 2D array (FuseMax's pe2d drains in 256 cycles); an overlapped
    pipeline hides the drain."""
    serial = PIPELINE.replace("count {count} {{", "count {count} serial {{")
    assert cost(serial.format(repeat=1, count=100)).cycles == 100 * (10 + 256 + 8)
    undrained = FUSEMAX.with_changes({"units.pe2d.drain_cycles": 0})
    assert cost(serial.format(repeat=1, count=100), undrained).cycles == 100 * (10 + 8)
    assert cost(PIPELINE.format(repeat=1, count=100)).cycles == 99 * 10 + 18


def test_halving_an_array_side_doubles_times() -> None:
    full = wrap("dataflow.compute @QK on pe2d runs 32 times 64 ops {mac = 1} extent [256, 256]")
    half = wrap("dataflow.compute @QK on pe2d runs 32 times 128 ops {mac = 1} extent [128, 256]")
    smaller = FUSEMAX.with_changes({"units.pe2d.shape": [128, 256]})
    on_full = cost(full)
    on_half = cost(half, smaller)
    assert on_half.cycles == 2 * on_full.cycles
    assert on_half.utilization["pe2d"] == pytest.approx(1.0)
    # The same operations: the same compute energy.
    assert on_half.computes == on_full.computes
    assert on_half.energy_breakdown_pj["compute"] == pytest.approx(
        on_full.energy_breakdown_pj["compute"]
    )
    with pytest.raises(CostModelError, match=r"extent \[256, 256\] exceeds unit pe2d's shape"):
        cost(full, smaller)
    # A faster clock shortens seconds, not cycles.
    faster = cost(full, FUSEMAX.with_changes(clock_mhz=1880))
    assert faster.cycles == on_full.cycles
    assert faster.latency_s == pytest.approx(on_full.latency_s / 2)


# -- storage: bandwidth -----------------------------------------------------------------------

ADDS = "dataflow.compute @A on pe1d runs 1 times 1000 ops {add = 1} extent [256]"


def test_a_dram_bound_program() -> None:
    """DRAM at 400 GiB/s: 10^9 bytes take 10^9 / (400 GiB/s / 940 MHz) cycles, more than the
    1000 of compute."""
    words = 500_000_000
    report = cost(
        wrap(
            f'{ADDS}\ndataflow.access @A "X" at DRAM reads {words} fills 0 updates 0 capacity {words} instances 1'
        )
    )
    memory = 2 * words / BYTES_PER_CYCLE
    assert report.dram_bytes == 1_000_000_000
    assert report.memory_cycles == pytest.approx(memory)
    assert report.level_cycles["DRAM"] == pytest.approx(memory)
    assert report.cycles == math.ceil(memory)
    assert report.latency_s == pytest.approx(1e9 / (400 * 2**30))
    assert report.bound == "DRAM"
    assert report.utilization["pe1d"] == pytest.approx(1000 / memory)
    assert report.per_einsum["A"].dram_bytes == 1_000_000_000
    # Reads, fills and updates share the DRAM bandwidth.
    split = cost(
        wrap(
            f'{ADDS}\ndataflow.access @A "X" at DRAM reads {words // 2} fills {words // 4} '
            f"updates {words // 4} capacity 1 instances 1"
        )
    )
    assert split.cycles == report.cycles


def with_glb(**fields: float) -> Architecture:
    return FUSEMAX.with_changes({f"storage.GLB.{k}": v for k, v in fields.items()})


@pytest.mark.parametrize(
    ("fields", "counts", "cycles"),
    [
        ({"read_bandwidth": 32}, (64000, 0, 0), 64000 // 32),
        ({"write_bandwidth": 1}, (0, 1000, 1500), 2500),  # fills and updates are writes
        ({"shared_bandwidth": 2}, (3000, 1000, 0), 2000),  # reads and writes together
        ({"read_bandwidth": 32, "write_bandwidth": 4}, (64000, 8000, 4000), 3000),  # slowest
        ({"read_bandwidth": 64}, (64000, 0, 0), 1000),  # keeps up: compute-bound
    ],
)
def test_glb_bandwidths_throttle(
    fields: dict[str, float], counts: tuple[int, int, int], cycles: int
) -> None:
    """A level's read, write and shared bandwidths (words per cycle per instance) slow the
    program to its traffic over the bandwidth when that exceeds the compute cycles."""
    reads, fills, updates = counts
    access = (
        f'dataflow.access @A "X" at GLB reads {reads} fills {fills} updates {updates} '
        "capacity 256 instances 1"
    )
    report = cost(wrap(f"{ADDS}\n{access}"), with_glb(**fields))
    assert report.compute_cycles == 1000
    assert report.cycles == cycles
    assert report.bound == ("GLB" if cycles > 1000 else "compute")
    unlimited = cost(wrap(f"{ADDS}\n{access}"))
    assert unlimited.cycles == 1000 and unlimited.level_cycles["GLB"] == 0


def test_bandwidth_is_per_instance() -> None:
    """65536 PE register files at 2 words per cycle each: 4000 reads per instance take 2000
    cycles, however many instances share the total."""
    arch = FUSEMAX.with_changes({"units.pe2d.registers.read_bandwidth": 2})
    body = (
        "dataflow.compute @A on pe2d runs 1 times 1000 ops {mac = 1} extent [256, 256]\n"
        f'dataflow.access @A "X" at pe2d.PE reads {65536 * 4000} fills 0 updates 0 capacity 1 '
        "instances 65536"
    )
    report = cost(wrap(body), arch)
    assert report.cycles == 2000
    assert report.bound == "pe2d.PE"


# -- storage: energy --------------------------------------------------------------------------


def test_uneven_counts_over_instances_lose_no_access() -> None:
    """10 register reads over 4 PEs (2.5 each on average): every one is charged, in both
    accountings' terms (physical: all 10; artifact: one instance's mean, 2.5)."""
    body = (
        "dataflow.compute @A on pe2d runs 1 times 1 ops {mac = 1} extent [2, 2]\n"
        'dataflow.access @A "X" at pe2d.PE reads 10 fills 0 updates 0 capacity 1 instances 4'
    )
    physical = cost(wrap(body)).energy_breakdown_pj["registers"]
    artifact = cost(wrap(body), accounting="artifact").energy_breakdown_pj["registers"]
    assert physical == pytest.approx(10 * REG_READ)
    assert artifact == pytest.approx(2.5 * REG_READ)


MIX = wrap(
    """dataflow.compute @S on pe2d runs 2 times 3 ops {mac = 1, exp = 1, add = 1} extent [4, 8]
dataflow.compute @T on pe1d runs 1 times 1 ops {max = 2, div = 1} extent [16]
dataflow.access @S "X" at DRAM reads 1000 fills 0 updates 6 capacity 1006 instances 1
dataflow.access @S "Y" at GLB reads 300 fills 256 updates 1 capacity 300 instances 1
dataflow.access @T "Z" at RF reads 5 fills 0 updates 3 capacity 5 instances 1
dataflow.access @S "W" at pe2d.PE reads 320 fills 64 updates 0 capacity 1 instances 32
dataflow.access @T "V" at pe1d.PE reads 48 fills 0 updates 16 capacity 1 instances 16"""
)


def test_energy_of_a_known_mix_is_the_hand_sum() -> None:
    """Compute: index points x the ops' energies (exp is 6 MACs). Storage: per instance,
    whole accesses of the level's block (DRAM 4 words, a GLB row 256 words) at the action's
    energy, times the utilized instances; an update costs a write."""
    report = cost(MIX)
    s_points, t_points = 2 * 3 * 32, 16
    compute = s_points * (MAC + 6 * MAC + ADD) + t_points * (2 * MAX + DIV)
    dram = (math.ceil(1000 / 4) + math.ceil(6 / 4)) * DRAM_ACCESS  # 250 + 2 accesses
    glb = 2 * GLB_READ + (1 + 1) * GLB_WRITE  # 300 reads are 2 rows; 1 fill row, 1 update row
    rf = 5 * RF_READ + 3 * RF_WRITE
    w = 32 * (10 * REG_READ + 2 * REG_WRITE)  # 32 instances, each 10 reads and 2 fills
    v = 16 * (3 * REG_READ + 1 * REG_WRITE)
    expected = {
        "compute": compute,
        "registers": w + v,
        "DRAM": dram,
        "GLB": glb,
        "RF": rf,
    }
    assert list(report.energy_breakdown_pj) == ["compute", "registers", "DRAM", "GLB", "RF"]
    assert report.energy_breakdown_pj == pytest.approx(expected)
    assert report.energy_pj == pytest.approx(sum(expected.values()))
    by_level = {"DRAM": ("X", dram), "GLB": ("Y", glb), "RF": ("Z", rf)}
    by_level |= {"pe2d.PE": ("W", w), "pe1d.PE": ("V", v)}
    assert set(report.energy_by_level) == set(by_level)
    for level, (tensor, pj) in by_level.items():
        assert report.energy_by_level[level] == {tensor: pytest.approx(pj)}, level
    assert report.dram_bytes == (1000 + 6) * 2
    assert report.computes == s_points + t_points
    t = report.per_einsum["T"]
    assert t.energy_pj == pytest.approx(t_points * (2 * MAX + DIV) + rf + v)
    assert report.per_einsum["S"].dram_bytes == 2012 and t.dram_bytes == 0


def test_the_artifact_accounting_charges_one_instance_per_level() -> None:
    """`accounting=artifact` (reference/fusemax-energy.md §1): every storage level is charged
    for one instance, as the FuseMax artifact charges its PE registers; compute and the
    single-instance levels are unchanged."""
    physical = cost(MIX)
    artifact = cost(MIX, accounting="artifact")
    assert artifact.accounting == "artifact" and physical.accounting == "physical"
    assert artifact.energy_breakdown_pj["registers"] == pytest.approx(
        (10 * REG_READ + 2 * REG_WRITE) + (3 * REG_READ + 1 * REG_WRITE)
    )
    for key in ("compute", "DRAM", "GLB", "RF"):
        assert artifact.energy_breakdown_pj[key] == pytest.approx(physical.energy_breakdown_pj[key])
    assert artifact.cycles == physical.cycles
    assert "accounting" in artifact.to_table() and "artifact" in artifact.to_table()
    assert ACCOUNTINGS == ("physical", "artifact")
    with pytest.raises(CostModelError, match="unknown accounting 'some'"):
        cost(MIX, accounting="some")


def test_levels_report_per_instance_counts() -> None:
    """`levels`: level -> tensor -> reads, fills, updates per instance (Timeloop's meaning),
    the largest tile held and the utilized instances; accesses of several Einsums to one
    tensor add up."""
    report = cost(
        wrap(
            """dataflow.compute @A on pe2d runs 1 times 1 ops {mac = 1} extent [4]
dataflow.access @A "X" at pe2d.PE reads 40 fills 8 updates 0 capacity 1 instances 4
dataflow.access @B "X" at pe2d.PE reads 10 fills 0 updates 2 capacity 2 instances 4
dataflow.access @B "Y" at GLB reads 7 fills 3 updates 0 capacity 9 instances 1"""
        )
    )
    x = report.levels["pe2d.PE"]["X"]
    assert (x.reads, x.fills, x.updates) == (Fraction(50, 4), Fraction(2), Fraction(1, 2))
    assert (x.utilized_capacity, x.instances) == (2, 4)
    data = json.loads(report.to_json())["levels"]
    assert data["pe2d.PE"]["X"] == {
        "reads": 12.5,
        "fills": 2,
        "updates": 0.5,
        "utilized_capacity": 2,
        "utilized_instances": 4,
    }
    assert data["GLB"]["Y"] == {
        "reads": 7,
        "fills": 3,
        "updates": 0,
        "utilized_capacity": 9,
        "utilized_instances": 1,
    }
    table = report.to_table()
    assert "per instance of each level:" in table
    assert "12.50" in table


def leaky_arch() -> Architecture:
    return FUSEMAX.with_changes(
        {
            "storage.GLB.leak_pj_per_cycle": 2.0,
            "storage.DRAM.leak_pj_per_cycle": 0.5,
            "units.pe1d.registers.leak_pj_per_cycle": 0.01,
        }
    )


def test_leakage_is_per_cycle_per_utilized_instance() -> None:
    """Every level on the chain of a unit the program uses leaks for the whole latency, per
    utilized instance (one at least); the artifact accounting charges one instance."""
    body = (
        f"{ADDS}\n"
        'dataflow.access @A "X" at pe1d.PE reads 2560 fills 0 updates 0 capacity 1 instances 256'
    )
    report = cost(wrap(body), leaky_arch())
    latency = 1000
    glb, dram, registers = 2.0 * latency, 0.5 * latency, 0.01 * latency * 256
    assert report.energy_by_level["GLB"]["leakage"] == pytest.approx(glb)
    assert report.energy_by_level["DRAM"]["leakage"] == pytest.approx(dram)
    assert report.energy_by_level["pe1d.PE"]["leakage"] == pytest.approx(registers)
    assert report.leakage_pj == pytest.approx(glb + dram + registers)
    assert report.energy_breakdown_pj["GLB"] == pytest.approx(glb)
    reads = 10 * REG_READ * 256
    assert report.energy_breakdown_pj["registers"] == pytest.approx(reads + registers)
    artifact = cost(wrap(body), leaky_arch(), accounting="artifact")
    assert artifact.energy_by_level["pe1d.PE"]["leakage"] == pytest.approx(0.01 * latency)
    assert cost(wrap(body)).leakage_pj == 0


def test_area_of_every_instance() -> None:
    """Area: each level's area times its instances, each PE's and its registers' times the
    PEs; absent (None, no JSON key) when the architecture gives none."""
    arch = FUSEMAX.with_changes(
        {
            "storage.GLB.area_um2": 1000.0,
            "units.pe2d.area_um2": 2.0,
            "units.pe2d.registers.area_um2": 0.5,
            "units.pe1d.area_um2": 3.0,
        }
    )
    report = cost(wrap(ADDS), arch)
    assert report.area_um2 == pytest.approx(1000 + 65536 * (2.0 + 0.5) + 256 * 3.0)
    assert json.loads(report.to_json())["area_um2"] == pytest.approx(report.area_um2)
    assert "area (um^2)" in report.to_table()
    plain = cost(wrap(ADDS))
    assert plain.area_um2 is None and "area_um2" not in json.loads(plain.to_json())


# -- storage: capacity ------------------------------------------------------------------------


def test_a_buffer_overflow_is_reported_with_its_level_and_tensors() -> None:
    capacity = 16 * 2**20
    report = cost(
        wrap(
            f"""dataflow.repeat "b" count 3 {{
  dataflow.compute @A on pe1d runs 1 times 1 ops {{add = 1}} extent [256]
}}
dataflow.buffer GLB bytes {capacity + 1000} holds ["Q" = {capacity}, "K" = 1000]
dataflow.buffer RF bytes 64 holds ["X" = 64]"""
        )
    )
    assert report.buffer_overflow
    assert report.overflows == (Overflow("GLB", ("Q", "K"), capacity + 1000, capacity),)
    assert report.buffer_peak_bytes == {"GLB": capacity + 1000, "RF": 64}
    assert report.buffer_capacity_bytes == {"GLB": capacity, "RF": 8192 * 2}
    # An overflow is reported, not turned into invented traffic.
    assert report.dram_bytes == 0
    assert report.energy_pj == pytest.approx(report.energy_breakdown_pj["compute"])
    table = report.to_table()
    assert "OVERFLOW" in table
    assert "overflow: GLB holds 16,778,216 bytes of Q, K but has 16,777,216" in table
    assert json.loads(report.to_json())["overflows"] == [
        {
            "level": "GLB",
            "tensors": ["Q", "K"],
            "peak_bytes": capacity + 1000,
            "capacity_bytes": capacity,
        }
    ]
    fits = cost(wrap(f'{ADDS}\ndataflow.buffer GLB bytes 1000 holds ["Q" = 1000]'))
    assert not fits.buffer_overflow and fits.overflows == ()
    assert "OVERFLOW" not in fits.to_table()


def test_register_capacity_is_per_pe() -> None:
    """A unit's registers hold 16 words (32 bytes) per PE on FuseMax's pe2d: a peak of 34
    bytes per instance overflows there, whatever the array's total."""
    over = cost(wrap(f'{ADDS}\ndataflow.buffer pe2d.PE bytes 34 holds ["A" = 18, "B, C" = 16]'))
    assert over.overflows == (Overflow("pe2d.PE", ("A", "B, C"), 34, 32),)
    fits = cost(wrap(f'{ADDS}\ndataflow.buffer pe2d.PE bytes 32 holds ["A" = 32]'))
    assert not fits.buffer_overflow
    assert fits.buffer_capacity_bytes == {"pe2d.PE": 32}


def test_the_largest_peak_of_a_level_is_reported() -> None:
    """Several buffers of one level (one per program of a module): the largest peak."""
    one = wrap(f'{ADDS}\ndataflow.buffer GLB bytes 100 holds ["A" = 100]')
    two = one.replace("@p", "@q").replace("100", "300")
    report = evaluate_module(parse_mlir(one + "\n" + two, "<test>"), FUSEMAX)
    assert report.buffer_peak_bytes == {"GLB": 300}


# -- the report -------------------------------------------------------------------------------


def test_json_has_the_report_keys() -> None:
    report = cost(PIPELINE.format(repeat=2, count=8))
    data = json.loads(report.to_json())
    assert set(data) == {
        "arch",
        "programs",
        "cycles",
        "latency_s",
        "compute_cycles",
        "memory_cycles",
        "level_cycles",
        "bound",
        "computes",
        "energy_pj",
        "energy_breakdown_pj",
        "energy_by_level_pj",
        "leakage_pj",
        "accounting",
        "dram_bytes",
        "utilization",
        "per_einsum",
        "levels",
        "buffer_peak_bytes",
        "buffer_capacity_bytes",
        "buffer_overflow",
        "overflows",
    }
    assert list(data["energy_breakdown_pj"]) == ["compute", "registers", "DRAM", "GLB", "RF"]
    assert set(data["per_einsum"]["A"]) == {"cycles", "unit", "energy_pj", "dram_bytes"}
    assert data["cycles"] == report.cycles
    assert data["arch"] == "fusemax" and data["programs"] == ["p"]
    table = report.to_table()
    assert "latency (cycles)" in table and "pe2d" in table


def _traced_events(source: str) -> int:
    """Python-level line events of evaluating `source`, in the dialect and cost model code."""
    prog = program(source)
    ours = (
        "costmodel/model.py",
        "costmodel/report.py",
        "costmodel/level_costs.py",
        "dialects/dataflow.py",
    )
    events = 0
    # Once untraced first: what is worked out once per architecture (kept for the last few
    # costed) must not count, whichever tests ran before.
    evaluate(prog, FUSEMAX)

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
      dataflow.access @A "X" at DRAM reads {n} fills 0 updates {n} capacity {n} instances 1
      dataflow.access @A "X" at GLB reads {n} fills {n} updates 0 capacity {n} instances 1
      dataflow.access @A "X" at pe2d.PE reads {m} fills {m} updates 0 capacity 1 instances 65536
      dataflow.buffer GLB bytes {n} holds ["X" = {n}]
    }}"""
    small = _traced_events(source.format(n=10, m=10 * 65536))
    large = _traced_events(source.format(n=10**6, m=10**6 * 65536))
    assert small == large > 0


# -- FuseMax, BERT at 64K, written by hand -----------------------------------------------------

B, H, M, P, E, F = 64, 12, 65536, 65536, 64, 64
M0 = P0 = 256
M1 = M // M0  # 256 key tiles
P2 = 2
P1 = P // P0 // P2  # 128 query blocks per P2
REPEAT = B * H * P2
N = M1 * P1

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
  dataflow.access @QK "Q" at DRAM reads {B * H * P * E} fills 0 updates 0 capacity {B * H * P * E} instances 1
  dataflow.access @QK "K" at DRAM reads {B * H * M * E * P2} fills 0 updates 0 capacity {B * H * M * E} instances 1
  dataflow.access @SLNV "V" at DRAM reads {B * H * M * F * P2} fills 0 updates 0 capacity {B * H * M * F} instances 1
  dataflow.access @AV "AV" at DRAM reads 0 fills 0 updates {B * H * P * F} capacity {B * H * P * F} instances 1
  dataflow.buffer GLB bytes {(P1 * P0 * (E + 2 + F) + 2 * M0 * E) * 2} holds ["Q" = {P1 * P0 * E * 2}, "RM" = {P1 * P0 * 2}, "RD" = {P1 * P0 * 2}, "RNV" = {P1 * P0 * F * 2}, "K" = {M0 * E * 2}, "V" = {M0 * F * 2}]
}}"""


def test_fusemax_bert_64k_matches_the_reference_composition() -> None:
    # Reference (fusemax.md §4), per query block over its M1 key tiles, in cycles.
    qk, lm, rm, sln, sld, slnv = M1 * E, M1, M1, M1 * 7, M1, M1 * F
    prm, spd, rd, spnv, rnv, av = M1 * 7, M1, M1, M1 * F, M1 * F, F
    per_block = max(qk + lm, rd + rnv + av) + rm + max(sln + sld, prm + spd) + max(slnv, spnv)
    compute = per_block * P1 * P2 * B * H
    dram_bytes = B * H * 2 * (P * E + 2 * M * E + 2 * M * F + P * F)
    reference = max(compute, dram_bytes / BYTES_PER_CYCLE)

    report = cost(FUSEMAX_BERT)
    assert report.cycles == pytest.approx(reference, rel=0.10)
    # By hand: II = pe1d's 1 + 7 + 1 + 1 + 64 + 64 + AV's 64 * 128 / 32768 = 138.25 per
    # iteration, the last one ends after the critical path QK, LM, RM, PRM, SPNV, RNV, AV.
    last = E + 1 + 1 + 7 + F + F + F
    assert report.cycles == REPEAT * (Fraction(553, 4) * (N - 1) + last)
    assert report.bound == "compute"
    assert report.dram_bytes == dram_bytes
    assert report.utilization["pe2d"] == pytest.approx(REPEAT * N * 137 / report.cycles)
    assert report.utilization["pe1d"] == pytest.approx(1.0, abs=0.01)
    assert not report.buffer_overflow
    assert report.per_einsum["QK"].cycles == B * H * P2 * N * E


def test_fusemax_bert_via_the_api_and_the_targets(tmp_path: Path) -> None:
    module = parse_mlir(FUSEMAX_BERT, "<test>")
    via_api = api.cost(module)
    assert via_api == evaluate_module(module, "fusemax")
    with pytest.warns(UserWarning, match="lowered for architecture 'fusemax' and are costed"):
        assert api.cost(module, "flat").arch == "flat"
    lowered_for_flat = parse_mlir(FUSEMAX_BERT.replace('arch "fusemax"', 'arch "flat"'), "<test>")
    assert api.cost(lowered_for_flat).arch == "flat"  # the architecture the programs name
    path = tmp_path / "bert.mlir"
    path.write_text(FUSEMAX_BERT)
    tool = [sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(path)]
    out = subprocess.run(
        [*tool, "-t", "cost-json{arch=fusemax}"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["cycles"] == via_api.cycles
    assert out.stderr == ""  # costed against the architecture it was lowered for: no warning
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


def test_each_program_is_bounded_by_its_own_traffic() -> None:
    """Latencies add per program: a DRAM-bound program and a compute-bound one take the sum
    of their own max(compute, DRAM), not max(sum of compute, sum of DRAM)."""
    words = 500_000_000
    memory = wrap(
        f'{ADDS}\ndataflow.access @A "X" at DRAM reads {words} fills 0 updates 0 capacity 1 instances 1'
    )
    compute = PIPELINE.format(repeat=1, count=100).replace("@p", "@q")
    report = evaluate_module(parse_mlir(memory + "\n" + compute, "<test>"), FUSEMAX)
    dram = 2 * words / BYTES_PER_CYCLE
    assert report.cycles == math.ceil(dram + 1008)
    assert report.cycles > max(report.compute_cycles, report.memory_cycles)


def test_unknown_units_and_levels_are_errors() -> None:
    with pytest.raises(CostModelError, match="no unit 'gpu'"):
        cost(wrap("dataflow.compute @A on gpu runs 1 times 1 ops {add = 1} extent [4]"))
    with pytest.raises(
        CostModelError,
        match=r"no storage level 'L3' in fusemax \(the levels are DRAM, GLB, RF, pe2d.PE, pe1d.PE\)",
    ):
        cost(wrap('dataflow.access @A "X" at L3 reads 4 fills 0 updates 0 capacity 4 instances 1'))
    with pytest.raises(CostModelError, match="no storage level 'pe3d.PE'"):
        cost(wrap('dataflow.buffer pe3d.PE bytes 4 holds ["X" = 4]'))
