"""map-search on Timeloop inputs: a mapper's input (no mapping) is imported with its
architecture and mapspace constraints, and map-search honours them. Every case of
`../shared/corpus/timeloop/` becomes a mapper input whose constraints are its own mapping's
directives: the search must find exactly that mapping (Timeloop's published cycles and
energy); without the constraints it must do at least as well on energy-delay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from timeloop_stats import read_stats

from einsum_opt.frontends.timeloop_spec import load_timeloop_spec

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "timeloop"
CASES = sorted(p for p in CORPUS.glob("0*") if (p / "input.yaml").exists())


def _mapper_input(case: Path, directory: Path, constrained: bool) -> Path:
    """The case as a mapper's input: no mapping; constrained, its mapping's directives as
    constraints, plus keeping every data space where the mapping keeps them by default (a
    level without a bypass directive keeps everything)."""
    data = yaml.safe_load((case / "input.yaml").read_text())
    directives = data.pop("mapping")
    spaces = [s["name"] for s in data["problem"]["shape"]["data_spaces"]]
    bypassed = {d["target"] for d in directives if d["type"] in ("bypass", "datatype")}
    targets = {d["target"] for d in directives}
    keep_all = [
        {"target": t, "type": "bypass", "keep": spaces} for t in sorted(targets - bypassed)
    ]
    data["architecture_constraints"] = {"targets": directives + keep_all if constrained else []}
    path = directory / "input.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _search(case: Path, path: Path, budget: int = 10) -> dict[str, Any]:
    """The cost report (JSON) of the input at `path`, with `case`'s ERT and ART, mapped for
    the least energy-delay product."""
    command = [
        sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(path),
        "--ert", str(case / "ERT.yaml"), "--art", str(case / "ART.yaml"),
        "-p", f"map-search{{objective=edp budget={budget} workers=1}},lower-to-loopnest,"
        "lower-to-dataflow",
        "-t", "cost-json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    # map-search warns when its own cost of the mapping differs from the cost model's.
    assert "warning" not in done.stderr, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(not CASES, reason="../shared/corpus/timeloop is not beside the checkout")
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_constraints_that_fix_the_mapping_give_timeloops_numbers(case: Path, tmp_path: Path) -> None:
    stats = read_stats(case / "ref.stats.txt")
    report = _search(case, _mapper_input(case, tmp_path, constrained=True))
    assert report["cycles"] == stats.cycles
    expected = stats.fj_per_compute["Total"] * stats.computes / 1000
    assert report["energy_pj"] == pytest.approx(expected, rel=1e-3)


@pytest.mark.skipif(not CASES, reason="../shared/corpus/timeloop is not beside the checkout")
@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_a_free_search_is_at_least_as_good(case: Path, tmp_path: Path) -> None:
    stats = read_stats(case / "ref.stats.txt")
    report = _search(case, _mapper_input(case, tmp_path, constrained=False))
    given = stats.cycles * stats.fj_per_compute["Total"] * stats.computes / 1000
    # The published energy is rounded to Timeloop's printed precision.
    assert report["cycles"] * report["energy_pj"] <= given * (1 + 1e-3)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "timeloop"


def test_a_node_form_input_without_a_mapping_is_a_mapper_input() -> None:
    # examples/timeloop/gemm-mapper: ../gemm without its mapping, its nodes constraining it.
    path = EXAMPLES / "gemm-mapper" / "input.yaml"
    spec = load_timeloop_spec(path)
    assert spec.mapping is None
    fanout = spec.constraints.of("inter_PE_spatial")
    assert fanout is not None and dict(fanout.spatial) == {"M": 16, "N": 16}
    assert (fanout.spatial_x, fanout.spatial_y) == ({"M"}, {"N"})
    rf = spec.constraints.of("RF")
    assert rf is not None and (rf.keep, rf.bypass) == ({"Z"}, {"A", "B"})
    report = _search(EXAMPLES / "gemm", path, budget=5)
    # The hand mapping of ../gemm (1,024 cycles, 1,179,460 pJ) is within the constraints.
    assert report["cycles"] <= 1024
    assert report["cycles"] * report["energy_pj"] <= 1024 * 1_179_460 * (1 + 1e-9)
