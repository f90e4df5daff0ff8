"""The storage accesses of a kernel: each nest placed on its unit's chain and analysed
(`costmodel.nest_analysis`), as `dataflow.access` ops, and what every level holds at its peak
(`dataflow.buffer` ops)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.utils.exceptions import PassFailedException

from einsum_opt.costmodel.model import level_of as level_of_label
from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_counts import NestCounts
from einsum_opt.costmodel.nest_spec import NestSpecError
from einsum_opt.dialects.dataflow import AccessOp, BufferOp
from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture
from einsum_opt.lowering.buffers import Touch, occupancy
from einsum_opt.lowering.data_spaces import data_spaces, running_positions
from einsum_opt.lowering.placement import PlacedNest, place_nest


@dataclass(frozen=True)
class KernelAccesses:
    """A kernel's access ops, its buffer ops (one per level that holds anything) and the
    placed nests they came from."""

    accesses: list[AccessOp]
    buffers: list[BufferOp]
    placed: dict[str, PlacedNest]


def lifetime_loops(nests: Sequence[NestOp], tensors: Sequence[str]) -> dict[str, set[str]]:
    """Per tensor touched by at least two nests, the temporal loops that enclose its whole
    life: the longest common prefix (same variables and trip counts) of those nests' loops."""
    touching: dict[str, list[NestOp]] = {t: [] for t in tensors}
    for nest in nests:
        names = {nest.tensor_name} | {nest.access_name(v) for v, _ in nest.accesses() if v}
        for name in names:
            if name in touching:
                touching[name].append(nest)
    out: dict[str, set[str]] = {}
    for tensor, group in touching.items():
        if len(group) < 2:
            continue
        prefix: set[str] = set()
        for loops in zip(*(n.loop_list() for n in group), strict=False):
            first = loops[0]
            if first.spatial_axis is not None or any(
                lp.var.data != first.var.data
                or lp.extent.data != first.extent.data
                or lp.spatial_axis is not None
                for lp in loops
            ):
                break
            prefix.add(first.var.data)
        out[tensor] = prefix
    return out


def _base(name: str) -> str:
    """A data space's tensor (`RM@2`, a second read of RM, is RM)."""
    return name.split("@", 1)[0]


def kernel_accesses(
    cascade: CascadeOp,
    nests: Sequence[NestOp],
    views: Mapping[str, tuple[str, str]],
    arch: Architecture,
) -> KernelAccesses:
    """Place and analyse every nest of a kernel; the accesses in program order."""
    every = [op for op in cascade.body.block.ops if isinstance(op, NestOp)]
    running = running_positions(every)
    sizes = cascade.rank_sizes()
    in_memory = {n for n, _ in cascade.inputs()} | set(cascade.output_names())
    names = {n.tensor_name for n in nests} | {
        n.access_name(v) for n in nests for v, _ in n.accesses() if v is not None
    }
    exempt = lifetime_loops(nests, sorted(names))
    accesses: list[AccessOp] = []
    placed: dict[str, PlacedNest] = {}
    touches: dict[str, list[Touch]] = {}
    for position, nest in enumerate(nests):
        spaces = data_spaces(nest, views, running, sizes)
        nest_placed = place_nest(arch, nest, spaces, in_memory, exempt)
        placed[nest.tensor_name] = nest_placed
        try:
            counts = analyze(nest_placed.spec)
        except NestSpecError as error:
            raise PassFailedException(f"lower-to-dataflow: {nest.describe()}: {error}") from None
        accesses += _access_ops(nest, nest_placed, counts, touches, position)
    buffers = []
    persistent = frozenset(running) & names
    for label, level_touches in touches.items():
        holds = occupancy(level_touches, persistent)
        if any(holds.values()) and level_of_label(arch, label).has_capacity:
            word = arch.word_bytes
            buffers.append(BufferOp(label, {k: v * word for k, v in holds.items()}))
    return KernelAccesses(accesses, buffers, placed)


def nest_access_ops(
    nest: NestOp, placed: PlacedNest, counts: NestCounts
) -> tuple[list[AccessOp], dict[str, list[Touch]]]:
    """The access ops of one placed and analysed nest, and its touches per level (as the
    nest at position 0 of its kernel): what `kernel_accesses` emits for it."""
    touches: dict[str, list[Touch]] = {}
    return _access_ops(nest, placed, counts, touches, 0), touches


def _access_ops(
    nest: NestOp,
    placed: PlacedNest,
    counts: NestCounts,
    touches: dict[str, list[Touch]],
    position: int,
) -> list[AccessOp]:
    """One access op per (tensor, level) the nest keeps, second reads of a tensor merged."""
    merged: dict[tuple[str, str], list[int]] = {}
    overwritten = {
        t.name
        for t, space in zip(placed.spec.tensors, placed.spaces, strict=True)
        if space.output and not space.accumulates
    }
    for level_spec, label in zip(placed.spec.levels, placed.labels, strict=True):
        per_tensor = counts.levels[level_spec.name]
        for tensor in placed.spec.tensors:
            if tensor.name not in level_spec.keep:
                continue
            c = per_tensor[tensor.name]
            instances = int(c.utilized_instances)
            key = (_base(tensor.name), label)
            # An output the nest only overwrites is never read back: no partial sums move.
            back = 0 if tensor.name in overwritten else 1
            reads = c.reads * instances * back
            fills = c.fills * instances * back
            updates = c.updates * instances
            capacity = int(c.utilized_capacity)
            entry = merged.setdefault(key, [0, 0, 0, 0, instances])
            entry[0] += reads
            entry[1] += fills
            entry[2] += updates
            entry[3] = max(entry[3], capacity)
            entry[4] = max(entry[4], instances)
            touches.setdefault(label, []).append(
                Touch(position, key[0], tensor.read_write and key[0] == nest.tensor_name, capacity)
            )
    return [
        AccessOp(nest.tensor_name, tensor, label, *values)
        for (tensor, label), values in merged.items()
    ]
