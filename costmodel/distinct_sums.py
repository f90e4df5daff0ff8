"""How many distinct points `Σ_k i_k · step_k` a box of indices `0 ≤ i_k < extent_k` reaches.

The multicast of a spatial fan-out: every instance of the fan-out receives the same delta moved
by its own offset, and instances whose offsets coincide share one read (Timeloop compares the
deltas exactly). Closed forms cover what mappings produce (independent tensor dimensions, two
loops on one dimension such as a sliding window `r + p`); anything else is counted with
bit sets whose length is the span of the offsets, not the number of instances."""

from __future__ import annotations

import math
from collections.abc import Sequence

Step = tuple[int, ...]


def distinct_sums(extents: Sequence[int], steps: Sequence[Step]) -> int:
    """The number of distinct `Σ i_k · steps[k]` over `0 ≤ i_k < extents[k]`."""
    loops = [(e, s) for e, s in zip(extents, steps, strict=True) if e > 1 and any(s)]
    loops = _merge_collinear(loops)
    total = 1
    for component in _components(loops):
        total *= _component_count(component)
    return total


def _merge_collinear(loops: list[tuple[int, Step]]) -> list[tuple[int, Step]]:
    """Fold a loop whose step is another's step times that one's extent (two loops over the
    same dimension) into one loop over the product."""
    merged = True
    while merged:
        merged = False
        for a, (ea, sa) in enumerate(loops):
            for b, (eb, sb) in enumerate(loops):
                if a != b and sb == tuple(ea * x for x in sa):
                    loops = [lp for k, lp in enumerate(loops) if k not in (a, b)]
                    loops.append((ea * eb, sa))
                    merged = True
                    break
            if merged:
                break
    return loops


def _components(loops: list[tuple[int, Step]]) -> list[list[tuple[int, Step]]]:
    """Groups of loops that share tensor dimensions (transitively)."""
    groups: list[tuple[set[int], list[tuple[int, Step]]]] = []
    for loop in loops:
        dims = {d for d, x in enumerate(loop[1]) if x}
        joined = [g for g in groups if g[0] & dims]
        for g in joined:
            groups.remove(g)
            dims |= g[0]
        members = [lp for g in joined for lp in g[1]] + [loop]
        groups.append((dims, members))
    return [members for _, members in groups]


def _component_count(loops: list[tuple[int, Step]]) -> int:
    if len(loops) == 1:
        return loops[0][0]
    dims = sorted({d for _, s in loops for d, x in enumerate(s) if x})
    if len(loops) == 2 and len(dims) == 1:
        (m, sa), (n, sb) = loops
        a, b = abs(sa[dims[0]]), abs(sb[dims[0]])
        g = math.gcd(a, b)
        return m * n - max(0, m - b // g) * max(0, n - a // g)
    return _count_by_bits(loops, dims)


def _count_by_bits(loops: list[tuple[int, Step]], dims: list[int]) -> int:
    del dims
    return count_reached([s for _, s in loops], [[(0, e - 1) for e, _ in loops]])


def count_reached(steps: Sequence[Step], boxes: Sequence[Sequence[tuple[int, int]]]) -> int:
    """How many distinct `Σ i_k · steps[k]` the union of `boxes` reaches, each box giving
    every index k a range [first, last].

    The offsets are encoded injectively as integers (mixed radix over each tensor dimension's
    span), each loop's coefficient made non-negative by reflecting its index, and the values
    reached are collected in a bit set built by doubling, so the cost follows the span of the
    offsets and the number of boxes, not the number of points."""
    if not boxes:
        return 0
    rank = len(steps[0]) if steps else 0
    low = [0] * rank
    high = [0] * rank
    for d in range(rank):
        ends = [
            (
                sum(min(s[d] * a, s[d] * b) for s, (a, b) in zip(steps, box, strict=True)),
                sum(max(s[d] * a, s[d] * b) for s, (a, b) in zip(steps, box, strict=True)),
            )
            for box in boxes
        ]
        low[d] = min(e[0] for e in ends)
        high[d] = max(e[1] for e in ends)
    weight, coefficients = 1, [0] * len(steps)
    for d in range(rank):
        for k, step in enumerate(steps):
            coefficients[k] += weight * step[d]
        weight *= 2 * (high[d] - low[d]) + 1
    starts = [
        sum(min(c * first, c * last) for c, (first, last) in zip(coefficients, box, strict=True))
        for box in boxes
    ]
    base = min(starts)
    reached = 0
    for start, box in zip(starts, boxes, strict=True):
        bits = 1
        for c, (first, last) in zip(coefficients, box, strict=True):
            bits = _sum_with_progression(bits, abs(c), last - first + 1)
        reached |= bits << (start - base)
    return reached.bit_count()


def _sum_with_progression(bits: int, step: int, count: int) -> int:
    """The set `bits + {0, step, …, (count-1)·step}` (sets of integers as bit masks)."""
    result, block, block_len = 0, bits, 1
    offset = 0
    while count:
        if count & 1:
            result |= block << offset
            offset += block_len * step
        block |= block << (block_len * step)
        block_len *= 2
        count >>= 1
    return result
