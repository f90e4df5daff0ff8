"""`map-search`: every cascade gets a complete, legal mapping chosen by the cost model; the
result depends on the seed only (one process, two, or a Dask cluster); the Pareto front is
written; bad options are one-line errors. Searches here are small (seconds)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.transforms.map_search.map_search_pass import MapSearchPass, map_search
from einsum_opt.transforms.map_search.pareto import COLUMNS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
INPUTS = Path(__file__).resolve().parent / "map_search"


def _load(path: Path, sizes: dict[str, int] | None = None, pipeline: str = "") -> ModuleOp:
    module = api.load(path)
    if sizes:
        api.set_rank_sizes(module, sizes)
    if pipeline:
        api.apply(module, pipeline)
    return module


def _searched(module: ModuleOp, **options: object) -> ModuleOp:
    mapped = module.clone()
    map_search(mapped, MapSearchPass(**{"workers": 1, "budget": 20, **options}))  # type: ignore[arg-type]
    return mapped


def _mappings(module: ModuleOp) -> list[str]:
    return [str(op.attributes[MAPPING_ATTR]) for c in cascades_in(module) for op in c.einsums()]


@pytest.fixture(scope="module")
def attention() -> tuple[ModuleOp, ModuleOp]:
    """The 1-pass attention cascade (2 heads, 1K tokens) and its map-search mapping."""
    module = _load(EXAMPLES / "attention" / "mha.einsum", {"B": 1, "H": 2}, "pass-fusion")
    return module, _searched(module, arch="fusemax", budget=8)


def test_attention_is_mapped_completely_and_beats_the_hand_mapping(
    attention: tuple[ModuleOp, ModuleOp],
) -> None:
    module, mapped = attention
    for op in cascades_in(mapped)[0].einsums():
        assert isinstance(op.attributes.get(MAPPING_ATTR), MappingAttr), op.tensor_name
    lowered = mapped.clone()
    api.apply(lowered, "lower-to-loopnest")
    api.check_equivalent(module, lowered, rtol=1e-4)
    api.apply(lowered, "lower-to-dataflow")
    searched = api.cost(lowered, "fusemax")
    hand = module.clone()
    api.apply(hand, "map-fusemax,lower-to-loopnest,lower-to-dataflow")
    reference = api.cost(hand, "fusemax")
    assert searched.cycles <= reference.cycles
    assert not searched.buffer_overflow
    assert searched.utilization["pe2d"] > 0.95


def test_the_search_reports_what_it_did() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(EXAMPLES / "softmax.einsum"),
         "-p", "map-search{budget=5 workers=1},lower-to-loopnest,lower-to-dataflow", "-t",
         "cost-json"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    (remark,) = [line for line in done.stderr.splitlines() if line.startswith("remark:")]
    assert "map-search: @softmax: best:" in remark and "candidates in" in remark
    assert json.loads(done.stdout)["cycles"] > 0


def test_the_result_depends_on_the_seed_only() -> None:
    """One process, two processes and a local Dask cluster give the same mapping."""
    distributed = pytest.importorskip("distributed")
    module = _load(EXAMPLES / "softmax.einsum", {"M": 256, "P": 64})
    one = _mappings(_searched(module, arch="edge", seed=3))
    two = _mappings(_searched(module, arch="edge", seed=3, workers=2))
    assert one == two
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        on_cluster = _mappings(_searched(module, arch="edge", seed=3, cluster=address))
    assert one == on_cluster


CASCADES = [
    *[(p, False) for p in sorted(EXAMPLES.glob("*.einsum"))],
    *[(p, False) for p in sorted((EXAMPLES / "attention").glob("*.einsum"))],
    *[(p, False) for p in sorted(INPUTS.glob("*.einsum"))],
    # What pass-fusion leaves: running values over a split rank, per element (2-pass), a
    # scalar running count (Welford), a cascade output per element (softmax).
    *[(EXAMPLES / f, True) for f in ("layernorm.einsum", "softmax.einsum", "logsumexp.einsum")],
    *[(EXAMPLES / "attention" / f, True) for f in ("3pass.einsum", "mha.einsum")],
    *[(INPUTS / f, True) for f in ("masked.einsum", "logsoftmax.einsum", "decode.einsum")],
]


EXECUTED_SIDE = 256
"""The largest rank size at which `test_every_cascade...` runs a cascade: the loop-nest
interpreter executes the mapped nests point by point, and at the examples' own sizes (1K keys
x 512 queries x 8 heads) one of them alone takes 40 s. The search at full size is tested on
attention below."""


def _executable_sizes(path: Path) -> dict[str, int]:
    """The cascade's ranks larger than EXECUTED_SIDE, cut to it."""
    return {
        rank: EXECUTED_SIDE
        for cascade in cascades_in(api.load(path))
        for rank, size in cascade.rank_sizes().items()
        if size > EXECUTED_SIDE
    }


@pytest.mark.parametrize(
    "path, fused", CASCADES, ids=lambda c: c.stem if isinstance(c, Path) else str(c)
)
def test_every_cascade_maps_lowers_costs_and_runs(path: Path, fused: bool) -> None:
    module = _load(path, _executable_sizes(path), pipeline="pass-fusion" if fused else "")
    mapped = _searched(module, budget=1)
    lowered = mapped.clone()
    api.apply(lowered, "lower-to-loopnest")
    api.check_equivalent(module, lowered, rtol=1e-4)
    api.apply(lowered, "lower-to-dataflow")
    report = api.cost(lowered, "fusemax")
    assert report.cycles > 0 and not report.buffer_overflow


def test_pareto_front_is_written(tmp_path: Path) -> None:
    module = _load(EXAMPLES / "matmul_chain.einsum")
    _searched(module, arch="edge", budget=5, pareto=str(tmp_path / "front"))
    with open(tmp_path / "front" / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == list(COLUMNS)
    assert sum(int(r["chosen"]) for r in rows) == 1
    latencies = [int(r["latency_cycles"]) for r in rows]
    assert latencies == sorted(latencies)
    for a in rows:
        for b in rows:
            if a is not b:
                worse = [float(a[k]) >= float(b[k]) for k in ("latency_s", "energy_pj", "buffer_bytes")]
                assert not all(worse) or a == b, "a dominated point is on the front"
    assert (tmp_path / "front" / "pareto.png").stat().st_size > 0


@pytest.mark.parametrize(
    "options, message",
    [
        ({"objective": "speed"}, "unknown objective 'speed'"),
        ({"budget": 0}, "budget must be a positive number of seconds"),
        ({"workers": -1}, "workers must be 0"),
        ({"cluster": "localhost"}, "cluster must be a scheduler address"),
        ({"arch": "no-such-arch"}, "no-such-arch"),
    ],
)
def test_bad_options_are_errors(options: dict[str, object], message: str) -> None:
    module = _load(EXAMPLES / "softmax.einsum")
    with pytest.raises(PassFailedException, match=message):
        _searched(module, **options)


def test_an_einsum_no_unit_can_run_is_an_error() -> None:
    """A one-unit architecture with only multiply-accumulate cannot run a softmax."""
    arch = INPUTS / "mac_only.yaml"
    module = _load(EXAMPLES / "softmax.einsum")
    with pytest.raises(PassFailedException, match="einsum GM needs the operations max, and no unit"):
        _searched(module, arch=str(arch))


def test_command_line_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "einsum_opt.tools.einsum_opt", str(EXAMPLES / "softmax.einsum"),
         "-p", "map-search{objective=fast}"],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: map-search: unknown objective 'fast' (expected latency, energy, edp)"
    ]


def test_a_kept_chain_left_from_an_earlier_home_no_longer_applies() -> None:
    """A genome's kept chain for a tensor whose home has since changed (repaired, or the
    tensor now crosses kernels) is not realized: the attached mapping verifies and lowers.
    (An EDP search on FLAT's 3-pass cascade once attached one and failed verification.)"""
    from einsum_opt.hardware import load_architecture
    from einsum_opt.transforms.map_search.candidates import Problem, Worker, module_text
    from einsum_opt.transforms.map_search.constraints import Constraints
    from einsum_opt.transforms.map_search.evaluator import attach_plan
    from einsum_opt.transforms.map_search.genome import OwnPlan

    module = _load(EXAMPLES / "attention" / "3pass.einsum")
    arch = load_architecture("flat")
    worker = Worker(Problem(module_text(module), 0, arch.to_yaml(), Constraints(), "edp"))
    genome = next(iter(worker.space.initial_genomes()))
    plan = worker.space.realizer.realize(genome)
    index = next(e.index for e in worker.facts.einsums if not e.view)
    tensor = worker.facts.einsums[index].name
    own = genome.own[index]
    assert own is not None
    names = worker.space.chains[own.unit].names()
    stale = next(n for n in names if n != plan[index].home(tensor))
    chain = (stale, *[n for n in names if n != stale][-1:])
    genome = genome.with_own(index, OwnPlan(own.unit, own.loops, ((tensor, chain),)))
    realized = worker.space.realizer.realize(genome)
    assert tensor not in dict(realized[index].keeps)
    mapped = module.clone()
    attach_plan(cascades_in(mapped)[0], realized)
    api.apply(mapped, "lower-to-loopnest,lower-to-dataflow{arch=flat}")
