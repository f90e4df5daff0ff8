"""The per-nest analysis: Timeloop's per-level reads, fills, updates and utilized capacity of a
mapped loop nest, in closed form.

```python
from einsum_opt.costmodel.nest_analysis import analyze
counts = analyze(spec)            # spec: a NestSpec (see costmodel/nest_spec.py)
counts.levels["GLB"]["A"].reads, counts.compute_cycles
```

How Timeloop counts (src/loop-analysis/nest-analysis.cpp, tiling.cpp), and how this module
gets the same numbers without walking the nest:

- A level's tile of a tensor is the box its loops and everything below them span
  (`Σ |coefficient| · (extent − 1) + 1` per tensor dimension).
- Fills: every iteration of the temporal loops above a level moves its tile; the words not
  already resident are fetched. Timeloop samples each loop at iterations 0 and 1 and weights
  iteration 1 by `extent − 1`, so the step back when an outer loop advances is one inner
  step, not the whole inner range. A move keeps the overlap (a sliding window) only while the
  tile keeps moving by the same vector; any other move refetches the whole tile. With
  `σ_m` the move of loop m and `r` the innermost loop that moves the tile, loop m advancing
  moves it by `τ_m = σ_m − Σ_{inner} σ` and fetches: nothing if `τ_m = 0`, the slid-in part if
  `τ_m = σ_r`, else the whole tile; it does so `(extent_m − 1) · Π_{outer} extent` times.
  The first tile is fetched whole. (`_fill_sum`)
- Reads: a level sends its child every child fill once per distinct delta among its spatial
  instances (instances whose deltas coincide share a multicast; for outputs, a spatial
  reduction); the innermost level feeds the compute units their operands, one per compute,
  per distinct operand. (`distinct_sums`)
- A level that bypasses a tensor passes its reads on to its parent, multiplied by the
  parent's multicast groups; the outermost keeper gets no fills.
- Read-write tensors: updates are the counts arriving from inside; the first touch of each
  word of an instance's partition is a write only, so reads and fills lose a partition each
  (the partition: the tensor divided over the spatial instances).
- Link transfers (Timeloop passes a delta between neighbouring instances when it equals a
  neighbour's previous delta) arise only when a spatial loop and the temporal loop driving the
  tile move it by the same vector; `analyze` detects such nests and reports them instead of
  guessing (`NestSpecError`).

The running time depends on the number of loops, levels and tensors, never on the extents.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.costmodel.distinct_sums import Step, distinct_sums
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
    spatial: bool
    level: int
    scale: int


def _placed_loops(spec: NestSpec) -> list[_PlacedLoop]:
    """Every loop of extent > 1, innermost first (a level's spatial loops are inside its
    temporal loops)."""
    scale = dict.fromkeys(spec.dims, 1)
    placed: list[_PlacedLoop] = []
    for s in range(len(spec.levels) - 1, -1, -1):
        for lp in reversed(spec.levels[s].loops):  # temporal loops come before spatial ones
            if lp.extent > 1:
                placed.append(_PlacedLoop(lp.dim, lp.extent, lp.axis is not None, s, scale[lp.dim]))
                scale[lp.dim] *= lp.extent
    return placed


def _step(tensor: TensorSpec, loop: _PlacedLoop) -> Step:
    """How far the tensor's tile moves, per tensor dimension, when `loop` advances by one."""
    return tuple(
        sum(t.coefficient for t in terms if t.dim == loop.dim) * loop.scale
        for terms in tensor.projection
    )


def _box(tensor: TensorSpec, extents: dict[str, int]) -> tuple[int, ...]:
    """The tile's side per tensor dimension when the loops span `extents`."""
    return tuple(
        sum(abs(t.coefficient) * (extents[t.dim] - 1) for t in terms) + 1
        for terms in tensor.projection
    )


def _slid_in(box: tuple[int, ...], move: Step) -> int:
    """Words of a box moved by `move` that the box did not hold before."""
    kept = 1
    for side, d in zip(box, move, strict=True):
        kept *= max(0, side - abs(d))
    return math.prod(box) - kept


def _fill_sum(box: tuple[int, ...], trace: Sequence[tuple[int, Step]], stationary_fix: bool) -> int:
    """Words fetched into a tile of shape `box` over the temporal loops above it, `trace`
    being (extent, move) per loop, innermost first.

    Timeloop samples each loop at iterations 0 and 1 (iteration 1 standing for the other
    `extent - 1`), so the calls form a ruler sequence: a sweep over loops 1..q is a sweep over
    1..q-1, loop q advancing, and the sweep over 1..q-1 again, `extent_q - 1` times over. The
    tile's state (the last move it kept the overlap under) depends only on where a sweep
    starts, so each (q, state) is evaluated once."""
    size = math.prod(box)
    carries: list[tuple[int, Step]] = []
    inner = tuple(0 for _ in box)
    for extent, move in trace:
        carries.append((extent, tuple(m - i for m, i in zip(move, inner, strict=True))))
        inner = tuple(m + i for m, i in zip(move, inner, strict=True))
    memo: dict[tuple[int, Step | None], tuple[int, Step | None]] = {}

    def advance(state: Step | None, shift: Step) -> tuple[int, Step | None]:
        moving = any(shift)
        if stationary_fix and not moving:
            return 0, state
        if state is None:
            return (_slid_in(box, shift) if moving else 0), shift
        if shift == state:
            return (_slid_in(box, shift) if moving else 0), state
        return size, None

    def sweep(q: int, state: Step | None) -> tuple[int, Step | None]:
        if q == 0:
            return 0, state
        key = (q, state)
        if key not in memo:
            before, state = sweep(q - 1, state)
            extent, shift = carries[q - 1]
            fetched, state = advance(state, shift)
            after, state = sweep(q - 1, state)
            memo[key] = (before + (extent - 1) * (fetched + after), state)
        return memo[key]

    return size + sweep(len(carries), None)[0]


def analyze(spec: NestSpec, *, stationary_fix: bool = False) -> NestCounts:
    """Per level and tensor, Timeloop's per-instance reads, fills, updates and utilized
    capacity of the mapped nest `spec`, and its computes and compute cycles.

    `stationary_fix=False` counts as Timeloop up to 3.0 (the version of the published
    reference outputs): a loop that leaves a tile in place still counts as its stride, so a
    later loop that moves it refetches it whole. `True` counts as Timeloop since PR #297
    (January 2025), where a stationary step does not break a sliding window."""
    validate(spec)
    levels = spec.levels
    n = len(levels)
    placed = _placed_loops(spec)
    temporal = [lp for lp in placed if not lp.spatial]
    temporal_product = math.prod(lp.extent for lp in temporal)
    spatial_product = math.prod(lp.extent for lp in placed if lp.spatial)
    # The extents a level's tile spans (its loops and everything inside), and those its
    # spatial fan-out spans (the union of its children's tiles).
    tile_extents: list[dict[str, int]] = [dict.fromkeys(spec.dims, 1) for _ in range(n + 1)]
    fan_extents: list[dict[str, int]] = [dict.fromkeys(spec.dims, 1) for _ in range(n)]
    for s in range(n - 1, -1, -1):
        fan = dict(tile_extents[s + 1])
        for lp in levels[s].loops:
            if lp.axis is not None:
                fan[lp.dim] *= lp.extent
        fan_extents[s] = fan
        tile = dict(fan)
        for lp in levels[s].loops:
            if lp.axis is None:
                tile[lp.dim] *= lp.extent
        tile_extents[s] = tile
    spatial_of = [[lp for lp in placed if lp.spatial and lp.level == s] for s in range(n)]
    fanout = [math.prod(lp.extent for lp in spatial_of[s]) for s in range(n)]
    used_instances = [math.prod(fanout[:s]) for s in range(n)]
    per_tensor = {
        t.name: _tensor_counts(
            spec, t, placed, tile_extents, fan_extents, spatial_of, temporal_product, stationary_fix
        )
        for t in spec.tensors
    }
    level_counts = {}
    for s, level in enumerate(levels):
        tensors = {}
        for t in spec.tensors:
            reads, fills, updates, size, partition, groups = per_tensor[t.name][s]
            kept = t.name in level.keep
            tensors[t.name] = TensorCounts(
                reads=reads,
                fills=fills,
                updates=updates,
                utilized_capacity=size if kept else 0,
                utilized_instances=used_instances[s],
                kept=kept,
                partition_size=partition,
                distinct_destinations=groups,
            )
        level_counts[level.name] = LevelCounts(
            level.name, level.instances, used_instances[s], tensors
        )
    return NestCounts(
        computes=temporal_product * spatial_product,
        compute_cycles=temporal_product,
        utilized_compute_instances=spatial_product,
        compute_instances=spec.compute_mesh_x * spec.compute_mesh_y,
        levels=level_counts,
    )


def _tensor_counts(
    spec: NestSpec,
    tensor: TensorSpec,
    placed: list[_PlacedLoop],
    tile_extents: list[dict[str, int]],
    fan_extents: list[dict[str, int]],
    spatial_of: list[list[_PlacedLoop]],
    computes_per_instance: int,
    stationary_fix: bool,
) -> list[tuple[int, int, int, int, int, int]]:
    """(reads, fills, updates, tile size, partition size, multicast groups) per level."""
    levels = spec.levels
    n = len(levels)
    boxes = [_box(tensor, tile_extents[s]) for s in range(n)]
    sizes = [math.prod(b) for b in boxes]
    steps = {id(lp): _step(tensor, lp) for lp in placed}
    # Fills of each level's tile from the temporal loops above it (per instance).
    fills = [0] * (n + 1)
    fills[n] = computes_per_instance
    for s in range(1, n):
        trace = [(lp.extent, steps[id(lp)]) for lp in placed if not lp.spatial and lp.level < s]
        fills[s] = _fill_sum(boxes[s], trace, stationary_fix)
    groups = [
        distinct_sums([lp.extent for lp in spatial_of[s]], [steps[id(lp)] for lp in spatial_of[s]])
        for s in range(n)
    ]
    _reject_link_transfers(spec, tensor, placed, steps, spatial_of, boxes)
    # Reads arriving at each level from inside, before bypassing.
    content = [fills[s + 1] * groups[s] for s in range(n)]
    # Partition sizes: the outermost level holds everything; a fan-out divides it.
    partition = [0] * n
    partition[0] = sizes[0]
    for s in range(1, n):
        partition[s] = partition[s - 1]
        if spatial_of[s - 1]:
            fan_size = math.prod(_box(tensor, fan_extents[s - 1]))
            partition[s] = partition[s - 1] * sizes[s] // fan_size
    keep = [tensor.name in level.keep for level in levels]
    for s in range(n - 1, 0, -1):
        if not keep[s]:
            content[s - 1] = content[s] * groups[s - 1]
    top = keep.index(True)
    result = []
    for s in range(n):
        if not keep[s]:
            result.append((0, 0, 0, sizes[s], partition[s], groups[s]))
            continue
        share = fills[s] if s > top else 0
        if tensor.read_write:
            fill = share - partition[s] if s > top else 0
            result.append(
                (content[s] - partition[s], fill, content[s], sizes[s], partition[s], groups[s])
            )
        else:
            result.append((content[s], share, 0, sizes[s], partition[s], groups[s]))
    return result


def _reject_link_transfers(
    spec: NestSpec,
    tensor: TensorSpec,
    placed: list[_PlacedLoop],
    steps: dict[int, Step],
    spatial_of: list[list[_PlacedLoop]],
    boxes: list[tuple[int, ...]],
) -> None:
    """Placeholder: link transfers are not modelled yet."""
    del spec, tensor, placed, steps, spatial_of, boxes
