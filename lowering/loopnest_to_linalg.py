"""The loops of a `loopnest.nest` as upstream MLIR: `scf.for` over the mapped tiles, and the
spatial tile as a `linalg.generic`.

A nest's loops run in its order. Those outside its first spatial loop become `scf.for` loops
(the tiles of its partitioned ranks, in time); the first spatial loop and every loop inside it
form the tile, one `linalg.generic` whose dimensions follow the nest's order (what the array
computes per step). A nest without spatial loops runs entirely as `scf.for` loops around a
generic over no dimension. The loop over an iterative rank is the one `scf.for` that the
cascade's schedule places around every nest computed together with it (`einsum_to_linalg`);
a reduction whose operators differ keeps its reduced loops in the tile (`linalg_step`), and
the loops of an output index that does not walk its rank in mixed radix (`P-1-p`) run as
`scf.for` loops (the tile writes its output through a slice).

Only `loop_list()`, `output_variables()` and `reduce` are read: the trip counts and order of
the loops, not their storage levels or units.
"""

from __future__ import annotations

from collections.abc import Mapping

from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.lowering.linalg_step import Loop, StepPlan, reduction_runs
from einsum_opt.lowering.linalg_views import Resolved, mixed_radix


def nest_plan(nest: NestOp, fixed: str | None, sizes: Mapping[str, int]) -> StepPlan:
    """The `scf.for` loops and the tile of `nest` (without the loop over `fixed`)."""
    loops: list[tuple[Loop, bool]] = [
        ((loop.var.data, loop.extent.data), loop.spatial_axis is not None)
        for loop in nest.loop_list()
        if loop.var.data != fixed
    ]
    start = next((k for k, (_, spatial) in enumerate(loops) if spatial), len(loops))
    outer = [loop for loop, _ in loops[:start]]
    tile = [loop for loop, _ in loops[start:]]
    if len(reduction_runs(nest)) > 1:
        outputs = set(nest.output_variables())
        moved = {v for v, _ in outer if v not in outputs}
        outer = [loop for loop in outer if loop[0] not in moved]
        tile = [loop for loop, _ in loops if loop[0] in moved or loop in tile]
    stepped = _stepped_outputs(nest, dict(tile), sizes)
    outer += [loop for loop in tile if loop[0] in stepped]
    tile = [loop for loop in tile if loop[0] not in stepped]
    return StepPlan(tuple(outer), tuple(tile))


def _stepped_outputs(nest: NestOp, tile: Mapping[str, int], sizes: Mapping[str, int]) -> set[str]:
    """Tile variables of output indices that do not walk their rank in mixed radix over the
    tile (`P-1-p`, `2*p`): the tile cannot write them through a slice, so they become loops."""
    stepped: set[str] = set()
    for index in nest.output_indices:
        factors = [(v, f) for v, f in Resolved.of(index, sizes).factors if tile.get(v, 1) > 1]
        if factors and mixed_radix(factors, tile) is None:
            stepped.update(v for v, _ in factors)
    return stepped
