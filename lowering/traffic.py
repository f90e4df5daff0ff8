"""Data movement of a lowered kernel: the transfers (the buffer's working set: `buffers`).

- **DRAM reads** (`dram_read_bytes`): a DRAM tensor is read once per sweep of the loops that
  index it, times the trip count of every temporal loop that does not index it but encloses one
  that does, unless the part indexed inside that loop fits in the GLB next to the other
  resident tensors (it then stays resident). A view's readers are charged for its source.
  In a fused pipeline without running values, a DRAM tensor the GLB holds for an iteration is
  fetched once, by its first reader; the others read it from the GLB.
- **DRAM writes**: an output homed in DRAM is written once.
- **GLB**: a computed tensor homed in the GLB is written into it once and read by each
  consumer as often as an RF-staged one (below).
- **RF**: a tensor staged in the register file between two units is read from it by its
  consumer once per use (one value per index point of the loops that index it, again for every
  temporal loop that does not but encloses a temporal loop that does; otherwise the value
  stays in the PE's registers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.dialects.loopnest import NestOp


def view_source(
    views: Mapping[str, tuple[str, str]], tensor: str, level: str
) -> tuple[str, str]:
    """The tensor stored for `tensor` read at `level`, and its level: through views (BK reads
    K in DRAM) to their source, else the tensor itself."""
    while tensor in views:
        tensor, level = views[tensor]
    return tensor, level


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
        return view_source(self.views, tensor, level)


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
    """Bytes `nest` reads of a tensor staged on chip (RF or GLB): one value per index point of
    the loops that index it, again for every temporal loop that does not index it but encloses
    a temporal loop that does (otherwise the value stays in the PE's register meanwhile)."""
    used = indexing(read.indices)
    loops = nest.loop_list()
    again = 1
    for i, loop in enumerate(loops):
        if loop.var.data in used or loop.spatial_axis is not None:
            continue
        if any(lp.var.data in used and lp.spatial_axis is None for lp in loops[i + 1 :]):
            again *= loop.extent.data
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
    """DRAM reads and writes, GLB writes and reads of computed tensors and RF reads of the
    kernel, in program order of the Einsums; `producers` maps each computed tensor to the unit
    that computes it."""
    total = sum(holds.values())
    shared = layout.iterative is None and bool(layout.pipeline)
    fetched: set[str] = set()
    out: list[Transfer] = []
    for nest in layout.nests:
        name = nest.tensor_name
        for read in reads(nest, layout):
            if read.level == "DRAM":
                if shared and read.tensor in holds and read.tensor in fetched:
                    continue
                fetched.add(read.tensor)
                others = total - holds.get(read.tensor, 0)
                size = dram_read_bytes(nest, read, others, capacity, layout.word)
                out.append(Transfer(name, read.tensor, "DRAM", "GLB", size))
            elif read.level == "GLB" and read.tensor in producers:
                size = rf_read_bytes(nest, read, layout.word)
                out.append(Transfer(name, read.tensor, "GLB", "PE", size))
            elif read.level == "RF" and producers.get(read.tensor, nest.unit_name) != (
                nest.unit_name
            ):
                out.append(
                    Transfer(name, read.tensor, "RF", "PE", rf_read_bytes(nest, read, layout.word))
                )
        level = nest.level_names()[-1]
        if level == "DRAM":
            out.append(Transfer(name, name, "GLB", "DRAM", output_bytes(nest, layout.word)))
        elif level == "GLB":
            out.append(Transfer(name, name, "PE", "GLB", output_bytes(nest, layout.word)))
    return [t for t in out if t.bytes > 0]
