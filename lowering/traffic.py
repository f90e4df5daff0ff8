"""Data movement of a lowered cascade: the global buffer's working set and the transfers.

- **Buffer** (`glb_holds`), for one repetition of the repeat loops: every DRAM tensor read
  without the iterative loop (Q) whole, every DRAM tensor read with it (K, V through BK, BV)
  one tile (its loops other than the repeat and pipeline loops), every running value (RM, RD,
  RNV) without the iterative loop, and any other tensor homed in the GLB whole. This is the rule
  `map-fusemax` uses to choose P1 (`query_tile`), over loop variables instead of ranks.
- **DRAM reads** (`dram_read_bytes`): a DRAM tensor is read once per sweep of the loops that
  index it, times the trip count of every temporal loop that does not index it but encloses one
  that does, unless the part indexed inside that loop fits in the GLB next to the other
  resident tensors (it then stays resident). A view's readers are charged for its source.
- **DRAM writes**: an output homed in DRAM is written once.
- **RF**: a tensor staged in the register file between two units is read from it by its
  consumer once per use (one value per index point of the loops that index it, again for every
  temporal loop that does not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.dialects.loopnest import NestOp


@dataclass(frozen=True)
class Layout:
    """What the lowering found in a cascade of loop nests."""

    nests: tuple[NestOp, ...]
    """The nests that compute (views left out), in program order."""
    views: Mapping[str, tuple[str, str]]
    """View tensor (BK) -> the tensor it copies (K) and the level it reads it from (DRAM)."""
    iterative: str | None
    """The loop variable of the running values (m1), if any."""
    repeat: tuple[str, ...]
    """The repeat loops (b, h, p2)."""
    pipeline: tuple[str, ...]
    """The pipeline loops (m1, p1)."""
    word: int
    """Bytes per value."""

    def source(self, tensor: str, level: str) -> tuple[str, str]:
        """The tensor actually stored for `tensor` read at `level`, and its level (a view's
        source, else the tensor itself)."""
        while tensor in self.views:
            tensor, level = self.views[tensor]
        return tensor, level


@dataclass(frozen=True)
class Read:
    """One access of a nest: the stored tensor, its level and its indices."""

    tensor: str
    level: str
    indices: tuple[IndexExpr, ...]
    value: SSAValue | None


def reads(nest: NestOp, layout: Layout) -> list[Read]:
    """The accesses of `nest` other than self reads, views resolved to their sources."""
    levels = nest.level_names()
    out = []
    for i, (value, indices) in enumerate(nest.accesses()):
        if value is not None:
            tensor, level = layout.source(nest.access_name(value), levels[i])
            out.append(Read(tensor, level, indices, value))
    return out


def indexing(indices: Sequence[IndexExpr]) -> set[str]:
    """The loop variables an access (or output) uses."""
    return {v for ix in indices for v in ix.variables}


def points(nest: NestOp, variables: set[str], skip: Sequence[str] = ()) -> int:
    """The number of index points of the loops of `nest` in `variables` (minus `skip`)."""
    return math.prod(
        loop.extent.data
        for loop in nest.loop_list()
        if loop.var.data in variables and loop.var.data not in skip
    )


def glb_holds(layout: Layout) -> dict[str, int]:
    """Tensor -> bytes the GLB keeps for one repetition (see the module docstring)."""
    holds: dict[str, int] = {}

    def keep(tensor: str, values: int) -> None:
        holds[tensor] = max(holds.get(tensor, 0), values * layout.word)

    produced = {n.tensor_name for n in layout.nests}
    for nest in layout.nests:
        for read in reads(nest, layout):
            if read.level != "DRAM" or read.tensor in produced or layout.iterative is None:
                continue
            used = indexing(read.indices)
            if layout.iterative in used:
                keep(read.tensor, points(nest, used, (*layout.repeat, *layout.pipeline)))
            else:
                keep(read.tensor, points(nest, used, layout.repeat))
        out = indexing(nest.output_indices)
        running = nest.iterative_rank()
        if running is not None:
            keep(nest.tensor_name, points(nest, out, (*layout.repeat, running)))
        elif nest.level_names()[-1] == "GLB":
            keep(nest.tensor_name, points(nest, out, layout.repeat))
    return holds


def dram_read_bytes(nest: NestOp, read: Read, others: int, capacity: int | None, word: int) -> int:
    """Bytes `nest` reads of a DRAM tensor over the whole program, re-fetches included;
    `others` is the GLB footprint of the other resident tensors."""
    loops = nest.loop_list()
    used = indexing(read.indices)
    factor = 1
    for i, loop in enumerate(loops):
        if loop.var.data in used or loop.spatial_axis is not None:
            continue
        inner = [lp.extent.data for lp in loops[i + 1 :] if lp.var.data in used]
        if not inner:
            continue
        if capacity is None or math.prod(inner) * word + others <= capacity:
            continue
        factor *= loop.extent.data
    return points(nest, used) * factor * word


def rf_read_bytes(nest: NestOp, read: Read, word: int) -> int:
    """Bytes `nest` reads of a tensor staged in the register file."""
    used = indexing(read.indices)
    again = math.prod(
        loop.extent.data
        for loop in nest.loop_list()
        if loop.var.data not in used and loop.spatial_axis is None
    )
    return points(nest, used) * again * word


def output_bytes(nest: NestOp, word: int) -> int:
    """Bytes of the output of `nest` (written once)."""
    return points(nest, indexing(nest.output_indices)) * word


@dataclass(frozen=True)
class Transfer:
    """One transfer to emit: attributed Einsum, tensor, levels and total bytes."""

    einsum: str
    tensor: str
    source: str
    dest: str
    bytes: int


def transfers(
    layout: Layout, holds: Mapping[str, int], capacity: int | None, producers: Mapping[str, str]
) -> list[Transfer]:
    """DRAM reads and writes and RF reads of the cascade, in program order of the Einsums;
    `producers` maps each computed tensor to the unit that computes it."""
    total = sum(holds.values())
    out: list[Transfer] = []
    for nest in layout.nests:
        name = nest.tensor_name
        for read in reads(nest, layout):
            if read.level == "DRAM":
                others = total - holds.get(read.tensor, 0)
                size = dram_read_bytes(nest, read, others, capacity, layout.word)
                out.append(Transfer(name, read.tensor, "DRAM", "GLB", size))
            elif read.level == "RF" and producers.get(read.tensor, nest.unit_name) != (
                nest.unit_name
            ):
                out.append(
                    Transfer(name, read.tensor, "RF", "PE", rf_read_bytes(nest, read, layout.word))
                )
        if nest.level_names()[-1] == "DRAM":
            out.append(Transfer(name, name, "GLB", "DRAM", output_bytes(nest, layout.word)))
    return [t for t in out if t.bytes > 0]
