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
- P is tiled as P2 x P1 x P0 with P0 the arrays' side along axis 0 (`tile`; the largest
  divisor of P below it when P is smaller) and P1 the largest divisor of P / P0 for which the
  mapped cascade fits the global buffer, counted by the lowering itself (`working_set`);
- loops, Timeloop's way: batch/heads, P2 and R1 at the root (DRAM); P1 and the Einsum's other
  ranks (E or F) at the global buffer; P0 and R0 spatial under the level that fans out to the
  unit's PEs (so one key tile serves all P1 x P0 queries held on chip);
- storage: cascade inputs and outputs and the blocked copies of inputs in DRAM, running values
  in the global buffer, other intermediates in PE registers when producer and consumers
  share a unit, else in the staging level (FuseMax's RF); an output goes from the PEs
  straight to DRAM, bypassing the buffer.
- The units, levels, sides and capacity come from the architecture (`arch=`, else the
  module's, else fusemax): the 2D and the 1D array, the root, the global buffer and the
  staging level (`mapping_roles`).
"""

from __future__ import annotations

from collections.abc import Callable
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
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.hardware import REGISTERS
from einsum_opt.lowering.working_set import peak_bytes
from einsum_opt.transforms.map_baselines import is_contraction
from einsum_opt.transforms.mapping_roles import Roles, divisors, largest_divisor_at_most, roles
from einsum_opt.transforms.rewriting import Read, is_returned, resolved


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
            raise OpPassFailedException(
                op,
                f"map-fusemax: rank {query} is not a rank of the running value {op.tensor_name}"
            )
        return FuseMaxLayout(rank_of(it), split[1], query, tuple(r for r in others if r != query))
    raise OpPassFailedException(
        cascade,
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


def query_tile(
    cascade: CascadeOp, layout: FuseMaxLayout, tile: int, buildmap: Callable[[int], None],
    fits: Callable[[], bool],
    shortfall: Callable[[], str] = lambda: "",
) -> int:
    """P1: the largest divisor of P / P0 for which the mapped cascade fits the buffer (as the
    lowering counts it); `buildmap(p1)` attaches the mapping for a candidate, `shortfall()`
    says by how much the smallest one misses."""
    sizes = cascade.rank_sizes()
    blocks = sizes[layout.query] // tile
    candidates = divisors(blocks)
    low, high = 0, len(candidates) - 1
    buildmap(candidates[0])
    if not fits():
        raise OpPassFailedException(
            cascade,
            f"map-fusemax: the state of {tile} queries does not fit the buffer{shortfall()}"
        )
    while low < high:  # the footprint grows with P1: the last candidate that fits
        middle = (low + high + 1) // 2
        buildmap(candidates[middle])
        if fits():
            low = middle
        else:
            high = middle - 1
    return candidates[low]


def _levels(cascade: CascadeOp, units: dict[EinsumOp, str], where: Roles) -> dict[str, str]:
    inputs = {n for n, _ in cascade.inputs()}
    blocked = _blocked_inputs(cascade)
    levels = dict.fromkeys(inputs, where.root)
    for op in cascade.einsums():
        if op.result in blocked or is_returned(cascade, op.result):
            level = where.root
        elif op.iterative_rank():
            level = where.buffer
        else:
            consumers = {u.operation for u in op.result.uses}
            same = all(units.get(c) == units[op] for c in consumers if isinstance(c, EinsumOp))
            level = REGISTERS if same else (where.staging or where.buffer)
        levels[op.tensor_name] = level
    return levels


def fusemax_mapping(
    op: EinsumOp,
    layout: FuseMaxLayout,
    p1: int,
    tile: int,
    unit: str,
    levels: dict[str, str],
    where: Roles,
    outputs: set[str],
) -> MappingAttr:
    """The FuseMax mapping of one Einsum: batch/heads, P2 and the key tiles at the root; P1
    and the other ranks at the global buffer; P0 and R0 spatial under the unit's fan-out
    level. An output goes from the PEs straight to the root."""
    ranks = einsum_ranks(op)
    p = layout.query
    has_p = p in ranks
    outer = [r for r in layout.outer if r in ranks]
    outer += [f"{p}2"] if has_p else []
    outer += [layout.key_outer] if layout.key_outer in ranks else []
    middle = [f"{p}1"] if has_p else []
    middle += [
        r for r in ranks if r not in (p, layout.key_outer, layout.key_inner, *layout.outer)
    ]
    inner = [f"{p}0"] if has_p else []
    inner += [layout.key_inner] if layout.key_inner in ranks else []
    space = {f"{p}0": 0} if has_p else {}
    if unit == where.matrix and layout.key_inner in ranks:
        space[layout.key_inner] = 1
    else:
        inner = [r for r in inner if r in space]
        middle += [r for r in ([layout.key_inner] if layout.key_inner in ranks else [])]
    at: dict[str, str] = {}
    for block, level in (
        (outer, where.root),
        (middle, where.buffer),
        (inner, where.fanout_level(unit)),
    ):
        if block:
            at[block[0]] = level
    tensors = [op.access_name(v) for v, _ in op.accesses()] + [op.tensor_name]
    keep = {t: [where.root, REGISTERS] for t in tensors if t in outputs}
    return MappingAttr.make(
        unit,
        [*outer, *middle, *inner],
        {p: [p1 * tile, tile]} if has_p else {},
        space,
        {t: levels[t] for t in dict.fromkeys(tensors)},
        "",
        at,
        keep,
    )


Binding = Literal["fusemax", "matmul"]
BINDINGS: tuple[str, ...] = get_args(Binding)
"""How `map-fusemax` binds Einsums to arrays: FuseMax's way, or only contractions on 2D."""


def map_fusemax(
    cascade: CascadeOp,
    query: str | None = None,
    tile: int | None = None,
    buffer: int | None = None,
    binding: str = "fusemax",
    arch: str | None = None,
) -> FuseMaxLayout:
    """Attach the FuseMax mapping to every Einsum of a 1-pass cascade, on `arch` (a name or a
    path; else the module's architecture, else fusemax): P0 spans the arrays' side (or the
    largest divisor of P below it), P1 is the largest block whose state fits the buffer
    (`buffer` bytes if given, else the architecture's)."""
    if binding not in BINDINGS:
        raise PassFailedException(
            f"map-fusemax: unknown binding '{binding}' (expected {' or '.join(BINDINGS)})"
        )
    where = roles("map-fusemax", arch, cascade)
    layout = find_layout(cascade, query)
    size = cascade.rank_sizes()[layout.query]
    if tile is None:
        tile = largest_divisor_at_most(size, where.side())
    elif tile <= 0 or size % tile:
        raise OpPassFailedException(
            cascade,
            f"map-fusemax: tile {tile} does not divide the query rank {layout.query} "
            f"of size {size}"
        )
    key_tile = cascade.rank_sizes()[layout.key_inner]
    if key_tile > where.key_side():
        raise OpPassFailedException(
            cascade,
            f"map-fusemax: key tile {layout.key_inner} = {key_tile} is wider than {where.matrix}, "
            f"which has {where.key_side()} PEs along axis 1 (fuse with tile={where.key_side()}, "
            "or a divisor of it)"
        )
    inner = variable_of(layout.key_inner)
    units = {
        op: where.matrix
        if (is_contraction(op) if binding == "matmul" else inner in op.variables())
        else where.vector
        for op in cascade.einsums()
    }
    levels = _levels(cascade, units, where)
    outputs = set(cascade.output_names())
    limit = buffer if buffer is not None else where.capacity

    def attach(p1: int) -> None:
        for op in cascade.einsums():
            op.attributes[MAPPING_ATTR] = fusemax_mapping(
                op, layout, p1, tile, units[op], levels, where, outputs
            )

    def fits() -> bool:
        return limit is None or peak_bytes(cascade, where.arch).get(where.buffer, 0) <= limit

    def shortfall() -> str:
        needed = peak_bytes(cascade, where.arch).get(where.buffer, 0)
        return f" ({where.buffer}: {needed:,} bytes needed, {limit:,} available)"

    attach(query_tile(cascade, layout, tile, attach, fits, shortfall))
    return layout


@dataclass(frozen=True)
class MapFuseMaxPass(ModulePass):
    """FuseMax's mapping and binding for a 1-pass cascade (`map-fusemax{arch=fusemax}`;
    optionally `rank=P` for the query rank, `tile` for P0 and `buffer` for the bytes the query
    block must fit in, both read from the architecture by default; `binding=matmul` puts only
    the contractions on the 2D array)."""

    name = "map-fusemax"
    arch: str | None = None
    rank: str | None = None
    tile: int | None = None
    buffer: int | None = None
    binding: Binding = "fusemax"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_fusemax(cascade, self.rank, self.tile, self.buffer, self.binding, self.arch)
