"""Evaluating candidates: one worker's view of a search problem.

A `Problem` is everything a worker needs, as plain picklable data (the module's text, which
cascade, the architecture's YAML, the constraints, the objective), so that a worker in another
process or on a Dask cluster builds the same space and evaluator and gets the same numbers.
`Worker.evaluate` takes genomes and a bound: each is realized as a plan, pruned when a lower
bound on its objective (compute alone, no analysis) exceeds the bound, lowered, its homes
repaired (an illegal home moves to the deepest legal level), and costed exactly.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.hardware import Architecture
from einsum_opt.transforms.map_search.compose import Cost, KernelStructure
from einsum_opt.transforms.map_search.constraints import Constraints
from einsum_opt.transforms.map_search.evaluator import Evaluator, IllegalMapping
from einsum_opt.transforms.map_search.facts import CascadeFacts, cascade_facts
from einsum_opt.transforms.map_search.genome import Genome
from einsum_opt.transforms.map_search.legality import home_problem
from einsum_opt.transforms.map_search.plan import CascadeMap
from einsum_opt.transforms.map_search.space import Space

OBJECTIVES = ("latency", "energy", "edp")
"""What map-search minimises."""


def objective_value(cost: Cost, objective: str) -> float:
    """The value of `cost` under `objective`."""
    if objective == "latency":
        return cost.latency
    if objective == "energy":
        return cost.energy_pj
    return cost.energy_pj * cost.latency


def rank_key(cost: Cost, objective: str) -> tuple[float, ...]:
    """How candidates compare: fitting ones first (the others by how much they overflow),
    then the objective, then latency, energy and buffer as tie-breakers."""
    return (
        float(cost.overflow_bytes),
        objective_value(cost, objective),
        cost.latency,
        cost.energy_pj,
        float(cost.buffer_bytes),
    )


@dataclass(frozen=True)
class Problem:
    """A search problem as plain data (see the module docstring)."""

    module: str
    cascade: int
    arch: str
    constraints: Constraints
    objective: str


@dataclass(frozen=True)
class Outcome:
    """A costed candidate: its genome (homes repaired) and its cost."""

    genome: Genome
    cost: Cost


class Worker:
    """Builds a problem's space and evaluator once and evaluates candidates (see the module
    docstring); counts what it did."""

    def __init__(self, problem: Problem, cascade: CascadeOp | None = None):
        if cascade is None:
            from einsum_opt.frontends.loading import parse_mlir

            module = parse_mlir(problem.module, "map-search")
            cascade = cascades_in(module)[problem.cascade]
        arch = Architecture.from_yaml(problem.arch, source="map-search")
        self.objective = problem.objective
        self.facts: CascadeFacts = cascade_facts(cascade, arch, "map-search")
        self.space = Space(self.facts, arch, problem.constraints)
        self.evaluator = Evaluator(cascade, self.facts, arch)
        self.pruned = 0
        self.illegal = 0
        self._compute: dict[tuple[int, str], tuple[int, float]] = {}
        self._bounds: dict[int, tuple[object, int, int]] = {}
        self._homes: dict[tuple[object, ...], tuple[object, object, list[str]]] = {}
        self._touching: dict[tuple[str, tuple[int, ...]], tuple[int, ...]] = {}

    def evaluate(
        self, genomes: Sequence[Genome], bound: float | None
    ) -> list[Outcome | None]:
        """Each genome's outcome, None for one pruned by `bound` or illegal."""
        with fewer_collections():
            return [self.one(g, bound) for g in genomes]

    def one(self, genome: Genome, bound: float | None) -> Outcome | None:
        """One genome's outcome (see `evaluate`)."""
        plan = self.space.realizer.realize(genome)
        if bound is not None and self.lower_bound(genome, plan) > bound:
            self.pruned += 1
            return None
        try:
            genome, plan = self.repaired(genome, plan)
            cost = self.evaluator.cost(plan)
        except IllegalMapping:
            self.illegal += 1
            return None
        return Outcome(genome, cost)

    def repaired(self, genome: Genome, plan: CascadeMap) -> tuple[Genome, CascadeMap]:
        """`genome` with every intermediate tensor homed: one whose home a move left open, or
        whose home is illegal, goes to the deepest level it may legally live at (the root
        always is)."""
        structures = self.evaluator.structures(plan)
        pinned = dict(genome.homes)
        wanted = set(self.space.intermediates(genome))
        changed = False
        for members, structure in structures:
            for index in members:
                tensor = self.facts.einsums[index].name
                if tensor not in wanted:
                    continue
                home = pinned.get(tensor)
                if home == self.space.root:
                    continue
                legal = self._legal_homes(genome, plan, members, structure, tensor)
                if home is not None and home in legal:
                    continue
                genome = genome.with_home(tensor, legal[-1] if legal else self.space.root)
                changed = True
        if changed:
            plan = self.space.realizer.realize(genome)
        return genome, plan

    def _legal_homes(
        self,
        genome: Genome,
        plan: CascadeMap,
        members: Sequence[int],
        structure: object,
        tensor: str,
    ) -> list[str]:
        """The levels `tensor` may legally live at, root first (kept per the loops of the
        nests touching it and the kernel's structure)."""
        touching = self._touching.get((tensor, tuple(members)))
        if touching is None:
            touching = tuple(i for i in members if tensor in self.facts.einsums[i].tensors)
            self._touching[(tensor, tuple(members))] = touching
        loops = tuple(plan[i].loops for i in touching)
        assert isinstance(structure, KernelStructure)
        # What legality depends on: the touching nests' loops and the loops enclosing a
        # tensor's life (not the rest of the kernel's structure).
        life = (structure.repeat_loops, structure.pipeline_loops)
        units = tuple(plan[i].unit for i in touching)
        key = (tensor, tuple(id(lp) for lp in loops), units, life)
        kept = self._homes.get(key)
        # The key holds the loops' identities: the loops are kept with the entry, so they
        # cannot be freed and their identities reused.
        if kept is not None and kept[0] == loops:
            return kept[2]
        args = (self.facts, self.space.chains, plan, members, structure, tensor)
        options = self.space.home_options(genome, tensor)
        found = [lv for lv in options if lv == self.space.root or not home_problem(*args, lv)]
        if len(self._homes) > 200_000:
            self._homes.clear()
        self._homes[key] = (loops, life, found)
        return found

    def lower_bound(self, genome: Genome, plan: CascadeMap) -> float:
        """A bound below the objective, from compute alone: per kernel, the busiest unit's
        cycles; the compute energy of every point."""
        latency = 0
        energy = 0.0
        for kernel in genome.kernels:
            busy: dict[str, int] = {}
            for index in kernel.members:
                p = plan[index]
                kept = self._bounds.get(id(p))
                if kept is None or kept[0] is not p:
                    temporal = math.prod(lp.extent for lp in p.loops if lp.axis is None)
                    points = math.prod(lp.extent for lp in p.loops)
                    if len(self._bounds) > 200_000:
                        self._bounds.clear()
                    kept = self._bounds[id(p)] = (p, temporal, points)
                cycles, point_pj = self._unit_costs(index, p.unit)
                busy[p.unit] = busy.get(p.unit, 0) + kept[1] * cycles
                energy += kept[2] * point_pj
            latency += max(busy.values(), default=0)
        if self.objective == "latency":
            return float(latency)
        if self.objective == "energy":
            return energy
        return energy * latency

    def _unit_costs(self, index: int, unit: str) -> tuple[int, float]:
        """Cycles and energy of one invocation of Einsum `index` on `unit`."""
        key = (index, unit)
        found = self._compute.get(key)
        if found is None:
            arch = self.evaluator.arch
            ops = self.facts.einsums[index].ops
            found = self._compute[key] = (arch.cycles(unit, ops), arch.op_energy_pj(unit, ops))
        return found


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run with Python's cyclic garbage collector rarely: evaluating candidates allocates
    many short-lived objects beside large caches, and the collector's passes over those caches
    took a third of the time. What exists on entry is frozen out of the collector's view; the
    settings are restored on exit."""
    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], 50_000), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def module_text(module: ModuleOp) -> str:
    """A module as text a worker parses back (the generic form round-trips)."""
    from io import StringIO

    from xdsl.printer import Printer

    out = StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)
    return out.getvalue()
