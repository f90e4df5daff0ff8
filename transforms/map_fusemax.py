"""`map-fusemax`: attach FuseMax's mapping (MICRO 2024, §4 of the reference) to a 1-pass cascade.

Everything is found by structure:
- the key rank is the split rank R = R1 x R0 over whose outer level R1 the running values
  (iterative Einsums) iterate; R0 is the key tile;
- the query rank P is the largest other rank of those running values (or `rank=P`); their
  remaining ranks (batch, heads) are outermost;
- Einsums that iterate the key tile R0 run on the 2D array (`pe2d`) with P0 and R0 spatial on
  axes 0 and 1; the others on the 1D array (`pe1d`) with P0 spatial (`binding=matmul`: only
  contractions, QK and SLNV, run on the 2D array, as on FLAT's hardware, the "+cascade" step
  of the paper's ablation; the 1D array then iterates R0 in time);
- P is tiled as P2 x P1 x P0 with P0 = `tile` (the array side) and P1 the largest divisor of
  P / P0 for which the queries' state (inputs without the key rank, running values) for P1 x P0
  queries plus one key tile of each blocked input fit in the global buffer;
- loops: batch/heads, P2, R1, P1, the Einsum's other ranks (E or F), then P0, R0;
- storage: cascade inputs and outputs and the blocked copies of inputs in DRAM, running values
  in the global buffer (GLB), other intermediates in PE registers when producer and consumers
  share a unit, else in the staging register file (RF).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr, einsum_ranks
from einsum_opt.dialects.einsum_syntax import rank_of, variable_of
from einsum_opt.transforms.map_baselines import is_contraction, largest_fitting_divisor
from einsum_opt.transforms.rewriting import Read, is_returned, ranks_of, resolved


@dataclass(frozen=True)
class FuseMaxLayout:
    """The ranks that play FuseMax's roles in one cascade."""

    key_outer: str  # R1
    key_inner: str  # R0
    query: str  # P
    outer: tuple[str, ...]  # batch, heads


def find_layout(cascade: CascadeOp, query: str | None = None) -> FuseMaxLayout:
    """Identify key, key tile, query and outer ranks; PassFailedException if not 1-pass-shaped."""
    table = dict(cascade.ranks.data)
    for op in cascade.einsums():
        it = op.iterative_rank()
        if it is None:
            continue
        split = table.get(rank_of(it))
        if not isinstance(split, tuple):
            continue
        others = [r for r in op.result_type.rank_names if r != rank_of(it)]
        if not others:
            continue
        sizes = cascade.rank_sizes()
        if query is None:
            query = max(others, key=lambda r: sizes[r])  # first of the largest
        elif query not in others:
            raise PassFailedException(
                f"map-fusemax: rank {query} is not a rank of the running value {op.tensor_name}"
            )
        return FuseMaxLayout(rank_of(it), split[1], query, tuple(r for r in others if r != query))
    raise PassFailedException(
        f"map-fusemax: @{cascade.cascade_name} has no running value over a split rank "
        "(map a 1-pass cascade: run pass-fusion first)"
    )


def _blocked_inputs(cascade: CascadeOp) -> set[SSAValue]:
    """Einsums that only copy (re-block) a cascade input."""
    args = set(cascade.body.block.args)
    out: set[SSAValue] = set()
    for op in cascade.einsums():
        body = resolved(op)
        if isinstance(body, Read) and body.value in args:
            out.add(op.result)
    return out


def query_tile(cascade: CascadeOp, layout: FuseMaxLayout, tile: int, buffer: int, word: int) -> int:
    """P1: the largest divisor of P / P0 whose per-block state fits the buffer."""
    sizes = cascade.rank_sizes()
    if sizes[layout.query] % tile:
        raise PassFailedException(
            f"map-fusemax: tile {tile} does not divide the query rank {layout.query} "
            f"of size {sizes[layout.query]}"
        )
    blocked = _blocked_inputs(cascade)
    key_rank = next(
        (p for n, p in cascade.ranks.data if n == layout.key_outer and isinstance(p, tuple)),
        (layout.key_outer, layout.key_inner),
    )[0]
    resident: list[tuple[str, ...]] = [
        t.rank_names for _, t in cascade.inputs() if key_rank not in t.rank_names
    ]
    resident += [op.result_type.rank_names for op in cascade.einsums() if op.iterative_rank()]
    resident += [ranks_of(v) for v in blocked]

    def footprint(queries: int) -> int:
        skip = {layout.key_outer, *layout.outer}
        words = sum(
            math.prod(queries if r == layout.query else sizes[r] for r in ranks if r not in skip)
            for ranks in resident
        )
        return words * word

    blocks = sizes[layout.query] // tile
    best = largest_fitting_divisor(blocks, lambda d: footprint(d * tile) <= buffer)
    if best is None:
        raise PassFailedException(
            f"map-fusemax: the state of {tile} queries ({footprint(tile)} bytes) does not fit "
            f"the {buffer}-byte buffer"
        )
    return best


def _levels(cascade: CascadeOp, units: dict[EinsumOp, str]) -> dict[str, str]:
    inputs = {n for n, _ in cascade.inputs()}
    blocked = _blocked_inputs(cascade)
    levels = dict.fromkeys(inputs, "DRAM")
    for op in cascade.einsums():
        if op.result in blocked or is_returned(cascade, op.result):
            level = "DRAM"
        elif op.iterative_rank():
            level = "GLB"
        else:
            consumers = {u.operation for u in op.result.uses}
            same = all(units.get(c) == units[op] for c in consumers if isinstance(c, EinsumOp))
            level = "PE" if same else "RF"
        levels[op.tensor_name] = level
    return levels


def fusemax_mapping(
    op: EinsumOp, layout: FuseMaxLayout, p1: int, tile: int, unit: str, levels: dict[str, str]
) -> MappingAttr:
    """The FuseMax mapping of one Einsum."""
    ranks = einsum_ranks(op)
    p = layout.query
    has_p = p in ranks
    order = [r for r in layout.outer if r in ranks]
    order += [f"{p}2"] if has_p else []
    order += [layout.key_outer] if layout.key_outer in ranks else []
    order += [f"{p}1"] if has_p else []
    order += [r for r in ranks if r not in (p, layout.key_outer, layout.key_inner, *layout.outer)]
    order += [f"{p}0"] if has_p else []
    order += [layout.key_inner] if layout.key_inner in ranks else []
    space = {f"{p}0": 0} if has_p else {}
    if unit == "pe2d" and layout.key_inner in ranks:
        space[layout.key_inner] = 1
    tensors = [op.access_name(v) for v, _ in op.accesses()] + [op.tensor_name]
    return MappingAttr.make(
        unit,
        order,
        {p: [p1 * tile, tile]} if has_p else {},
        space,
        {t: levels[t] for t in dict.fromkeys(tensors)},
    )


Binding = Literal["fusemax", "matmul"]
BINDINGS: tuple[str, ...] = get_args(Binding)
"""How `map-fusemax` binds Einsums to arrays: FuseMax's way, or only contractions on 2D."""


def map_fusemax(
    cascade: CascadeOp,
    query: str | None = None,
    tile: int = 256,
    buffer: int = 16 * 2**20,
    word: int = 2,
    binding: str = "fusemax",
) -> FuseMaxLayout:
    """Attach the FuseMax mapping to every Einsum of a 1-pass cascade."""
    if binding not in BINDINGS:
        raise PassFailedException(
            f"map-fusemax: unknown binding '{binding}' (expected {' or '.join(BINDINGS)})"
        )
    layout = find_layout(cascade, query)
    p1 = query_tile(cascade, layout, tile, buffer, word)
    inner = variable_of(layout.key_inner)
    units = {
        op: "pe2d"
        if (is_contraction(op) if binding == "matmul" else inner in op.variables())
        else "pe1d"
        for op in cascade.einsums()
    }
    levels = _levels(cascade, units)
    for op in cascade.einsums():
        op.attributes[MAPPING_ATTR] = fusemax_mapping(op, layout, p1, tile, units[op], levels)
    return layout


@dataclass(frozen=True)
class MapFuseMaxPass(ModulePass):
    """FuseMax's mapping and binding for a 1-pass cascade (`map-fusemax{tile=256
    buffer=16777216 word=2 binding=fusemax}`, optionally `rank=P` for the query rank;
    `binding=matmul` puts only the contractions on the 2D array)."""

    name = "map-fusemax"
    rank: str | None = None
    tile: int = 256
    buffer: int = 16 * 2**20
    word: int = 2
    binding: Binding = "fusemax"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_fusemax(cascade, self.rank, self.tile, self.buffer, self.word, self.binding)
