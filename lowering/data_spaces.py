"""The data spaces of a loop nest, as the nest analysis sees them.

A data space is one tensor a nest touches: each operand it reads (a view's readers read its
source: BK reads K, where K is stored) and its output. Its *projection* says which loop
variables index each of its dimensions, with what coefficient (`m1*M0+m0` is `256*m1 + m0`).
A running value (the output of an Einsum with an iterative rank, RM) holds only its current
value, so the iterative index is dropped from its projection wherever it is read or written:
its producer updates it every step (a read-modify-write, like a partial sum, when it reads its
own previous value; an overwrite when it does not: `RD[m1+1] = SPD + SLD` never reads RD) and
its readers read the current, previous or final value from the same storage. Self reads are not data
spaces of their own. Two reads of the same tensor with the same projection (PRM reads RM at
m1 and m1+1) are one data space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.dialects.loopnest import NestOp

Projection = tuple[tuple[tuple[int, str], ...], ...]
"""Per tensor dimension, its (coefficient, loop variable) terms."""


@dataclass(frozen=True)
class DataSpace:
    """One tensor of a nest: its stored name, home level, the levels that keep it when the
    nest says so, its projection and whether the nest writes it."""

    name: str
    home: str
    kept: tuple[str, ...] | None
    projection: Projection
    output: bool
    accumulates: bool = False
    """For an output: whether the nest reads back what it wrote (a reduction, or a running
    value read by its own Einsum); an output that is only overwritten is never read."""

    def variables(self) -> set[str]:
        """The loop variables that index it."""
        return {v for dim in self.projection for _, v in dim}


def view_source(
    views: Mapping[str, tuple[str, str]], tensor: str, level: str
) -> tuple[str, str]:
    """The tensor stored for `tensor` read at `level`, and its level: through views (BK reads
    K in DRAM) to their source, else the tensor itself."""
    while tensor in views:
        tensor, level = views[tensor]
    return tensor, level


def running_positions(nests: Sequence[NestOp]) -> dict[str, int]:
    """Running value -> the position of its iterative index among its output indices."""
    out: dict[str, int] = {}
    for nest in nests:
        it = nest.iterative_rank()
        if it is None:
            continue
        for i, index in enumerate(nest.output_indices):
            offset = index.as_offset()
            if offset is not None and offset[0] == it:
                out[nest.tensor_name] = i
    return out


def _projection(
    indices: Sequence[IndexExpr], sizes: Mapping[str, int], drop: int | None
) -> Projection:
    dims = []
    for position, index in enumerate(indices):
        if position == drop:
            continue
        terms = tuple(
            (term.coef * math.prod(sizes[s] for s in term.sizes), term.var)
            for term in index.terms
            if term.var is not None
        )
        if terms:  # a constant index (a final value, `RM[M, p]`) spans one point
            dims.append(terms)
    return tuple(dims)


def data_spaces(
    nest: NestOp,
    views: Mapping[str, tuple[str, str]],
    running: Mapping[str, int],
    sizes: Mapping[str, int],
) -> list[DataSpace]:
    """The data spaces of `nest`: its reads (views resolved), then its output."""
    homes = nest.level_names()
    kept = nest.kept_levels()
    out: list[DataSpace] = []
    seen: set[tuple[str, Projection]] = set()
    value: SSAValue | None
    for i, (value, indices) in enumerate(nest.accesses()):
        if value is None:
            continue
        tensor, home = view_source(views, nest.access_name(value), homes[i])
        projection = _projection(indices, sizes, running.get(nest.access_name(value)))
        if (tensor, projection) in seen:
            continue
        seen.add((tensor, projection))
        exact = kept[i]
        chain = tuple(exact) if exact is not None else None
        if tensor != nest.access_name(value):
            chain = None  # a view's reader keeps the source as the source's home says
        out.append(DataSpace(tensor, home, chain, projection, False))
    projection = _projection(nest.output_indices, sizes, running.get(nest.tensor_name))
    chain = tuple(kept[-1]) if kept[-1] is not None else None
    accumulates = bool(nest.reduced_variables()) or any(v is None for v, _ in nest.accesses())
    out.append(DataSpace(nest.tensor_name, homes[-1], chain, projection, True, accumulates))
    return out


def tile_words(space: DataSpace, extents: Mapping[str, int]) -> int:
    """Words of the tile of `space` covered by loops of the given extents (variables not in
    `extents` count as one point): each dimension spans sum(coef * (extent - 1)) + 1."""
    words = 1
    for dim in space.projection:
        words *= sum(abs(c) * (extents.get(v, 1) - 1) for c, v in dim) + 1
    return words
