"""Every case of the Timeloop corpus (../shared/corpus/timeloop) reproduces timeloop-model's
published output: per level and data space the reads, fills, updates and utilized capacity
exactly, cycles exactly, energy within 0.1% (and each data space's energy to the printed
cent), utilization and areas to the printed precision. The expected numbers are read from
each case's ref.stats.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
from timeloop_oracle import run_oracle
from timeloop_stats import Stats, read_stats

from einsum_opt.costmodel.level_costs import NestCost, level_costs
from einsum_opt.costmodel.nest_analysis import NestCounts, analyze
from einsum_opt.costmodel.timeloop_import import to_level_hardware, to_nest_spec
from einsum_opt.frontends.timeloop_spec import TimeloopSpec, load_timeloop_spec

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "timeloop"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "input.yaml").exists())


def _load(case: str) -> tuple[TimeloopSpec, NestCounts, NestCost, Stats]:
    directory = CORPUS / case
    spec = load_timeloop_spec(
        directory / "input.yaml", directory / "ERT.yaml", directory / "ART.yaml"
    )
    counts = analyze(to_nest_spec(spec))
    levels, compute = to_level_hardware(spec)
    return (
        spec,
        counts,
        level_costs(counts, levels, compute),
        read_stats(directory / "ref.stats.txt"),
    )


def _cents(value: float) -> float:
    """A value as Timeloop prints it (two decimals)."""
    return round(value, 2)


def test_the_corpus_is_there() -> None:
    assert len(CASES) == 7


@pytest.mark.parametrize("case", CASES)
def test_counts_per_level_and_data_space(case: str) -> None:
    spec, counts, _, stats = _load(case)
    checked = 0
    for level in spec.architecture.storage:
        printed = stats.levels[level.name]
        for space, expected in printed.spaces.items():
            got = counts.levels[level.name][space]
            assert (got.reads, got.fills, got.updates, got.utilized_capacity) == (
                int(printed.space(space, "Scalar reads (per-instance)")),
                int(printed.space(space, "Scalar fills (per-instance)")),
                int(printed.space(space, "Scalar updates (per-instance)")),
                int(printed.space(space, "Utilized capacity")),
            ), f"{level.name}.{space}"
            assert got.utilized_instances == int(expected["Utilized instances (max)"])
            assert got.temporal_reductions == int(expected["Temporal reductions (per-instance)"])
            assert got.address_generations == int(expected["Address generations (per-cluster)"])
            assert got.partition_size == int(expected["Partition size"])
            checked += 1
        for space, got in counts.levels[level.name].tensors.items():
            if space not in printed.spaces:  # Timeloop prints only the data spaces kept
                assert not got.kept and got.accesses == 0
    assert checked > 0
    arithmetic = stats.levels[spec.architecture.arithmetic.name]
    assert counts.computes == int(arithmetic.number("Computes (total)")) == stats.computes
    assert counts.utilized_compute_instances == int(arithmetic.number("Utilized instances"))


@pytest.mark.parametrize("case", CASES)
def test_cycles_energy_utilization_and_area(case: str) -> None:
    spec, _, cost, stats = _load(case)
    assert cost.cycles == stats.cycles
    expected_energy = stats.fj_per_compute["Total"] * stats.computes / 1000
    assert cost.energy_pj == pytest.approx(expected_energy, rel=1e-3)
    assert _cents(cost.utilization * 100) == stats.utilization_percent
    arithmetic = stats.levels[spec.architecture.arithmetic.name]
    assert _cents(cost.compute.energy_pj) == arithmetic.number("Energy (total)")
    assert cost.compute.area_um2 is not None
    assert _cents(cost.compute.area_um2) == arithmetic.number("Area (total)")
    for level in spec.architecture.storage:
        printed, got = stats.levels[level.name], cost.levels[level.name]
        assert got.cycles == int(printed.number("Cycles"))
        assert _cents(got.slowdown) == printed.number("Bandwidth throttling")
        assert _cents(got.leakage_pj) == pytest.approx(printed.number("Leakage energy (total)"))
        assert got.area_um2 is not None
        assert _cents(got.area_um2 / level.instances) == printed.number("Area")
        assert _cents(got.fj_per_compute) == pytest.approx(stats.fj_per_compute[level.name])
        for space in printed.spaces:
            assert _cents(got.tensors[space].energy_pj) == pytest.approx(
                printed.space(space, "Energy (total)")
            ), f"{level.name}.{space}"


@pytest.mark.parametrize("case", CASES)
def test_the_oracle_agrees(case: str) -> None:
    """The slow literal walk of the nest gives the same counts (it checks the closed form on
    random nests in test_nest_analysis.py, so it is checked here against Timeloop)."""
    spec, counts, _, _ = _load(case)
    oracle = run_oracle(to_nest_spec(spec))
    for name, level in oracle.levels.items():
        for space, walked in level.items():
            got = counts.levels[name][space]
            assert (walked.reads, walked.fills, walked.updates, walked.utilized_capacity) == (
                got.reads,
                got.fills,
                got.updates,
                got.utilized_capacity,
            ), f"{name}.{space}"
