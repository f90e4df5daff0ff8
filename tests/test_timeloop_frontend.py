"""The Timeloop frontend end to end, through the command line the issue states:

    einsum-opt DIR/input.yaml --ert DIR/ERT.yaml --art DIR/ART.yaml
        -p lower-to-loopnest,lower-to-dataflow -t cost-json

Every case of `../shared/corpus/timeloop/` must reproduce timeloop-model's published output:
cycles exact, per level and data space the per-instance reads, fills, updates and utilized
capacity exact, total energy within 0.1%, utilization to the printed precision, area."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from timeloop_cli import cost_json
from timeloop_stats import read_stats

from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.frontends.timeloop import parse_timeloop
from einsum_opt.hardware.attached import attached_architecture

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "timeloop"
CASES = sorted(p for p in CORPUS.glob("0*") if (p / "input.yaml").exists())


def _cost_json(case: Path, *extra: str) -> dict[str, Any]:
    return cost_json(case / "input.yaml", case / "ERT.yaml", case / "ART.yaml", *extra)


@pytest.mark.skipif(not CASES, reason="../shared/corpus/timeloop is not beside the checkout")
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_corpus_case_reproduces_timeloop(case: Path) -> None:
    stats = read_stats(case / "ref.stats.txt")
    report = _cost_json(case)
    assert report["cycles"] == stats.cycles
    assert report["computes"] == stats.computes
    expected_energy = stats.fj_per_compute["Total"] * stats.computes / 1000
    assert report["energy_pj"] == pytest.approx(expected_energy, rel=1e-3)
    (utilization,) = report["utilization"].values()
    assert round(utilization * 100, 2) == stats.utilization_percent
    keys = {
        "reads": "Scalar reads (per-instance)",
        "fills": "Scalar fills (per-instance)",
        "updates": "Scalar updates (per-instance)",
        "utilized_capacity": "Utilized capacity",
    }
    levels = report["levels"]
    checked = 0
    for name, level in stats.levels.items():
        for space, values in level.spaces.items():
            if "Scalar reads (per-instance)" not in values:
                continue
            kept = float(values["Utilized capacity"]) > 0
            got = levels.get(name, {}).get(space)
            if not kept:
                assert got is None, f"{name} {space} should be bypassed"
                continue
            assert got is not None, f"{name} {space} missing"
            for key, label in keys.items():
                assert got[key] == level.space(space, label), f"{name} {space} {key}"
            checked += 1
    assert checked > 0
    area = sum(float(lv.values.get("Area (total)", lv.values.get("Area", "0")).split()[0])
               for lv in stats.levels.values())
    assert report["area_um2"] == pytest.approx(area, rel=1e-6)


@pytest.mark.skipif(not CASES, reason="../shared/corpus/timeloop is not beside the checkout")
def test_the_spec_architecture_is_attached_and_used_by_default() -> None:
    case = CORPUS / "03-conv1d-oc-3level-bypass"
    module = parse_timeloop(case / "input.yaml", case / "ERT.yaml", case / "ART.yaml")
    arch = attached_architecture(module)
    assert arch is not None
    assert list(arch.storage) == ["MainMemory", "GlobalBuffer", "RegisterFile"]
    assert arch.storage["GlobalBuffer"].read_pj == pytest.approx(43.353054)
    (cascade,) = cascades_in(module)
    (einsum,) = cascade.einsums()
    text = str(einsum.attributes["mapping"])
    assert "keep = {Weights = [MainMemory, GlobalBuffer]" in text


@pytest.mark.skipif(not CASES, reason="../shared/corpus/timeloop is not beside the checkout")
def test_a_missing_ert_is_one_error_line(tmp_path: Path) -> None:
    case = CORPUS / "00-conv1d-1level"
    command = [sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(case / "input.yaml"),
               "--ert", str(tmp_path / "none.yaml"), "-p", "lower-to-loopnest"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "none.yaml" in done.stderr
