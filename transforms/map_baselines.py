"""`map-unfused` and `map-flat`: the baselines of the FuseMax evaluation, for any cascade.

Both bind by structure: a *contraction* (a product of two tensors reduced with `+`: QK, AV,
the linear layers) runs on the 2D array (`pe2d`), every other Einsum on the 1D array (`pe1d`).

- The row rank P is the largest rank every Einsum's output has (or `rank=P`); the other ranks
  they all have (batch, heads) are outermost.
- P is tiled P2 x P1 x P0: P0 = `tile` rows, spatial on axis 0 of both arrays; P1 x P0 is the
  row block.
- On `pe2d`, the largest other rank that `tile` divides (the keys M of QK and AV) is tiled
  M1 x M0 with M0 spatial on axis 1 (a smaller rank, if none divides, is spatial whole).
- Loops: outer ranks, P2, then on `pe2d` M1, P1, the other ranks, P0, M0 (a key tile serves
  the whole row block); on `pe1d` P1, the other ranks, P0.

`map-unfused`: every maximal run of consecutive Einsums on one unit is a kernel (QK | the
softmax | AV), named by `kernel_name` (made unique with a suffix `_2`, ... if needed); a tensor
crossing kernels goes through DRAM, inputs and outputs live in DRAM, everything else in the
global buffer; row blocks are one tile.

`map-flat`: one kernel fused through the global buffer (FLAT); its row block is the largest
multiple of `tile` dividing P whose working set fits the buffer (the whole P: head
granularity), as `lowering/buffers.py` counts it: the intermediates, sharing space when
their lifetimes allow, plus the row block of every input that has the row rank. When not even
one tile fits, the block is one tile and the overflow spills to DRAM.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr, einsum_ranks
from einsum_opt.lowering.buffers import Produced, share_space
from einsum_opt.transforms.rewriting import RCall, Read, is_returned, resolved


def is_contraction(op: EinsumOp) -> bool:
    """Whether `op` is a product of two tensor reads reduced with `+` (a matrix product)."""
    body = resolved(op)
    return (
        isinstance(body, RCall)
        and body.fn == "mul"
        and len(body.args) == 2
        and all(isinstance(a, Read) and a.value is not None for a in body.args)
        and any(operator == "add" for _, operator in op.reduce.data)
    )


@dataclass(frozen=True)
class RowLayout:
    """The ranks of a cascade that play the row and outer roles."""

    row: str
    outer: tuple[str, ...]


def find_rows(cascade: CascadeOp, rank: str | None, pass_name: str) -> RowLayout:
    """The row rank (the largest rank of every Einsum's output, or `rank`) and the outer ones."""
    einsums = cascade.einsums()
    if not einsums:
        raise PassFailedException(f"{pass_name}: @{cascade.cascade_name} has no Einsum")
    common = [
        r
        for r in einsums[0].result_type.rank_names
        if all(r in op.result_type.rank_names for op in einsums)
    ]
    if rank is not None:
        if rank not in common:
            raise PassFailedException(
                f"{pass_name}: rank {rank} is not a rank of every Einsum's output in "
                f"@{cascade.cascade_name} (those are: {', '.join(common) or 'none'})"
            )
        row = rank
    elif not common:
        raise PassFailedException(
            f"{pass_name}: no rank is common to every Einsum's output in "
            f"@{cascade.cascade_name}: nothing to tile into row blocks"
        )
    else:
        sizes = cascade.rank_sizes()
        row = max(common, key=lambda r: sizes[r])
    return RowLayout(row, tuple(r for r in common if r != row))


def units_of(cascade: CascadeOp) -> dict[EinsumOp, str]:
    """Contractions on `pe2d`, everything else on `pe1d`."""
    return {op: "pe2d" if is_contraction(op) else "pe1d" for op in cascade.einsums()}


def _column_rank(op: EinsumOp, rows: RowLayout, sizes: dict[str, int], tile: int) -> str | None:
    others = [r for r in einsum_ranks(op) if r != rows.row and r not in rows.outer]
    dividing = [r for r in others if sizes[r] % tile == 0]
    if dividing:
        return max(dividing, key=lambda r: sizes[r])
    small = [r for r in others if sizes[r] <= tile]
    return max(small, key=lambda r: sizes[r]) if small else None


def baseline_mapping(
    op: EinsumOp,
    unit: str,
    rows: RowLayout,
    block: int,
    tile: int,
    sizes: dict[str, int],
    levels: dict[str, str],
    kernel: str = "",
) -> MappingAttr:
    """The mapping of one Einsum (see the module docstring)."""
    ranks = einsum_ranks(op)
    p = rows.row
    column = _column_rank(op, rows, sizes, tile) if unit == "pe2d" else None
    split = column is not None and sizes[column] % tile == 0 and sizes[column] > tile
    partition: dict[str, list[int]] = {p: [block, tile]}
    space = {f"{p}0": 0}
    inner: list[str] = []
    head: list[str] = []
    if column is not None:
        if split:
            partition[column] = [tile]
            head = [f"{column}1"]
            inner = [f"{column}0"]
            space[f"{column}0"] = 1
        else:
            inner = [column]
            space[column] = 1
    order = [r for r in rows.outer if r in ranks] + [f"{p}2", *head, f"{p}1"]
    order += [r for r in ranks if r not in (p, column, *rows.outer)]
    order += [f"{p}0", *inner]
    tensors = [op.access_name(v) for v, _ in op.accesses()] + [op.tensor_name]
    return MappingAttr.make(
        unit, order, partition, space, {t: levels[t] for t in dict.fromkeys(tensors)}, kernel
    )


def _check_tile(cascade: CascadeOp, rows: RowLayout, tile: int, pass_name: str) -> int:
    size = cascade.rank_sizes()[rows.row]
    if tile <= 0 or size % tile:
        raise PassFailedException(
            f"{pass_name}: tile {tile} does not divide the row rank {rows.row} of size {size}"
        )
    return size


def _home_levels(cascade: CascadeOp, crossing: set[str]) -> dict[str, str]:
    levels = {name: "DRAM" for name, _ in cascade.inputs()}
    for op in cascade.einsums():
        out = is_returned(cascade, op.result) or op.tensor_name in crossing
        levels[op.tensor_name] = "DRAM" if out else "GLB"
    return levels


def kernel_name(einsums: Sequence[EinsumOp]) -> str:
    """A kernel's name: its Einsum's name, or the first and last joined by `_`."""
    first, last = einsums[0].tensor_name, einsums[-1].tensor_name
    return first if len(einsums) == 1 else f"{first}_{last}"


def _unique(names: Sequence[str]) -> list[str]:
    """`names` with a repeated one suffixed `_2`, `_3`, ... (avoiding every other name): the run
    A, B and a later Einsum named A_B would otherwise merge into one kernel."""
    taken = set(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name in seen:
            count = 2
            while f"{name}_{count}" in taken:
                count += 1
            name = f"{name}_{count}"
            taken.add(name)
        seen.add(name)
        out.append(name)
    return out


def map_unfused(cascade: CascadeOp, rank: str | None = None, tile: int = 256) -> None:
    """Attach the unfused baseline's mapping to every Einsum of `cascade`."""
    rows = find_rows(cascade, rank, "map-unfused")
    _check_tile(cascade, rows, tile, "map-unfused")
    units = units_of(cascade)
    runs: list[list[EinsumOp]] = []
    for op in cascade.einsums():
        if not runs or units[runs[-1][-1]] != units[op]:
            runs.append([])
        runs[-1].append(op)
    names = _unique([kernel_name(run) for run in runs])
    kernels = {op: name for run, name in zip(runs, names, strict=True) for op in run}
    crossing = {
        op.tensor_name
        for op in cascade.einsums()
        for use in op.result.uses
        if isinstance(use.operation, EinsumOp) and kernels[use.operation] != kernels[op]
    }
    levels = _home_levels(cascade, crossing)
    sizes = cascade.rank_sizes()
    for op in cascade.einsums():
        op.attributes[MAPPING_ATTR] = baseline_mapping(
            op, units[op], rows, tile, tile, sizes, levels, kernels[op]
        )


def flat_block(cascade: CascadeOp, rows: RowLayout, tile: int, buffer: int, word: int) -> int:
    """FLAT's row block: the largest multiple of `tile` dividing P whose working set fits."""
    sizes = cascade.rank_sizes()
    count = sizes[rows.row] // tile
    skip = set(rows.outer)

    def words(ranks: Sequence[str], block: int) -> int:
        return math.prod(block if r == rows.row else sizes[r] for r in ranks if r not in skip)

    def footprint(block: int) -> int:
        produced = [
            Produced(
                op.tensor_name,
                0
                if is_returned(cascade, op.result)
                else words(op.result_type.rank_names, block) * word,
                {op.access_name(v) for v, _ in op.accesses() if v is not None},
            )
            for op in cascade.einsums()
        ]
        held = sum(share_space(produced).values())
        held += sum(
            words(t.rank_names, block) * word
            for _, t in cascade.inputs()
            if rows.row in t.rank_names
        )
        return held

    best = largest_fitting_divisor(count, lambda d: footprint(d * tile) <= buffer)
    return (best or 1) * tile


def largest_fitting_divisor(count: int, fits: Callable[[int], bool]) -> int | None:
    """The largest divisor `d` of `count` with `fits(d)`, None if not even 1 fits.

    `fits` must be monotone (a footprint that grows with the block): a binary search finds the
    largest `d` that fits, then a scan down finds a divisor, so the time is bounded by the
    buffer (the largest block that fits), never by `count` (2^64 tokens take no longer)."""
    if count < 1 or not fits(1):
        return None
    low, high = 1, count
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return next(d for d in range(low, 0, -1) if count % d == 0)


def map_flat(
    cascade: CascadeOp,
    rank: str | None = None,
    tile: int = 256,
    buffer: int = 32 * 2**20,
    word: int = 2,
) -> int:
    """Attach FLAT's mapping to every Einsum of `cascade`; returns the row block chosen."""
    rows = find_rows(cascade, rank, "map-flat")
    _check_tile(cascade, rows, tile, "map-flat")
    block = flat_block(cascade, rows, tile, buffer, word)
    units = units_of(cascade)
    levels = _home_levels(cascade, set())
    sizes = cascade.rank_sizes()
    for op in cascade.einsums():
        op.attributes[MAPPING_ATTR] = baseline_mapping(
            op, units[op], rows, block, tile, sizes, levels
        )
    return block


@dataclass(frozen=True)
class MapUnfusedPass(ModulePass):
    """The unfused baseline (`map-unfused{tile=256}`, optionally `rank=P` for the row rank):
    contractions on the 2D array, the rest on the 1D array, kernels through DRAM."""

    name = "map-unfused"
    rank: str | None = None
    tile: int = 256

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_unfused(cascade, self.rank, self.tile)


@dataclass(frozen=True)
class MapFlatPass(ModulePass):
    """FLAT's mapping (`map-flat{tile=256 buffer=33554432 word=2}`, optionally `rank=P`): one
    kernel fused through the global buffer at the largest row block that fits."""

    name = "map-flat"
    rank: str | None = None
    tile: int = 256
    buffer: int = 32 * 2**20
    word: int = 2

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_flat(cascade, self.rank, self.tile, self.buffer, self.word)
