"""A pipeline's critical path and recurrence bound in closed form over a fixed graph.

The cost model (`costmodel.model`) computes, per pipeline, the longest chain of per-run
latencies through `after` edges (the critical path) and the recurrence bound R: the maximum
mean cycle (Karp) of the *segment graph*, whose edge b -> t, for a stage t waiting on stage s
of the previous iteration (`carried`), weighs the longest after-chain from b to s. For a fixed
graph, the cycles of the segment graph are fixed and only the latencies change from one
candidate to the next, so the elementary cycles are enumerated once and R is, for each
candidate, the largest mean weight over them (a maximum mean cycle is always attained by an
elementary cycle). Integers only: R is returned as an exact fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from einsum_opt.support.int64_rows import INT64_MAX, fill_rows, int64_array, rows_within


@dataclass(frozen=True)
class PipelineGraph:
    """Stages 0..n-1 of a pipeline: `after[i]`, the stages i waits for in the same iteration;
    `carried[i]`, those it waits for from the previous one."""

    after: tuple[tuple[int, ...], ...]
    carried: tuple[tuple[int, ...], ...]
    order: tuple[int, ...]
    """A topological order of the after edges."""
    reach: tuple[frozenset[int], ...]
    """reach[b]: the stages an after-chain from b reaches (b included)."""
    cycles: tuple[tuple[int, ...], ...]
    """The elementary cycles of the segment graph, as their node sequences."""

    @staticmethod
    def build(after: Sequence[Sequence[int]], carried: Sequence[Sequence[int]]) -> PipelineGraph:
        """The graph with its order, reachability and segment cycles (kept: candidates of one
        kernel mostly share their pipeline's graph)."""
        key = (tuple(map(tuple, after)), tuple(map(tuple, carried)))
        found = _GRAPHS.get(key)
        if found is None:
            if len(_GRAPHS) > 10_000:
                _GRAPHS.clear()
            found = _GRAPHS[key] = PipelineGraph._build(*key)
        return found

    @staticmethod
    def _build(
        after: Sequence[Sequence[int]], carried: Sequence[Sequence[int]]
    ) -> PipelineGraph:
        n = len(after)
        order = _topological(after)
        successors: list[list[int]] = [[] for _ in range(n)]
        for node, deps in enumerate(after):
            for dep in deps:
                successors[dep].append(node)
        reach = []
        for start in range(n):
            seen = {start}
            stack = [start]
            while stack:
                for nxt in successors[stack.pop()]:
                    if nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
            reach.append(frozenset(seen))
        edges: dict[int, set[int]] = {b: set() for b in range(n)}
        for target, sources in enumerate(carried):
            for source in sources:
                for begin in range(n):
                    if source in reach[begin]:
                        edges[begin].add(target)
        return PipelineGraph(
            tuple(tuple(a) for a in after),
            tuple(tuple(c) for c in carried),
            order,
            tuple(reach),
            _elementary_cycles(n, edges),
        )

    def critical_path(self, latency: Sequence[int]) -> int:
        """The longest chain of latencies through after edges."""
        end = [0] * len(latency)
        best = 0
        after = self.after
        for node in self.order:
            wait = 0
            for d in after[node]:
                if end[d] > wait:
                    wait = end[d]
            total = end[node] = latency[node] + wait
            if total > best:
                best = total
        return best

    def recurrence_bound(self, latency: Sequence[int]) -> Fraction:
        """R: the largest mean segment weight over the cycles of the segment graph (0 without
        cycles)."""
        if not self.cycles:
            return Fraction(0)
        weight: dict[tuple[int, int], int] = {}
        longest: dict[int, list[int | None]] = {}
        for cycle in self.cycles:
            for begin in cycle:
                if begin not in longest:
                    longest[begin] = self._longest_from(begin, latency)
        best_num, best_den = 0, 1
        for cycle in self.cycles:
            total = 0
            for k, begin in enumerate(cycle):
                target = cycle[(k + 1) % len(cycle)]
                key = (begin, target)
                if key not in weight:
                    row = longest[begin]
                    weight[key] = max(
                        w for s in self.carried[target] if (w := row[s]) is not None
                    )
                total += weight[key]
            if total * best_den > best_num * len(cycle):
                best_num, best_den = total, len(cycle)
        return Fraction(best_num, best_den)

    def critical_paths(self, latency: object) -> np.ndarray:
        """`critical_path` of every row of `latency` (N rows, one int column per stage), as
        int64. Rows with a negative latency or latencies so large that int64 could overflow
        are computed by `critical_path` itself; an OverflowError when a path does not fit."""
        table = self._latency_table(latency, "critical_paths")
        out = np.zeros(table.shape[0], dtype=np.int64)
        fast = self._fast_rows(table, len(self.order))
        fill_rows(out, np.flatnonzero(~fast), lambda r: self.critical_path(table[r].tolist()))
        if fast.any():
            rows = table[fast]
            ends: dict[int, np.ndarray] = {}
            best = np.zeros(rows.shape[0], dtype=np.int64)
            for node in self.order:
                total = rows[:, node]
                if self.after[node]:
                    total = total + np.maximum.reduce([ends[d] for d in self.after[node]])
                ends[node] = total
                best = np.maximum(best, total)
            out[fast] = best
        return out

    def recurrence_bounds(self, latency: object) -> tuple[np.ndarray, np.ndarray]:
        """`recurrence_bound` of every row of `latency` (N rows, one int column per stage) as
        (numerators, denominators), int64, in lowest terms (0 is 0 / 1). Rows with a negative
        latency or latencies so large that int64 could overflow are computed by
        `recurrence_bound` itself; an OverflowError when a bound does not fit."""
        table = self._latency_table(latency, "recurrence_bounds")
        rows_in = table.shape[0]
        numerators = np.zeros(rows_in, dtype=np.int64)
        denominators = np.ones(rows_in, dtype=np.int64)
        if not self.cycles:
            return numerators, denominators
        longest = max(map(len, self.cycles))
        fast = self._fast_rows(table, len(self.order) * longest * longest)

        def numerator(r: int) -> int:
            bound = self.recurrence_bound(table[r].tolist())
            denominators[r] = bound.denominator  # at most a cycle's length
            return bound.numerator

        fill_rows(numerators, np.flatnonzero(~fast), numerator)
        if fast.any():
            num, den = self._recurrence_fast(table[fast])
            numerators[fast], denominators[fast] = num, den
        return numerators, denominators

    def _recurrence_fast(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`recurrence_bounds` of rows whose sums and cross products stay within int64: the
        weight of each segment edge once, then each cycle's total against the best mean so
        far by cross-multiplication, as `recurrence_bound` does."""
        chains = {begin: self._longest_rows(begin, rows) for begin in self._segment_begins}
        weights = {
            (begin, target): np.maximum.reduce([chains[begin][s] for s in sources])
            for (begin, target), sources in self._segment_sources.items()
        }
        best_num = np.zeros(rows.shape[0], dtype=np.int64)
        best_den = np.ones(rows.shape[0], dtype=np.int64)
        for cycle in self.cycles:
            total = np.add.reduce(
                [weights[(b, cycle[(k + 1) % len(cycle)])] for k, b in enumerate(cycle)]
            )
            better = total * best_den > best_num * len(cycle)
            best_num = np.where(better, total, best_num)
            best_den = np.where(better, len(cycle), best_den)
        common = np.gcd(best_num, best_den)
        return best_num // common, best_den // common

    def _longest_rows(self, begin: int, rows: np.ndarray) -> dict[int, np.ndarray]:
        """`_longest_from(begin)` of every row, for the stages it reaches (latencies are not
        negative, so every stage an after-chain reaches gets a length)."""
        reach = self.reach[begin]
        best = {begin: rows[:, begin]}
        for node in self.order:
            if node == begin or node not in reach:
                continue
            top = np.maximum.reduce([best[d] for d in self.after[node] if d in best])
            best[node] = top + rows[:, node]
        return best

    @cached_property
    def _segment_begins(self) -> tuple[int, ...]:
        return tuple(sorted({begin for cycle in self.cycles for begin in cycle}))

    @cached_property
    def _segment_sources(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """Each edge b -> t of the segment graph's cycles: the stages t waits for from the
        previous iteration that an after-chain from b reaches."""
        sources: dict[tuple[int, int], tuple[int, ...]] = {}
        for cycle in self.cycles:
            for k, begin in enumerate(cycle):
                target = cycle[(k + 1) % len(cycle)]
                sources[(begin, target)] = tuple(
                    s for s in self.carried[target] if s in self.reach[begin]
                )
        return sources

    def _latency_table(self, latency: object, what: str) -> np.ndarray:
        table = int64_array(latency, f"{what}: latency", 2)
        if table.shape[1] != len(self.order):
            raise ValueError(
                f"{what}: latency has {table.shape[1]} columns for {len(self.order)} stages"
            )
        return table

    @staticmethod
    def _fast_rows(table: np.ndarray, factor: int) -> np.ndarray:
        """Rows whose latencies are not negative and at most INT64_MAX / `factor` (a bound on
        how many latencies a sum, times a cycle length, adds up)."""
        return rows_within(table, 0, INT64_MAX // max(factor, 1))

    def _longest_from(self, begin: int, latency: Sequence[int]) -> list[int | None]:
        """The longest after-chain from `begin` to every stage (None: unreachable), both
        ends' latencies included."""
        best: list[int | None] = [None] * len(latency)
        best[begin] = latency[begin]
        reach = self.reach[begin]
        after = self.after
        for node in self.order:
            if node == begin or node not in reach:
                continue
            top = -1
            for d in after[node]:
                b = best[d]
                if b is not None and b > top:
                    top = b
            if top >= 0:
                best[node] = top + latency[node]
        return best


def _topological(after: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Stages ordered so that every stage comes after those it waits for."""
    n = len(after)
    state = [0] * n
    out: list[int] = []

    def visit(node: int) -> None:
        if state[node] == 2:
            return
        if state[node] == 1:
            raise ValueError("the after edges of a pipeline form a cycle")
        state[node] = 1
        for dep in after[node]:
            visit(dep)
        state[node] = 2
        out.append(node)

    for node in range(n):
        visit(node)
    return tuple(out)


def _elementary_cycles(n: int, edges: dict[int, set[int]]) -> tuple[tuple[int, ...], ...]:
    """Every elementary cycle of a small directed graph, each listed once, starting from its
    smallest node."""
    cycles: list[tuple[int, ...]] = []
    for start in range(n):
        stack: list[tuple[int, list[int]]] = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges[node]):
                if nxt == start:
                    cycles.append(tuple(path))
                elif nxt > start and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return tuple(cycles)


_GRAPHS: dict[tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]], PipelineGraph] = {}
