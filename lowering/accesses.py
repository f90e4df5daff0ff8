"""The storage accesses of a kernel: each nest placed on its unit's chain and analysed
(`costmodel.nest_analysis`), as `dataflow.access` ops, and what every level holds at its peak
(`dataflow.buffer` ops)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from einsum_opt.costmodel.model import level_of as level_of_label
from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_counts import NestCounts
from einsum_opt.costmodel.nest_spec import NestSpec, NestSpecError, TensorSpec
from einsum_opt.dialects.dataflow import AccessOp, BufferOp
from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture
from einsum_opt.lowering.buffers import Touch, occupancy
from einsum_opt.lowering.data_spaces import data_spaces, running_positions, view_source
from einsum_opt.lowering.fusion import fused_loops
from einsum_opt.lowering.placement import PlacedNest, place_nest


@dataclass(frozen=True)
class KernelAccesses:
    """A kernel's access ops, its buffer ops (one per level that holds anything) and the
    placed nests they came from."""

    accesses: list[AccessOp]
    buffers: list[BufferOp]
    placed: dict[str, PlacedNest]


def lifetime_loops(nests: Sequence[NestOp], tensors: Sequence[str]) -> dict[str, set[str]]:
    """Per tensor touched by at least two nests, the loops that enclose its whole life: the
    loops those nests share (`fused_loops`)."""
    touching: dict[str, list[NestOp]] = {t: [] for t in tensors}
    for nest in nests:
        names = {nest.tensor_name} | {nest.access_name(v) for v, _ in nest.accesses() if v}
        for name in names:
            if name in touching:
                touching[name].append(nest)
    return {t: set(fused_loops(group)) for t, group in touching.items() if len(group) >= 2}


def _tile_signature(spec: NestSpec, index: int, tensor: TensorSpec) -> tuple[object, ...]:
    """What decides a tensor's tile at level `index` and when it changes: the loops above the
    level (variables and trip counts, in order) and the tile's extent per dimension."""
    above = tuple(
        (loop.dim, loop.extent, loop.axis) for level in spec.levels[:index] for loop in level.loops
    )
    below = {
        loop.dim: loop.extent for level in spec.levels[index:] for loop in level.loops
    }
    box = tuple(
        sum(abs(t.coefficient) * (below.get(t.dim, 1) - 1) for t in dim) + 1
        for dim in tensor.projection
    )
    return (above, box)


@dataclass(frozen=True)
class ResidentTile:
    """A tile a nest reads from level `index` (a level below the tensor's outermost keeper):
    its signature (`_tile_signature`) and the nest's loop variables above the level that move
    it."""

    index: int
    signature: tuple[object, ...]
    moving: frozenset[str]


@dataclass(frozen=True)
class ResidentTensor:
    """An operand a nest keeps at two levels or more: its data space, the levels keeping it
    and its tiles below the outermost one (innermost first)."""

    space: str
    name: str
    kept: tuple[int, ...]
    tiles: tuple[ResidentTile, ...]


def resident_tensors(placed: PlacedNest) -> tuple[ResidentTensor, ...]:
    """What `still_resident` compares of a placed nest, computed once per nest (it depends on
    the nest alone, not on the kernel around it)."""
    spec = placed.spec
    levels = spec.levels
    out = []
    for tensor, space in zip(spec.tensors, placed.spaces, strict=True):
        kept = tuple(i for i, level in enumerate(levels) if tensor.name in level.keep)
        if space.output or len(kept) < 2:
            continue
        uses = space.variables()
        tiles = tuple(
            ResidentTile(
                index,
                _tile_signature(spec, index, tensor),
                frozenset(
                    loop.dim for level in levels[:index] for loop in level.loops if loop.dim in uses
                ),
            )
            for index in reversed(kept[1:])
        )
        out.append(ResidentTensor(space.name, tensor.name, kept, tiles))
    return tuple(out)


def still_resident(
    placed: PlacedNest,
    resident: dict[tuple[str, str], tuple[tuple[object, ...], int]],
    nests: Sequence[NestOp],
    position: int,
    tensors: Sequence[ResidentTensor] | None = None,
) -> PlacedNest:
    """`placed` (the nest at `position` in `nests`) with the tensors it reads from a level
    where an earlier nest of the kernel left the same tile read from there: they are not
    fetched again (the softmax reads QK from DRAM once, for GM and SN). A tile stays between
    two nests when the loops above the level are the same and every one of them that moves
    the tile is a loop the nests from the one to the other share (`fused_loops`: they run one
    after another inside it). Records the tiles `placed` brings in for the nests after it.
    `tensors`: `resident_tensors(placed)` when the caller keeps it."""
    spec = placed.spec
    found: list[tuple[ResidentTensor, int]] = []
    for tensor in resident_tensors(placed) if tensors is None else tensors:
        for tile in tensor.tiles:
            earlier = resident.get((tensor.space, spec.levels[tile.index].name))
            if (
                earlier is not None
                and earlier[0] == tile.signature
                and tile.moving <= set(fused_loops(nests[earlier[1] : position + 1]))
            ):
                found.append((tensor, tile.index))
                break
        for tile in tensor.tiles:
            key = (tensor.space, spec.levels[tile.index].name)
            if key not in resident or resident[key][0] != tile.signature:
                resident[key] = (tile.signature, position)
    return left_resident(placed, found)


def left_resident(
    placed: PlacedNest, found: Sequence[tuple[ResidentTensor, int]]
) -> PlacedNest:
    """`placed` with each (tensor, level index) of `found` read from that level as left there
    by an earlier nest: the levels above it no longer keep the tensor."""
    spec = placed.spec
    levels = list(spec.levels)
    for tensor, index in found:
        for above in tensor.kept:
            if above < index:
                level = levels[above]
                levels[above] = replace(level, keep=level.keep - {tensor.name})
    if levels == list(spec.levels):
        return placed
    return replace(placed, spec=replace(spec, levels=tuple(levels)))


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
    names |= {view_source(views, name, "")[0] for name in names}  # views' readers: the source
    exempt = lifetime_loops(nests, sorted(names))
    accesses: list[AccessOp] = []
    placed: dict[str, PlacedNest] = {}
    touches: dict[str, list[Touch]] = {}
    resident: dict[tuple[str, str], tuple[tuple[object, ...], int]] = {}
    for position, nest in enumerate(nests):
        spaces = data_spaces(nest, views, running, sizes)
        nest_placed = still_resident(
            place_nest(arch, nest, spaces, in_memory, exempt), resident, nests, position
        )
        placed[nest.tensor_name] = nest_placed
        try:
            counts = analyze(nest_placed.spec)
        except NestSpecError as error:
            message = f"lower-to-dataflow: {nest.describe()}: {error}"
            raise OpPassFailedException(nest, message) from None
        accesses += _access_ops(nest, nest_placed, counts, touches, position)
    buffers = []
    # In a pipeline of running values every nest runs in every iteration: what the kernel
    # touches stays for its whole run. Otherwise nests run one after another within an
    # iteration and space is shared by lifetime; running values persist regardless.
    iterative = any(n.iterative_rank() is not None for n in nests)
    persistent = frozenset(names) if iterative else frozenset(running) & names
    for label, level_touches in touches.items():
        holds = occupancy(level_touches, persistent)
        if any(holds.values()) and level_of_label(arch, label).has_capacity:
            word = arch.word_bytes
            buffers.append(BufferOp(label, {k: v * word for k, v in holds.items()}))
    return KernelAccesses(accesses, buffers, placed)


@dataclass(frozen=True)
class AccessCounts:
    """What one `dataflow.access` op carries: the tensor, the level, the counts summed over
    the utilized instances, the largest tile one instance holds and the instances."""

    tensor: str
    level: str
    reads: int
    fills: int
    updates: int
    capacity: int
    instances: int


def nest_access_counts(
    nest: NestOp, placed: PlacedNest, counts: NestCounts
) -> tuple[list[AccessCounts], dict[str, list[Touch]]]:
    """The accesses of one placed and analysed nest as plain data (what its
    `dataflow.access` ops would carry), and its touches per level (as the nest at position 0
    of its kernel): what `kernel_accesses` emits for it."""
    touches: dict[str, list[Touch]] = {}
    return _access_counts(nest, placed, counts, touches, 0), touches


def _access_ops(
    nest: NestOp,
    placed: PlacedNest,
    counts: NestCounts,
    touches: dict[str, list[Touch]],
    position: int,
) -> list[AccessOp]:
    """One access op per (tensor, level) the nest keeps, second reads of a tensor merged."""
    return [
        AccessOp(nest.tensor_name, a.tensor, a.level, *_values(a))
        for a in _access_counts(nest, placed, counts, touches, position)
    ]


def _values(a: AccessCounts) -> tuple[int, int, int, int, int]:
    return a.reads, a.fills, a.updates, a.capacity, a.instances


def _access_counts(
    nest: NestOp,
    placed: PlacedNest,
    counts: NestCounts,
    touches: dict[str, list[Touch]],
    position: int,
) -> list[AccessCounts]:
    """One entry per (tensor, level) the nest keeps, second reads of a tensor merged; the
    nest's tiles are added to `touches`."""
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
            writes = tensor.read_write and key[0] == nest.tensor_name
            touches.setdefault(label, []).append(
                Touch(position, key[0], writes, capacity, tensor.name not in overwritten)
            )
    return [
        AccessCounts(tensor, label, *values) for (tensor, label), values in merged.items()
    ]
