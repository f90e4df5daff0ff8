"""map-search's fast evaluation against the normal path: a candidate mapping costed from its
nests' analyses (kept across candidates) and the kernels' programs rebuilt in closed form must
give exactly what `lower-to-loopnest,lower-to-dataflow` and the cost model give for the same
mapping (cycles and energy to the last bit), on the search's own candidates, on random ones
and on the hand mappings; and the closed-form pipeline bounds must equal the cost model's."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.costmodel.model import critical_path, recurrence_bound
from einsum_opt.dialects.dataflow import ComputeOp
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR
from einsum_opt.hardware import load_architecture
from einsum_opt.lowering.einsum_to_loopnest import default_level
from einsum_opt.lowering.placement import resolve_level
from einsum_opt.transforms.map_search.candidates import Problem, Worker, module_text
from einsum_opt.transforms.map_search.constraints import Constraints
from einsum_opt.transforms.map_search.evaluator import attach_plan
from einsum_opt.transforms.map_search.nest_eval import IllegalMapping
from einsum_opt.transforms.map_search.pipeline_bounds import PipelineGraph
from einsum_opt.transforms.map_search.plan import CascadeMap, from_attr

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

CASES = [
    ("attention/mha.einsum", "pass-fusion{rank=M tile=256}", {"B": 2, "H": 2}, "fusemax"),
    ("attention/3pass.einsum", "", {}, "flat"),
    ("attention/2pass.einsum", "", {"M": 512, "P": 256}, "fusemax"),
    ("layernorm.einsum", "pass-fusion", {}, "fusemax"),
    ("matmul_chain.einsum", "", {}, "edge"),
    ("softmax.einsum", "", {}, "flat"),
]


def _module(path: str, pipeline: str, sizes: dict[str, int]) -> ModuleOp:
    module = api.load(EXAMPLES / path)
    if sizes:
        api.set_rank_sizes(module, sizes)
    if pipeline:
        api.apply(module, pipeline)
    return module


def _lowered_cost(module: ModuleOp, plan: CascadeMap, arch: str) -> tuple[int, float]:
    mapped = module.clone()
    attach_plan(cascades_in(mapped)[0], plan)
    api.apply(mapped, f"lower-to-loopnest,lower-to-dataflow{{arch={arch}}}")
    report = api.cost(mapped, arch)
    return report.cycles, report.energy_pj


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_fast_cost_is_the_cost_models(case: tuple[str, str, dict[str, int], str]) -> None:
    path, pipeline, sizes, arch_name = case
    module = _module(path, pipeline, sizes)
    arch = load_architecture(arch_name)
    problem = Problem(module_text(module), 0, arch.to_yaml(), Constraints(), "latency")
    worker = Worker(problem, cascades_in(module)[0])
    rng = random.Random(7)
    genomes = [*worker.space.initial_genomes()][:4]
    genomes += [worker.space.random_genome(rng) for _ in range(4)]
    compared = 0
    for genome in genomes:
        plan = worker.space.realizer.realize(genome)
        try:
            genome, plan = worker.repaired(genome, plan)
            fast = worker.evaluator.cost(plan, exact=True)
        except IllegalMapping:
            continue
        assert (fast.cycles, fast.energy_pj) == _lowered_cost(module, plan, arch_name)
        approximate = worker.evaluator.cost(plan)
        assert approximate.cycles == fast.cycles
        assert approximate.energy_pj == pytest.approx(fast.energy_pj, rel=1e-12)
        compared += 1
    assert compared >= 4


def test_hand_mapping_costs_the_same_both_ways() -> None:
    """map-fusemax's mapping, read as a plan (`from_attr`), costs what its lowering costs."""
    module = _module("attention/mha.einsum", "pass-fusion{rank=M tile=256},map-fusemax", {
        "B": 4, "H": 2, "M": 4096, "P": 4096})
    cascade = cascades_in(module)[0]
    arch = load_architecture("fusemax")

    def level(unit: str, name: str) -> str:
        return arch.chain(unit)[resolve_level(arch, unit, name, "test")].name

    plans = []
    for op in cascade.einsums():
        plan = from_attr(
            op, op.attributes[MAPPING_ATTR], cascade.rank_sizes(), level,  # type: ignore[arg-type]
            lambda t, op=op: default_level(cascade, op, t),
        )
        assert plan is not None
        plans.append(plan)
    problem = Problem(module_text(module), 0, arch.to_yaml(), Constraints(), "latency")
    worker = Worker(problem, cascade)
    fast = worker.evaluator.cost(tuple(plans), exact=True)
    mapped = module.clone()
    api.apply(mapped, "lower-to-loopnest,lower-to-dataflow")
    report = api.cost(mapped, "fusemax")
    assert (fast.cycles, fast.energy_pj) == (report.cycles, report.energy_pj)
    assert fast.buffer_bytes == report.buffer_peak_bytes["GLB"]


def _stages(after: list[list[int]], carried: list[list[int]]) -> list[ComputeOp]:
    names = [f"S{i}" for i in range(len(after))]
    return [
        ComputeOp(names[i], "u", 1, 1, {"add": 1}, [1],
                  [names[d] for d in after[i]], [names[c] for c in carried[i]])
        for i in range(len(after))
    ]


@pytest.mark.parametrize("seed", range(40))
def test_pipeline_bounds_are_the_cost_models(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(1, 8)
    after = [[d for d in range(i) if rng.random() < 0.35] for i in range(n)]
    carried = [[c for c in range(n) if rng.random() < 0.2] for _ in range(n)]
    latency = [rng.randrange(0, 50) for _ in range(n)]
    stages = _stages(after, carried)
    by_name = {f"S{i}": latency[i] for i in range(n)}
    graph = PipelineGraph.build(after, carried)
    assert graph.critical_path(latency) == critical_path(stages, by_name)
    assert graph.recurrence_bound(latency) == recurrence_bound(stages, by_name)
    assert isinstance(graph.recurrence_bound(latency), Fraction)
