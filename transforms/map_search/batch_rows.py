"""What a batch of candidates decides row by row, as numpy over rows: the loops nests share
(`fused_loops`) and which tiles stay resident between them (`still_resident`).

A batch is a kernel's nests where each nest takes one of a few *options* (results of its
Einsum under mappings of the same loop structure that differ only in trips); row r takes option
`choice[r, k]` at position k. Everything here is the scalar function's decision, made for every
row at once from the options' extents and tile signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from einsum_opt.lowering.accesses import ResidentTensor
from einsum_opt.transforms.map_search.light_nest import LightNest

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def distinct_rows(table: Ints) -> tuple[Ints, Ints]:
    """`np.unique(table, axis=0, return_inverse=True)` for a small-valued int table (values
    at least -1): rows coded as one integer each when the codes fit int64, which is much
    faster than comparing rows."""
    if table.shape[1] == 0:
        return table[:1], np.zeros(table.shape[0], dtype=np.int64)
    radices = (table.max(axis=0) + 2).astype(np.int64)
    if float(np.prod(radices.astype(np.float64))) >= 2.0**62:
        distinct, inverse = np.unique(table, axis=0, return_inverse=True)
        return distinct, inverse.reshape(-1)
    code = np.zeros(table.shape[0], dtype=np.int64)
    for j in range(table.shape[1]):
        code = code * radices[j] + (table[:, j] + 1)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return table[first], inverse.reshape(-1)


@dataclass(frozen=True)
class NestOptions:
    """The options of one position of a kernel: their nests (same loop names, axes and
    levels; other trips) and, per option, the extents of its loops in order."""

    nests: tuple[LightNest, ...]
    extents: Ints
    """(options, loops) int64."""

    @staticmethod
    def of(nests: Sequence[LightNest]) -> NestOptions:
        """The options of these nests, checked to share their loop structure."""
        first = [(lp.var.data, lp.spatial_axis) for lp in nests[0].loop_list()]
        for nest in nests[1:]:
            if [(lp.var.data, lp.spatial_axis) for lp in nest.loop_list()] != first:
                raise ValueError("the options of a position have different loops")
        extents = np.array(
            [[lp.extent.data for lp in n.loop_list()] for n in nests], dtype=np.int64
        ).reshape(len(nests), len(first))
        return NestOptions(tuple(nests), extents)


class FusedLoops:
    """`fused_loops` of every range of a kernel's positions, row by row: how many of the
    first nest's loops the range shares (a prefix length per row)."""

    def __init__(self, options: Sequence[NestOptions], choice: Ints):
        self.options = options
        self.choice = choice
        self._rows: dict[int, Ints] = {}
        self._lengths: dict[tuple[int, int], Ints] = {}

    def extents(self, k: int) -> Ints:
        """Each row's loop extents at position k, (rows, loops)."""
        found = self._rows.get(k)
        if found is None:
            found = self._rows[k] = self.options[k].extents[self.choice[:, k]]
        return found

    def length(self, a: int, b: int) -> Ints:
        """Per row, the number of loops `fused_loops(nests[a : b + 1])` gives."""
        found = self._lengths.get((a, b))
        if found is not None:
            return found
        rows = self.choice.shape[0]
        length = np.zeros(rows, dtype=np.int64)
        if b > a:
            nests = [self.options[k].nests[0] for k in range(a, b + 1)]
            produced = {n.tensor_name for n in nests}
            consumed = {n.access_name(v) for n in nests for v, _ in n.accesses() if v is not None}
            blocked = {
                v
                for n in nests
                if n.tensor_name in produced & consumed
                for v in n.reduced_variables()
            }
            lists = [n.loop_list() for n in nests]
            alive = np.ones(rows, dtype=np.bool_)
            for j in range(min(len(loops) for loops in lists)):
                first = lists[0][j]
                if (
                    first.spatial_axis is not None
                    or first.var.data in blocked
                    or any(
                        loops[j].var.data != first.var.data or loops[j].spatial_axis is not None
                        for loops in lists
                    )
                ):
                    break
                column = self.extents(a)[:, j]
                for k in range(a + 1, b + 1):
                    alive &= self.extents(k)[:, j] == column
                length += alive
        self._lengths[(a, b)] = length
        return length

    def names(self, a: int) -> list[str]:
        """The loop variables of position `a`'s nests, in order."""
        return [lp.var.data for lp in self.options[a].nests[0].loop_list()]


@dataclass(frozen=True)
class Residency:
    """Per position, per resident tensor of its nests, the level index each row reads it from
    as an earlier nest left it (-1: fetched as usual)."""

    found: tuple[tuple[Ints, ...], ...]


def residency(
    tensors: Sequence[Sequence[Sequence[ResidentTensor]]],
    options: Sequence[NestOptions],
    choice: Ints,
    level_names: Sequence[Sequence[str]],
) -> Residency:
    """`still_resident` over a kernel for every row: `tensors[k][o]` are option o's
    `resident_tensors` at position k (the same tensors and tiles for every option, their
    signatures differing), `level_names[k]` the level names of position k's spec."""
    rows = choice.shape[0]
    fused = FusedLoops(options, choice)
    ids: dict[tuple[object, ...], int] = {}
    # key -> (signature id, position) per row, -1 where nothing is recorded
    recorded: dict[tuple[str, str], tuple[Ints, Ints]] = {}
    found: list[tuple[Ints, ...]] = []
    for k, per_option in enumerate(tensors):
        shapes = [
            [(t.space, t.name, t.kept, [tile.index for tile in t.tiles]) for t in ts]
            for ts in per_option
        ]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("the options of a position keep different tensors")
        pick = choice[:, k]
        here: list[Ints] = []
        for t, tensor in enumerate(per_option[0]):
            chosen = np.full(rows, -1, dtype=np.int64)
            signatures = []
            for j, tile in enumerate(tensor.tiles):
                table = np.array(
                    [ids.setdefault(ts[t].tiles[j].signature, len(ids)) for ts in per_option],
                    dtype=np.int64,
                )
                signature = table[pick]
                signatures.append(signature)
                key = (tensor.space, level_names[k][tile.index])
                earlier = recorded.get(key)
                if earlier is None:
                    continue
                rec_id, rec_pos = earlier
                match = (chosen < 0) & (rec_pos >= 0) & (rec_id == signature)
                if match.any():
                    match &= _moving_fused(fused, tile.moving, rec_pos, k)
                chosen = np.where(match, tile.index, chosen)
            for j, tile in enumerate(tensor.tiles):
                key = (tensor.space, level_names[k][tile.index])
                earlier = recorded.get(key)
                if earlier is None:
                    recorded[key] = (signatures[j].copy(), np.full(rows, k, dtype=np.int64))
                    continue
                rec_id, rec_pos = earlier
                update = (rec_pos < 0) | (rec_id != signatures[j])
                recorded[key] = (
                    np.where(update, signatures[j], rec_id),
                    np.where(update, k, rec_pos),
                )
            here.append(chosen)
        found.append(tuple(here))
    return Residency(tuple(found))


def _moving_fused(fused: FusedLoops, moving: frozenset[str], start: Ints, k: int) -> Bools:
    """Per row, whether every loop in `moving` is one the nests from `start[row]` to `k`
    share."""
    out = np.zeros(start.shape[0], dtype=np.bool_)
    for a in np.unique(start[start >= 0]).tolist():
        rows = start == a
        names = fused.names(a)
        length = fused.length(a, k)
        ok = np.ones(start.shape[0], dtype=np.bool_)
        for var in moving:
            position = names.index(var) if var in names else None
            ok &= False if position is None else length > position
        out |= rows & ok
    return out
