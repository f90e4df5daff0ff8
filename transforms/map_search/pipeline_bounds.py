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
