"""The per-nest analysis: Timeloop's per-level reads, fills, updates and utilized capacity of a
mapped loop nest, in closed form.

```python
from einsum_opt.costmodel.nest_analysis import analyze
counts = analyze(spec)            # spec: a NestSpec (see costmodel/nest_spec.py)
counts.levels["GLB"]["A"].reads, counts.compute_cycles
```

How Timeloop counts (src/loop-analysis/nest-analysis.cpp, tiling.cpp; the version of the
published reference outputs, see `stationary_fix`), and how this module gets the same numbers
without walking the nest:

- A level's tile of a tensor is the box its loops and everything below them span
  (`Σ |coefficient| · (extent − 1) + 1` per tensor dimension).
- Fills: every iteration of the temporal loops above a level moves its tile; the words not
  already resident are fetched, as long as the tile keeps moving by the same vector (a
  sliding window); any other move refetches the whole tile. Timeloop samples each loop at
  iterations 0 and 1 only, so the tile's moves form a ruler sequence that `tile_trace`
  evaluates once per (loop, state): the cost follows the number of loops, not the extents.
- Reads: a level sends its child every child fill once per distinct delta among its spatial
  instances (instances whose deltas coincide share a multicast; for outputs, a spatial
  reduction: `distinct_sums`); the innermost level feeds the compute units their operands,
  one per compute, per distinct operand.
- Link transfers: an instance whose delta equals the previous delta of a mesh neighbour takes
  it from the neighbour (`link_transfers`); the parent then sends fewer words, and the
  children count the passes as extra reads and fills.
- A level that bypasses a tensor passes what its children asked of it on to its parent,
  scaled by the parent's multicast; the outermost keeper of a tensor gets no fills (the tensor
  is homed there).
- Read-write tensors: updates are the counts arriving from inside; the first touch of each
  word of an instance's partition is a write only, so reads and fills lose a partition each
  (the partition: the tensor divided over the spatial instances).
- Per-instance counts are those of the first instance of each fan-out (all instances do the
  same under perfect factorization); Timeloop rounds reads and updates to the nearest integer
  and truncates fills of read-only tensors, and so does this module.

The running time depends on the number of loops, levels and tensors, never on the extents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from einsum_opt.costmodel.distinct_sums import Step
from einsum_opt.costmodel.link_transfers import fanout_of
from einsum_opt.costmodel.nest_counts import LevelCounts, NestCounts, TensorCounts
from einsum_opt.costmodel.nest_spec import (
    LevelSpec,
    Loop,
    NestSpec,
    NestSpecError,
    TensorSpec,
    Term,
    validate,
)
from einsum_opt.costmodel.tile_trace import walk_trace

__all__ = [
    "LevelCounts",
    "LevelSpec",
    "Loop",
    "NestCounts",
    "NestSpec",
    "NestSpecError",
    "TensorCounts",
    "TensorSpec",
    "Term",
    "analyze",
]


@dataclass(frozen=True)
class _PlacedLoop:
    """A loop of extent > 1 with its place: storage level (outermost 0) and scale (the
    product of the extents of the loops inside it over the same dimension)."""

    dim: str
    extent: int
    axis: str | None
    level: int
    scale: int


class _Nest:
    """What every tensor's counts share: the loops in place, the extents each level's tile
    and fan-out span, the instances used and the mesh ratios."""

    def __init__(self, spec: NestSpec):
        self.spec = spec
        n = len(spec.levels)
        scale = dict.fromkeys(spec.dims, 1)
        self.loops: list[_PlacedLoop] = []  # innermost first
        for s in range(n - 1, -1, -1):
            for lp in reversed(spec.levels[s].loops):  # temporal loops precede spatial ones
                if lp.extent > 1:
                    self.loops.append(_PlacedLoop(lp.dim, lp.extent, lp.axis, s, scale[lp.dim]))
                    scale[lp.dim] *= lp.extent
        self.temporal_product = math.prod(lp.extent for lp in self.loops if lp.axis is None)
        self.spatial_product = math.prod(lp.extent for lp in self.loops if lp.axis is not None)
        self.tile_extents: list[dict[str, int]] = [dict.fromkeys(spec.dims, 1)] * (n + 1)
        self.fan_extents: list[dict[str, int]] = [dict.fromkeys(spec.dims, 1)] * n
        for s in range(n - 1, -1, -1):
            fan = dict(self.tile_extents[s + 1])
            tile = dict(self.tile_extents[s + 1])
            for lp in spec.levels[s].loops:
                tile[lp.dim] *= lp.extent
                if lp.axis is not None:
                    fan[lp.dim] *= lp.extent
            self.fan_extents[s], self.tile_extents[s] = fan, tile
        self.spatial = [[lp for lp in self.loops if lp.axis and lp.level == s] for s in range(n)]
        self.fanned = [  # the spatial loops of level s, innermost first
            [k for k, lp in enumerate(self.loops) if lp.axis is not None and lp.level == s]
            for s in range(n)
        ]
        self.above = [  # temporal loops above level s + 1 (at levels 0..s), innermost first
            [k for k, lp in enumerate(self.loops) if lp.axis is None and lp.level <= s]
            for s in range(n)
        ]
        self.fanout = [math.prod(lp.extent for lp in group) for group in self.spatial]
        self.used_instances = [math.prod(self.fanout[:s]) for s in range(n)]
        self.mesh_x_ratio = []
        for s, level in enumerate(spec.levels):
            inner_x = spec.levels[s + 1].mesh_x if s + 1 < n else spec.compute_mesh_x
            self.mesh_x_ratio.append(inner_x // level.mesh_x)


def _steps(tensor: TensorSpec, loops: list[_PlacedLoop]) -> list[Step]:
    """How far the tensor's tile moves, per tensor dimension, when each loop advances by one."""
    rank = len(tensor.projection)
    by_dim: dict[str, list[tuple[int, int]]] = {}
    for r, terms in enumerate(tensor.projection):
        for t in terms:
            by_dim.setdefault(t.dim, []).append((r, t.coefficient))
    zero = (0,) * rank
    steps: list[Step] = []
    for lp in loops:
        placed = by_dim.get(lp.dim)
        if placed is None:
            steps.append(zero)
            continue
        step = [0] * rank
        for r, c in placed:
            step[r] += c * lp.scale
        steps.append(tuple(step))
    return steps


def _box(tensor: TensorSpec, extents: dict[str, int]) -> tuple[int, ...]:
    """The tile's side per tensor dimension when the loops span `extents`."""
    return tuple(
        sum(abs(t.coefficient) * (extents[t.dim] - 1) for t in terms) + 1
        for terms in tensor.projection
    )


def analyze(
    spec: NestSpec, *, stationary_fix: bool = False, link_transfers: bool = True
) -> NestCounts:
    """Per level and tensor, Timeloop's per-instance reads, fills, updates and utilized
    capacity of the mapped nest `spec`, and its computes and compute cycles.

    `stationary_fix=False` counts as Timeloop's releases (up to v3.0.3, and the builds that
    made the published reference outputs): a loop that leaves a tile in place still counts as
    its stride, so a later loop that moves it refetches it whole. `True` counts as Timeloop's
    master since PR #297 (January 2025, unreleased), where staying put breaks no window.
    `link_transfers=False` counts as Timeloop with TIMELOOP_DISABLE_LINK_TRANSFERS set."""
    validate(spec)
    nest = _Nest(spec)
    per_tensor = {
        t.name: _tensor_counts(nest, t, stationary_fix, link_transfers) for t in spec.tensors
    }
    levels = {}
    for s, level in enumerate(spec.levels):
        tensors = {t.name: per_tensor[t.name][s] for t in spec.tensors}
        levels[level.name] = LevelCounts(
            level.name, level.instances, nest.used_instances[s], tensors
        )
    return NestCounts(
        computes=nest.temporal_product * nest.spatial_product,
        compute_cycles=nest.temporal_product,
        utilized_compute_instances=nest.spatial_product,
        compute_instances=spec.compute_mesh_x * spec.compute_mesh_y,
        levels=levels,
    )


Number = int | Fraction


def _ratio(numerator: Number, denominator: Number) -> Number:
    """numerator / denominator, an int when it divides."""
    if isinstance(numerator, int) and isinstance(denominator, int):
        quotient, remainder = divmod(numerator, denominator)
        return quotient if remainder == 0 else Fraction(numerator, denominator)
    return Fraction(numerator) / denominator


def _rounded(value: Number) -> int:
    """std::round: halves away from zero."""
    if isinstance(value, int):
        return value
    return (
        int(math.floor(value + Fraction(1, 2)))
        if value >= 0
        else -int(math.floor(-value + Fraction(1, 2)))
    )


def _truncated(value: Number) -> int:
    """A double converted to an unsigned integer: towards zero."""
    return value if isinstance(value, int) else int(value)


def _tensor_counts(
    nest: _Nest, tensor: TensorSpec, stationary_fix: bool, link_transfers: bool
) -> list[TensorCounts]:
    """The tensor's counts at every level (outermost first)."""
    spec = nest.spec
    n = len(spec.levels)
    boxes = [_box(tensor, nest.tile_extents[s]) for s in range(n)]
    sizes = [math.prod(b) for b in boxes]
    steps = _steps(tensor, nest.loops)
    keep = [tensor.name in level.keep for level in spec.levels]
    # Per level s (per instance): words its child fetches, words s sends to its children
    # (content accesses), words the children receive from s, words passed over links.
    fills: list[Number] = [0] * (n + 1)
    content: list[Number] = [0] * n
    received: list[Number] = [0] * n
    links: list[Number] = [0] * n
    groups: list[int] = [1] * n
    for s in range(n):
        trace = tuple([(nest.loops[k].extent, steps[k]) for k in nest.above[s]])
        fanout = None
        if nest.fanned[s]:
            fanout = fanout_of(
                tuple((nest.loops[k].extent, nest.loops[k].axis, steps[k]) for k in nest.fanned[s]),
                nest.mesh_x_ratio[s],
            )
            groups[s] = fanout.groups
        child = boxes[s + 1] if s + 1 < n else None
        try:
            totals = walk_trace(child, trace, fanout, stationary_fix, link_transfers)
        except ValueError as error:
            raise NestSpecError(
                f"level {spec.levels[s].name}: tensor {tensor.name}: link transfers in its "
                f"fan-out cannot be counted ({error}); analyze with link_transfers=False"
            ) from None
        fills[s + 1], content[s], received[s], links[s] = (
            totals.fills,
            totals.sends,
            totals.received,
            totals.links,
        )
    # Partition sizes: the outermost level holds everything; a fan-out divides it.
    partition = [sizes[0]] * n
    for s in range(1, n):
        partition[s] = partition[s - 1]
        if nest.spatial[s - 1]:
            fan_size = math.prod(_box(tensor, nest.fan_extents[s - 1]))
            partition[s] = partition[s - 1] * sizes[s] // fan_size
    # Words each instance receives from its parent (multicasts counted at each destination).
    share: list[Number] = [0]
    share += [_ratio(received[s - 1], nest.fanout[s - 1]) for s in range(1, n)]
    # A level that bypasses the tensor hands what its children asked of it to its parent.
    for s in range(n - 1, 0, -1):
        if not keep[s]:
            factor = _ratio(content[s] * nest.fanout[s - 1], received[s - 1])
            content[s - 1] = content[s - 1] * factor
            received[s - 1] = received[s - 1] * factor
            links[s - 1] = 0
    top = keep.index(True)
    for s in range(top):
        links[s] = 0
    share[top] = 0
    # Deltas taken from a neighbour are read and filled by the child instances themselves.
    peer: list[Number] = [0] * n
    for s in range(1, n):
        if links[s - 1]:
            peer[s] = _ratio(links[s - 1], nest.used_instances[s])
    result = []
    for s in range(n):
        if not keep[s]:
            result.append(
                TensorCounts(
                    0,
                    0,
                    0,
                    0,
                    nest.used_instances[s],
                    False,
                    partition[s],
                    groups[s],
                    read_write=tensor.read_write,
                )
            )
            continue
        if tensor.read_write:
            reads = _rounded(content[s] + peer[s] - partition[s])
            fill = _rounded(share[s] + peer[s] - (partition[s] if s > top else 0))
            updates = _rounded(content[s])
        else:
            reads = _rounded(content[s] + peer[s])
            fill = _truncated(share[s] + peer[s])
            updates = 0
        result.append(
            TensorCounts(
                reads=reads,
                fills=fill,
                updates=updates,
                utilized_capacity=sizes[s],
                utilized_instances=nest.used_instances[s],
                kept=True,
                partition_size=partition[s],
                distinct_destinations=groups[s],
                link_transfers=_truncated(links[s]),
                read_write=tensor.read_write,
            )
        )
    return result
