"""The global buffer's working set of a lowered kernel, for one repetition (`glb_holds`).

- **With running values** (a pipeline over the iterative loop, FuseMax), for one repetition of
  the repeat loops: every DRAM tensor read without the iterative loop (Q) whole, every DRAM
  tensor read with it (K, V through BK, BV) one tile (its loops other than the repeat and
  pipeline loops), every running value (RM, RD, RNV) without the iterative loop, and any other
  tensor homed in the GLB whole. This is the rule `map-fusemax` uses to choose P1
  (`query_tile`), over loop variables instead of ranks.
- **A fused pipeline without running values** (FLAT), for one iteration of the fused loops:
  the computed tensors homed in the GLB, in allocations that tensors share when their
  lifetimes do not overlap (an Einsum may write over an operand it reads for the last time
  when both have the same size: `SN = exp(QK - GM)` reuses QK's buffer); then every DRAM
  tensor's part for the iteration, if it fits beside them (it is then fetched once and stays);
  a DRAM tensor that does not fit is streamed through and holds nothing.
- Otherwise (plain stages): the tensors homed in the GLB, whole.

An allocation shared by several tensors is listed under their names joined by `, `.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.lowering.traffic import Layout, indexing, points, reads


def glb_holds(layout: Layout, capacity: int | None = None) -> dict[str, int]:
    """Allocation -> bytes the GLB keeps for one repetition (see the module docstring)."""
    if layout.iterative is None and layout.pipeline:
        return _fused_holds(layout, capacity)
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


@dataclass(frozen=True)
class Produced:
    """A computed tensor the GLB holds: its name, its bytes and the tensors its Einsum reads."""

    name: str
    size: int
    reads: frozenset[str] | set[str]


@dataclass
class _Allocation:
    """A region of the GLB: the tensors it holds in turn, its size and the index of the last
    reader of the tensor it holds now."""

    names: list[str]
    size: int
    end: int


def share_space(produced: Sequence[Produced]) -> dict[str, int]:
    """Allocations (tensor names joined by `, `) -> bytes, for tensors produced in this order
    (each read by the later ones that list it): a tensor takes the smallest free allocation
    that fits it (else the largest free one, grown; else a new one); an allocation is free
    once its tensor's last reader has run, or at that reader when the reader's output has the
    same size (it writes over its operand). An item of size 0 only reads (it is stored
    elsewhere)."""
    last: dict[str, int] = {}
    for i, item in enumerate(produced):
        for name in item.reads:
            last[name] = i
    allocations: list[_Allocation] = []
    for i, item in enumerate(produced):
        if item.size == 0:
            continue
        free = [
            a
            for a in allocations
            if a.end < i or (a.end == i and a.names[-1] in item.reads and a.size == item.size)
        ]
        fitting = sorted((a for a in free if a.size >= item.size), key=lambda a: a.size)
        chosen = fitting[0] if fitting else max(free, key=lambda a: a.size, default=None)
        end = last.get(item.name, i)
        if chosen is None:
            allocations.append(_Allocation([item.name], item.size, end))
        else:
            chosen.names.append(item.name)
            chosen.size = max(chosen.size, item.size)
            chosen.end = end
    return {", ".join(a.names): a.size for a in allocations}


def _fused_holds(layout: Layout, capacity: int | None) -> dict[str, int]:
    produced: list[Produced] = []
    for nest in layout.nests:
        operands = {r.tensor for r in reads(nest, layout)}
        if nest.level_names()[-1] == "GLB":
            size = points(nest, indexing(nest.output_indices), layout.pipeline) * layout.word
            produced.append(Produced(nest.tensor_name, size, operands))
        elif produced:
            # A reader homed elsewhere still ends the lifetime of what it reads.
            produced.append(Produced(nest.tensor_name, 0, operands))
    holds = share_space(produced)
    used = sum(holds.values())
    names = {n.tensor_name for n in layout.nests}
    for nest in layout.nests:
        for read in reads(nest, layout):
            if read.level != "DRAM" or read.tensor in names or read.tensor in holds:
                continue
            part = points(nest, indexing(read.indices), layout.pipeline) * layout.word
            if capacity is None or used + part <= capacity:
                holds[read.tensor] = part
                used += part
    return holds
