"""`map-search{arch=fusemax objective=latency budget=30 seed=0 workers=0
cluster="tcp://host:port" pareto=DIR}`: map every Einsum of every cascade automatically, the
cost model choosing.

The search (`search.py`) explores the mapping space (`space.py`): kernel boundaries, each
kernel's shared loops (tiling and order of the ranks its Einsums share, the iterative rank
among them: pipeline interleaving), each Einsum's unit, its own loops (partitioning of every
rank at every storage level, loop order, spatial axes) and the levels keeping each tensor,
and where each intermediate lives. Candidates are costed exactly, without lowering the
cascade (`evaluator.py`); the best is attached as `#einsum.mapping` attributes, then lowered
and costed the normal way, and the two costs must agree (a warning says so otherwise).

- `arch`: a built-in name or a YAML path (default: the module's attached architecture, as a
  Timeloop import has, else fusemax); the mapspace constraints a Timeloop import attaches are
  honoured.
- `objective`: `latency` (default), `energy` or `edp`.
- `budget`: seconds per cascade at most (default 30); the search usually converges sooner.
- `seed`: the seed of the search's restarts (default 0). The result depends on the seed only.
- `workers`: local processes evaluating candidates (default 0: one per CPU core; 1: this
  process only). `cluster="tcp://host:port"` (quoted in a pipeline) evaluates them on a Dask
  cluster instead.
- `pareto`: a directory to write the Pareto front (latency, energy, buffer) of the costed
  candidates to, as `pareto.csv` and `pareto.png`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.hardware import Architecture, ArchitectureError
from einsum_opt.hardware.attached import choose_architecture
from einsum_opt.transforms.map_search.candidates import (
    OBJECTIVES,
    Problem,
    Worker,
    module_text,
)
from einsum_opt.transforms.map_search.compose import Cost
from einsum_opt.transforms.map_search.constraints import Constraints, attached_constraints
from einsum_opt.transforms.map_search.evaluator import attach_plan
from einsum_opt.transforms.map_search.parallel import DaskCluster, Executor, InProcess, LocalPool
from einsum_opt.transforms.map_search.pareto import FrontPoint, front, write_front
from einsum_opt.transforms.map_search.progress import describe, progress_bar
from einsum_opt.transforms.map_search.search import Search, SearchResult

PASS = "map-search"


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"{PASS}: {message}")


def _executor(
    options: MapSearchPass, problem: Problem, worker: Worker
) -> Executor:
    if options.cluster is not None:
        return DaskCluster(problem, options.cluster, PASS)
    workers = options.workers or (os.cpu_count() or 1)
    if workers == 1:
        return InProcess(worker)
    return LocalPool(problem, workers)


def search_cascade(
    module: ModuleOp,
    cascade: CascadeOp,
    position: int,
    arch: Architecture,
    constraints: Constraints,
    options: MapSearchPass,
) -> tuple[SearchResult, Worker]:
    """Search the mapping of one cascade (not yet attached)."""
    problem = Problem(module_text(module), position, arch.to_yaml(), constraints, options.objective)
    worker = Worker(problem, cascade)
    executor = _executor(options, problem, worker)
    try:
        title = f"{PASS} @{cascade.cascade_name}"
        with progress_bar(title, options.budget, options.objective) as bar:
            search = Search(
                worker.space,
                executor,
                options.objective,
                options.budget,
                options.seed,
                bar,
                keep_points=options.pareto is not None,
            )
            result = search.run()
    finally:
        executor.close()
    if result is None:
        raise _fail(f"@{cascade.cascade_name} has no legal mapping on architecture '{arch.name}'")
    if not result.cost.feasible:
        raise _fail(
            f"no mapping of @{cascade.cascade_name} fits architecture '{arch.name}': the best "
            f"overflows its levels by {result.cost.overflow_bytes:,} bytes"
        )
    return result, worker


def _verify(cascade: CascadeOp, arch: Architecture, cost: Cost) -> str | None:
    """Lower and cost `cascade` (as mapped) the normal way; a message when the cost model
    disagrees with the search's cost."""
    from einsum_opt.costmodel.model import evaluate_module
    from einsum_opt.lowering.einsum_to_loopnest import lower_to_loopnest
    from einsum_opt.lowering.loopnest_to_dataflow import lower_cascade

    copy = cascade.clone()
    module = ModuleOp([])
    module.body.block.add_op(copy)
    lower_to_loopnest(copy)
    programs = lower_cascade(copy, arch, arch.name)
    holder = ModuleOp(programs)
    report = evaluate_module(holder, arch)
    if report.cycles != cost.cycles or report.energy_pj != cost.energy_pj:
        return (
            f"the cost model gives {report.cycles:,} cycles and {report.energy_pj!r} pJ, the "
            f"search {cost.cycles:,} cycles and {cost.energy_pj!r} pJ"
        )
    return None


def map_search(module: ModuleOp, options: MapSearchPass) -> None:
    """Map every cascade of `module` (see the module docstring)."""
    options.check()
    try:
        arch, _ = choose_architecture(options.arch, module)
    except ArchitectureError as error:
        raise _fail(str(error)) from None
    constraints = attached_constraints(module, PASS)
    points: list[FrontPoint] = []
    for position, cascade in enumerate(cascades_in(module)):
        result, worker = search_cascade(module, cascade, position, arch, constraints, options)
        plan = worker.space.realizer.realize(result.genome)
        exact = worker.evaluator.cost(plan, exact=True)
        attach_plan(cascade, plan)
        problem = _verify(cascade, arch, exact)
        if problem is not None:
            print(f"warning: {PASS}: @{cascade.cascade_name}: {problem}", file=sys.stderr)
        stats = result.stats
        rate = stats.candidates / stats.seconds if stats.seconds > 0 else 0.0
        ending = "converged" if stats.converged else "stopped by the budget"
        print(
            f"remark: {PASS}: @{cascade.cascade_name}: {describe(exact, options.objective)}, "
            f"{stats.candidates:,} candidates in {stats.seconds:.1f} s ({rate:,.0f}/s), "
            f"{ending}",
            file=sys.stderr,
        )
        if options.pareto is not None:
            costs = [c for c, _ in result.points]
            for i in front(costs):
                chosen = result.points[i][1] == result.genome
                seconds = arch.seconds(costs[i].latency)
                points.append(FrontPoint(cascade.cascade_name, costs[i], seconds, chosen))
    if options.pareto is not None:
        try:
            write_front(Path(options.pareto), points)
        except OSError as error:
            raise _fail(f"cannot write the Pareto front to {options.pareto}: {error}") from None


@dataclass(frozen=True)
class MapSearchPass(ModulePass):
    """Map every cascade automatically (`map-search{arch=fusemax objective=latency budget=30
    seed=0 workers=0 cluster="tcp://host:port" pareto=DIR}`; see `map_search_pass.py`)."""

    name = "map-search"
    arch: str | None = None
    objective: str = "latency"
    budget: int | float = 30
    seed: int = 0
    workers: int = 0
    cluster: str | None = None
    pareto: str | None = None

    def check(self) -> None:
        """PassFailedException naming the first bad option."""
        if self.objective not in OBJECTIVES:
            raise _fail(
                f"unknown objective '{self.objective}' (expected {', '.join(OBJECTIVES)})"
            )
        if not self.budget > 0:
            raise _fail(f"budget must be a positive number of seconds, got {self.budget}")
        if self.workers < 0:
            raise _fail(f"workers must be 0 (one per core) or more, got {self.workers}")
        if self.cluster is not None and "://" not in self.cluster:
            raise _fail(
                f"cluster must be a scheduler address such as tcp://host:8786, got "
                f"'{self.cluster}'"
            )
        if self.pareto is not None and Path(self.pareto).exists() and not Path(
            self.pareto
        ).is_dir():
            raise _fail(f"pareto={self.pareto} exists and is not a directory")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        map_search(op, self)
