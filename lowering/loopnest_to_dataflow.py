"""`lower-to-dataflow{arch=fusemax}`: each cascade of loop nests becomes a `dataflow.program`.

The structure follows docs/dataflow.md:

- the *iterative loop* is the loop the running values iterate (m1); the *repeat loops* are the
  temporal loops outside it in the running values' nests (b, h, p2); the *pipeline loops* are
  the iterative loop and the temporal loops right after it that every nest with the iterative
  loop has (p1). Nests with a pipeline loop are stages of one `dataflow.pipeline` inside a
  `dataflow.repeat` (left out when there are no repeat loops); other nests are plain stages
  before or after it, in program order. Without a running value, every nest is a plain stage.
- a stage's `runs` is the product of the pipeline loops of its nest, `times` the product of
  its other temporal loops (repeat loops left out) and of the folds of spatial loops larger
  than the unit's axis; `extent` is the spatial trip count per unit axis (clipped to it).
- `after` / `carried`: the producers in the pipeline of the tensors a nest reads at the current
  / previous step of the iterative loop (a self read is carried; reading a final value, such
  as `RNV[M1, ...]` in AV, waits for the producer's stage of the same iteration).
- `ops`: `op_counts.count_ops`; the accesses of every storage level and what each level holds
  at its peak: `accesses` (each nest placed on its unit's chain and analysed the way Timeloop
  analyses a mapping).
- A nest that only copies one access (BK, BV) is a *view*: no stage; its readers read the
  source, at the source's level (the spec's DRAM-to-DRAM re-blocking copies, and by extension
  any pure copy).

Every unit a nest names must exist in the architecture: the default mapping's `default` unit is
not bound to anything, and a cascade using it is an error asking for a mapping
(`map-fusemax` or `apply-mapping`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.dataflow import (
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
)
from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.dialects.locations import pass_failure
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture, ArchitectureError, Unit
from einsum_opt.hardware.attached import choose_architecture
from einsum_opt.lowering.accesses import kernel_accesses
from einsum_opt.lowering.fusion import fused_loops
from einsum_opt.lowering.kernels import split_kernels
from einsum_opt.lowering.op_counts import count_ops, is_copy

PASS = "lower-to-dataflow"


def _fail(message: str, op: Operation | None = None) -> PassFailedException:
    return pass_failure(f"{PASS}: {message}", op)


def find_views(cascade: CascadeOp, nests: Sequence[NestOp]) -> dict[str, tuple[str, str]]:
    """View tensor -> (the tensor it copies, the level it reads it from)."""
    views: dict[str, tuple[str, str]] = {}
    for nest in nests:
        if is_copy(nest) and not cascade.returns(nest.result):
            value = nest.accesses()[0][0]
            if value is not None:
                views[nest.tensor_name] = (nest.access_name(value), nest.level_names()[0])
    return views


def _temporal_before(nest: NestOp, var: str) -> tuple[str, ...]:
    loops = nest.loop_list()
    pos = [lp.var.data for lp in loops].index(var)
    return tuple(lp.var.data for lp in loops[:pos] if lp.spatial_axis is None)


def find_loops(nests: Sequence[NestOp]) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """(iterative loop, repeat loops, pipeline loops) of the computing nests."""
    running = [n for n in nests if n.iterative_rank() is not None]
    variables = list(dict.fromkeys(n.iterative_rank() for n in running))
    if not variables:
        return None, (), ()
    if len(variables) > 1:
        raise _fail(
            f"running values iterate different loops ({', '.join(map(str, variables))}): "
            "one pipeline per cascade is supported",
            next(n for n in running if n.iterative_rank() != variables[0]),
        )
    it = variables[0]
    assert it is not None
    first = running[0]
    repeat = _temporal_before(first, it)
    for nest in running[1:]:
        if set(_temporal_before(nest, it)) != set(repeat):
            raise _fail(
                f"the running values {first.tensor_name} and {nest.tensor_name} have different "
                f"loops outside {it}",
                nest,
            )
    members = [n for n in nests if it in n.extents()]
    pipeline = [it]
    loops = first.loop_list()
    pos = [lp.var.data for lp in loops].index(it)
    for loop in loops[pos + 1 :]:
        if loop.spatial_axis is not None or not all(loop.var.data in m.extents() for m in members):
            break
        pipeline.append(loop.var.data)
    return it, repeat, tuple(pipeline)


def _trip_product(nest: NestOp, variables: Sequence[str]) -> int:
    extents = nest.extents()
    return math.prod(extents[v] for v in variables if v in extents)


def check_unit(nest: NestOp, arch: Architecture) -> Unit:
    """The unit `nest` runs on; an error asking for a mapping if `arch` has no such unit."""
    unit = arch.units.get(nest.unit_name)
    if unit is None:
        raise _fail(
            f"{nest.describe()} runs on unit '{nest.unit_name}', which architecture "
            f"'{arch.name}' does not have (its units: {', '.join(arch.units)}); map the cascade "
            "first (map-fusemax or apply-mapping)",
            nest,
        )
    return unit


def stage_shape(nest: NestOp, arch: Architecture, skip: Sequence[str]) -> tuple[int, list[int]]:
    """(times, extent) of a stage: temporal loops not in `skip`, spatial loops per unit axis
    clipped to the unit's shape with the excess folded into `times`."""
    unit = check_unit(nest, arch)
    times = 1
    extent = [1] * len(unit.shape)
    for loop in nest.loop_list():
        axis = loop.spatial_axis
        if axis is None:
            if loop.var.data not in skip:
                times *= loop.extent.data
        elif axis >= len(unit.shape):
            raise _fail(
                f"{nest.describe()}: loop {loop.var.data} is spatial on axis {axis}, but unit "
                f"'{nest.unit_name}' has {len(unit.shape)} axis/axes",
                nest,
            )
        else:
            extent[axis] *= loop.extent.data
    for axis, side in enumerate(unit.shape):
        if extent[axis] > side:
            fold = -(-extent[axis] // side)
            times *= fold
            extent[axis] = -(-extent[axis] // fold)
    return times, extent


def _step(producer: NestOp, indices: Sequence[IndexExpr], it: str) -> int:
    """Which step of `it`, relative to the reader's, produced the value read (0 or -1; a
    final-value read or a read without `it` counts as 0)."""
    for i, index in enumerate(producer.output_indices):
        written = index.as_offset()
        if written is not None and written[0] == it and i < len(indices):
            read = indices[i].as_offset()
            if read is not None and read[0] == it:
                return read[1] - written[1]
    return 0


def dependencies(
    nest: NestOp, stages: dict[str, NestOp], it: str | None
) -> tuple[list[str], list[str]]:
    """(after, carried): the pipeline stages `nest` waits for in this / the previous step."""
    after: list[str] = []
    carried: list[str] = []
    for value, indices in nest.accesses():
        if value is None:
            carried.append(nest.tensor_name)
            continue
        name = nest.access_name(value)
        producer = stages.get(name)
        if producer is None or producer is nest:
            continue
        back = it is not None and _step(producer, indices, it) < 0
        (carried if back else after).append(name)
    return list(dict.fromkeys(after)), list(dict.fromkeys(carried))


@dataclass
class _Program:
    """The program body being built: plain stages around a repeat around a pipeline."""

    before: list[Operation]
    repeat_before: list[Operation]
    pipeline: list[Operation]
    repeat_after: list[Operation]
    after: list[Operation]


def lower_kernel(
    cascade: CascadeOp,
    name: str,
    nests: Sequence[NestOp],
    views: dict[str, tuple[str, str]],
    arch: Architecture,
    arch_option: str,
    serial: bool = False,
) -> ProgramOp:
    """The dataflow program of one kernel: its computing nests (views left out)."""
    it, repeat, pipeline = find_loops(nests)
    if it is None:
        pipeline = fused_loops(nests)
    staged = {
        n.tensor_name: n
        for n in nests
        if pipeline
        and any(v in n.extents() for v in pipeline)
        and all(v in n.extents() for v in repeat)
    }
    body = _Program([], [], [], [], [])
    for nest in nests:
        in_repeat = it is not None and all(v in nest.extents() for v in repeat)
        tensor = nest.tensor_name
        ops = count_ops(nest)
        if not ops:
            raise _fail(f"{nest.describe()} performs no operation", nest)
        if tensor in staged:
            times, extent = stage_shape(nest, arch, (*repeat, *pipeline))
            after, carried = dependencies(nest, staged, it)
            runs = _trip_product(nest, pipeline)
            body.pipeline.append(
                ComputeOp(tensor, nest.unit_name, runs, times, ops, extent, after, carried)
            )
            continue
        skip = repeat if in_repeat else ()
        times, extent = stage_shape(nest, arch, skip)
        op = ComputeOp(tensor, nest.unit_name, 1, times, ops, extent)
        if in_repeat:
            started = bool(body.pipeline)
            (body.repeat_after if started else body.repeat_before).append(op)
        else:
            started = bool(body.pipeline or body.repeat_before or body.repeat_after)
            (body.after if started else body.before).append(op)
    found = kernel_accesses(cascade, nests, views, arch)
    inner: list[Operation] = list(body.repeat_before)
    if body.pipeline:
        count = _loop_count(nests, pipeline)
        inner.append(PipelineOp(", ".join(pipeline), count, body.pipeline, serial))
    inner += body.repeat_after
    middle: list[Operation] = inner
    repeat_count = _loop_count(nests, repeat)
    if repeat and inner:
        middle = [RepeatOp(", ".join(repeat), repeat_count, inner)]
    return ProgramOp(
        name,
        arch_option,
        [*body.before, *middle, *body.after, *found.accesses, *found.buffers],
    )


def lower_cascade(
    cascade: CascadeOp, arch: Architecture, arch_option: str, serial: bool = False
) -> list[ProgramOp]:
    """The dataflow programs of a cascade of loop nests: one per kernel, in order (named
    `CASCADE.KERNEL` when the mapping splits the cascade into kernels)."""
    nests = [op for op in cascade.body.block.ops if isinstance(op, NestOp)]
    if len(nests) != len(cascade.producers()):
        raise _fail(
            f"@{cascade.cascade_name} has Einsums that are not loop nests: run "
            "lower-to-loopnest first",
            cascade,
        )
    for nest in nests:
        check_unit(nest, arch)
    views = find_views(cascade, nests)
    computing = [n for n in nests if n.tensor_name not in views]
    kernels = split_kernels(computing, views)
    if len(kernels) == 1:
        (only,) = kernels.values()
        return [lower_kernel(cascade, cascade.cascade_name, only, views, arch, arch_option, serial)]
    return [
        lower_kernel(
            cascade, f"{cascade.cascade_name}.{kernel}", members, views, arch, arch_option, serial
        )
        for kernel, members in kernels.items()
    ]


def _loop_count(nests: Sequence[NestOp], variables: Sequence[str]) -> int:
    """The product of the trip counts of `variables` (as the nests that have them give them)."""
    count = 1
    for var in variables:
        count *= next(n.extents()[var] for n in nests if var in n.extents())
    return count


def lower_to_dataflow(
    module: Operation, arch_option: str | None = None, serial: bool = False
) -> None:
    """Replace every cascade of loop nests in `module` by its dataflow programs (`serial`:
    pipelines run one iteration at a time), on the architecture `arch_option` names (else the
    module's attached one, else `fusemax`)."""
    try:
        arch, arch_name = choose_architecture(arch_option, module)
    except ArchitectureError as error:
        raise _fail(str(error)) from None
    for cascade in cascades_in(module):
        block = cascade.parent_block()
        assert block is not None
        for program in lower_cascade(cascade, arch, arch_name, serial):
            block.insert_op_before(program, cascade)
        cascade.detach()
        cascade.erase()


@dataclass(frozen=True)
class LowerToDataflowPass(ModulePass):
    """Lower loop nests to the dataflow dialect on an architecture (`lower-to-dataflow{arch=
    fusemax}`: a built-in name or the path of a YAML description; by default the module's
    attached architecture, else fusemax; `overlap=false` makes every pipeline serial: one
    iteration (tile) at a time, the units never working on two)."""

    name = "lower-to-dataflow"
    arch: str | None = None
    overlap: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lower_to_dataflow(op, self.arch, not self.overlap)
