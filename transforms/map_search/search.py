"""The search: deterministic rounds of candidates, best-improvement hill climbing with seeded
restarts, within a time budget.

1. The initial genomes (`Space.initial_genomes`) are evaluated; the best is the incumbent.
2. A round evaluates every unseen neighbour of the incumbent (`moves.neighbours`), pruning
   those whose compute-only lower bound exceeds the incumbent's objective, and then a batch of
   re-tilings (`batch_eval.retiling_batch`: up to `BATCH_ROWS` combinations of the Einsums'
   own loops with other trips, drawn with the seed when there are more, costed together) of
   the incumbent and of the round's `SWEPT_NEIGHBOURS` best neighbours (a genome with fewer
   than `BATCH_MIN` re-tilings gets no batch); the best improving
   candidate (ties: the first in the fixed order, neighbours before the batches) becomes the
   incumbent, until none improves.
3. Then, `restarts` times, a perturbation of the best (a few neighbours drawn with the seed)
   is climbed the same way.

Every round's candidates and bound are fixed before it starts and its outcomes are merged in
candidate order, so the result depends on the seed only, not on the workers. The budget is
checked between rounds (a round that would end after it, judging by the last one, is not
started): a search stopped by it says so (its result may then depend on speed).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from einsum_opt.transforms.map_search.batch_eval import retiling_batch
from einsum_opt.transforms.map_search.candidates import (
    Outcome,
    objective_value,
    rank_key,
)
from einsum_opt.transforms.map_search.compose import Cost
from einsum_opt.transforms.map_search.genome import Genome
from einsum_opt.transforms.map_search.moves import neighbours
from einsum_opt.transforms.map_search.parallel import Executor
from einsum_opt.transforms.map_search.space import Space

RESTARTS = 24
"""Climbs after the first one converges, at most; the search stops sooner after `PATIENCE`
restarts in a row that do not improve the best."""

PATIENCE = 3
"""Restarts in a row without improvement that end the search."""

PERTURBATION = 3
"""Random moves in one perturbation."""

BATCH_ROWS = 8192
"""Re-tilings of the incumbent costed together in each round, at most."""

BATCH_MIN = 256
"""Fewer re-tilings than this are not worth a batch (its fixed cost, the options' new nests,
is then most of it): a genome with fewer is left to the rounds' one-step moves."""

SWEPT_NEIGHBOURS = 3
"""The round's best neighbours whose re-tilings are costed too (beside the incumbent's)."""

RANDOM_STARTS = 32
"""Random genomes (drawn with the seed) evaluated beside the constructed ones; each later
restart climbs from the best start not yet climbed, or from a perturbation of the best."""


@dataclass
class SearchStats:
    """What a search did."""

    candidates: int = 0
    """Candidates costed exactly."""
    batched: int = 0
    """Of those, candidates costed together in batches of re-tilings."""
    pruned: int = 0
    """Candidates pruned by their lower bound (or illegal) before being costed."""
    analysed: int = 0
    """Nests analysed (the candidates share the rest)."""
    rounds: int = 0
    seconds: float = 0.0
    converged: bool = True
    """False when the budget stopped the search."""


@dataclass
class SearchResult:
    """The best genome found, its cost, the costed candidates that fit (for the Pareto
    front) and the statistics."""

    genome: Genome
    cost: Cost
    stats: SearchStats
    points: list[tuple[Cost, Genome]] = field(default_factory=list)


Progress = Callable[[SearchStats, Cost | None], None]
"""Called after every round with the statistics and the best cost so far."""


class Search:
    """One search of one cascade's mapping space (see the module docstring)."""

    def __init__(
        self,
        space: Space,
        executor: Executor,
        objective: str,
        budget: float,
        seed: int,
        progress: Progress | None = None,
        keep_points: bool = False,
        batch_rows: int = BATCH_ROWS,
    ):
        self.space = space
        self.executor = executor
        self.objective = objective
        self.budget = budget
        self.rng = random.Random(seed)
        self.progress = progress
        self.keep_points = keep_points
        self.batch_rows = batch_rows
        self.stats = SearchStats()
        self.seen: set[Genome] = set()
        self.best: Outcome | None = None
        self.points: list[tuple[Cost, Genome]] = []
        self.start = 0.0
        self.last_round = 0.0

    def run(self) -> SearchResult | None:
        """Search; None when no candidate is legal."""
        self.start = time.monotonic()
        initial = list(dict.fromkeys(self.space.initial_genomes()))
        drawn = [self.space.random_genome(self.rng) for _ in range(RANDOM_STARTS)]
        starts = list(dict.fromkeys([*initial, *drawn]))
        self.seen.update(starts)
        outcomes = self._evaluate(starts, bound=None)
        ranked = sorted(
            (o for o in outcomes if o is not None),
            key=lambda o: rank_key(o.cost, self.objective),
        )
        if not ranked:
            return None
        self.best = ranked[0]
        self._climb(ranked[0])
        idle = 0
        for restart in range(RESTARTS):
            if self._out_of_time() or idle >= PATIENCE:
                break
            assert self.best is not None
            before = self.best.cost
            if restart // 2 + 1 < len(ranked) and restart % 2 == 0:
                start: Outcome | None = ranked[restart // 2 + 1]
            else:
                start = self._perturbed(self.best.genome)
            if start is not None:
                self._climb(start)
            idle = idle + 1 if not self._better(self.best.cost, before) else 0
        self.stats.seconds = time.monotonic() - self.start
        assert self.best is not None
        return SearchResult(self.best.genome, self.best.cost, self.stats, self.points)

    def _climb(self, start: Outcome) -> None:
        current = start
        while not self._out_of_time():
            candidates = [g for g in neighbours(self.space, current.genome) if g not in self.seen]
            candidates = list(dict.fromkeys(candidates))
            self.seen.update(candidates)
            bound = self._bound(current.cost)
            ranked = self._ranked(candidates, bound)
            found = ranked[0] if ranked else None
            # Re-tile the incumbent and the round's best few: a structural move may pay off
            # only with other trips.
            for around in [current, *ranked[: SWEPT_NEIGHBOURS]]:
                swept = self._sweep(around.genome)
                if swept is not None and (found is None or self._better(swept.cost, found.cost)):
                    found = swept
            if found is None or not self._better(found.cost, current.cost):
                return
            current = found

    def _perturbed(self, genome: Genome) -> Outcome | None:
        """A few random moves away from `genome` (drawn with the seed), evaluated."""
        for _ in range(PERTURBATION):
            options = list(neighbours(self.space, genome))
            if not options:
                break
            genome = options[self.rng.randrange(len(options))]
        if genome in self.seen:
            return None
        self.seen.add(genome)
        return self._round([genome], bound=None)

    def _round(self, genomes: Sequence[Genome], bound: float | None) -> Outcome | None:
        """Evaluate `genomes`; the best outcome (also recorded as the search's best if it is)."""
        if not genomes:
            return None
        outcomes = self._evaluate(genomes, bound)
        best: Outcome | None = None
        for outcome in outcomes:
            if outcome is not None and (best is None or self._better(outcome.cost, best.cost)):
                best = outcome
        return best

    def _ranked(self, genomes: Sequence[Genome], bound: float | None) -> list[Outcome]:
        """Evaluate `genomes` (one round); the outcomes, best first (ties: in order)."""
        if not genomes:
            return []
        outcomes = [o for o in self._evaluate(genomes, bound) if o is not None]
        return sorted(outcomes, key=lambda o: rank_key(o.cost, self.objective))

    def _sweep(self, genome: Genome) -> Outcome | None:
        """Cost the re-tilings of `genome` together; the best of those not seen before (also
        recorded as the search's best if it is)."""
        if self._out_of_time():
            return None
        batch = retiling_batch(self.space, genome, self.batch_rows, self.rng)
        if batch is None or batch.rows < BATCH_MIN:
            return None
        began = time.monotonic()
        outcomes, analysed = self.executor.map_batch(batch)
        self.last_round += time.monotonic() - began
        # Rows already seen (rare: batches around different genomes seldom meet) are not
        # counted again; a row the batch skipped stays unseen, for a round to cost alone.
        costed = [o for o in outcomes if o is not None and o.genome not in self.seen]
        self.seen.update(o.genome for o in costed)
        self.stats.batched += len(costed)
        return self._merged(costed, analysed)

    def _evaluate(self, genomes: Sequence[Genome], bound: float | None) -> list[Outcome | None]:
        """Evaluate `genomes` (one round), recording the statistics, the points and the
        search's best."""
        began = time.monotonic()
        outcomes, analysed = self.executor.map(genomes, bound)
        self.last_round = time.monotonic() - began
        self.stats.rounds += 1
        self._merged(outcomes, analysed)
        return outcomes

    def _merged(self, outcomes: Sequence[Outcome | None], analysed: int) -> Outcome | None:
        """Record evaluated outcomes (statistics, points, the search's best); the best."""
        self.stats.analysed += analysed
        best: Outcome | None = None
        for outcome in outcomes:
            if outcome is None:
                self.stats.pruned += 1
                continue
            self.stats.candidates += 1
            if self.keep_points and outcome.cost.feasible:
                self.points.append((outcome.cost, outcome.genome))
            if best is None or self._better(outcome.cost, best.cost):
                best = outcome
        if best is not None and (self.best is None or self._better(best.cost, self.best.cost)):
            self.best = best
        if self.progress is not None:
            self.progress(self.stats, None if self.best is None else self.best.cost)
        return best

    def _better(self, a: Cost, b: Cost) -> bool:
        return rank_key(a, self.objective) < rank_key(b, self.objective)

    def _bound(self, cost: Cost) -> float | None:
        """The pruning bound of a round: the incumbent's objective, when it fits."""
        return objective_value(cost, self.objective) if cost.feasible else None

    def _out_of_time(self) -> bool:
        """Whether another round would end after the budget (judged by the last round)."""
        out = time.monotonic() - self.start + self.last_round > self.budget
        if out:
            self.stats.converged = False
        return out
