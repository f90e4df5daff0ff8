"""The loops of a `loopnest.nest` as upstream MLIR: `scf.for` over the mapped tiles, and the
spatial tile as a `linalg.generic`.

A nest's loops run in its order. Those outside its first spatial loop become `scf.for` loops
(the tiles of its partitioned ranks, in time); the first spatial loop and every loop inside it
form the tile, one `linalg.generic` whose dimensions follow the nest's order (what the array
computes per step). A nest without spatial loops runs entirely as `scf.for` loops around a
generic over no dimension. The loop over an iterative rank is the one `scf.for` that the
cascade's schedule places around every nest computed together with it (`einsum_to_linalg`);
a reduction whose operators differ keeps its reduced loops in the tile (`linalg_step`).

Only `loop_list()`, `output_variables()` and `reduce` are read: the trip counts and order of
the loops, not their storage levels or units.
"""

from __future__ import annotations

from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.lowering.linalg_step import Loop, StepPlan, reduction_runs


def nest_plan(nest: NestOp, fixed: str | None) -> StepPlan:
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
    return StepPlan(tuple(outer), tuple(tile))
