"""`map-unfused` and `map-flat`: the baselines of the FuseMax evaluation, for any cascade, on
any architecture with a 2D and a 1D array (`arch=`; see `mapping_roles`).

Both bind by structure: a *contraction* (a product of two tensors reduced with `+`: QK, AV,
the linear layers) runs on the 2D array, every other Einsum on the 1D array.

- The row rank P is the largest rank every Einsum's output has (or `rank=P`); the other ranks
  they all have (batch, heads) are outermost. P is tiled P2 x P1 x P0: P0 = `tile` rows (the
  arrays' side, by default), P1 x P0 is the row block.
- Contractions are output-stationary: P0 spatial on axis X, on axis Y the largest other output
  rank (the keys M of QK, split M1 x M0 by the array's side; F of AV, whole), the reduced ranks
  innermost in time. Loops: outer ranks and P2 at the root; P1, the column's outer part and the
  reduced ranks at the global buffer; the spatial ones under the array's fan-out level.
- 1D Einsums: P0 spatial, the other ranks in time at the global buffer; or, when not even one
  tile of rows fits the buffer (a row of M values from very long sequences), one block of rows
  at a time with the largest other rank spatial (split by the array's side).
- An output leaves the PEs for DRAM straight (it bypasses the buffer), and an Einsum that
  directly follows its producer on the same unit with the same loops reads it from the PE
  registers (FLAT's SD reads SN there).

`map-unfused`: every maximal run of consecutive Einsums on one unit is a kernel (QK | the
softmax | AV), named by `kernel_name` (made unique with a suffix `_2`, ... if needed); a tensor
crossing kernels goes through DRAM; each kernel's row block is the largest that fits the
buffer, as the lowering counts it (`working_set`).

`map-flat`: one kernel fused through the global buffer (FLAT): its inputs stream from DRAM
into the arrays, re-read once per tile, and its intermediates stay on chip at the largest row
block that fits (the whole P: head granularity). When not even one tile of rows fits, the
intermediates the arrays pass to each other go off chip (through DRAM, as in the unfused
kernels), and the 1D work runs on the largest row block that fits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr, einsum_ranks
from einsum_opt.dialects.einsum_syntax import rank_of
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.hardware import REGISTERS
from einsum_opt.lowering.working_set import peak_bytes, root_words
from einsum_opt.transforms.mapping_roles import Roles, divisors, largest_divisor_at_most, roles
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
        raise OpPassFailedException(cascade, f"{pass_name}: @{cascade.cascade_name} has no Einsum")
    common = [
        r
        for r in einsums[0].result_type.rank_names
        if all(r in op.result_type.rank_names for op in einsums)
    ]
    if rank is not None:
        if rank not in common:
            raise OpPassFailedException(
                cascade,
                f"{pass_name}: rank {rank} is not a rank of every Einsum's output in "
                f"@{cascade.cascade_name} (those are: {', '.join(common) or 'none'})"
            )
        row = rank
    elif not common:
        raise OpPassFailedException(
            cascade,
            f"{pass_name}: no rank is common to every Einsum's output in "
            f"@{cascade.cascade_name}: nothing to tile into row blocks"
        )
    else:
        sizes = cascade.rank_sizes()
        row = max(common, key=lambda r: sizes[r])
    return RowLayout(row, tuple(r for r in common if r != row))


def units_of(cascade: CascadeOp, where: Roles) -> dict[EinsumOp, str]:
    """Contractions on the 2D array, everything else on the 1D array."""
    return {
        op: where.matrix if is_contraction(op) else where.vector for op in cascade.einsums()
    }


@dataclass(frozen=True)
class Plan:
    """How a baseline maps a cascade: units, homes, exact keeps, kernels, row tile."""

    rows: RowLayout
    tile: int
    where: Roles
    units: dict[EinsumOp, str]
    homes: dict[str, str]
    keeps: dict[EinsumOp, dict[str, list[str]]]
    kernels: dict[EinsumOp, str]


def _split(size: int, side: int) -> tuple[int, int]:
    """(outer, inner) trip counts of a rank spread over an array axis of `side` PEs."""
    inner = largest_divisor_at_most(size, side)
    return size // inner, inner


def baseline_mapping(
    op: EinsumOp, plan: Plan, block: int, rows_spatial: bool, stationary: bool = False
) -> MappingAttr:
    """The mapping of one Einsum for a row block of `block` rows (see the module docstring);
    `stationary`: a contraction keeps a tile of its largest other rank while the whole row
    block passes (weight-stationary: that rank's outer part at the root, as FuseMax's key
    tiles) rather than the row block first."""
    where, rows = plan.where, plan.rows
    unit = plan.units[op]
    sizes = op_sizes(op)
    ranks = einsum_ranks(op)
    p = rows.row
    outer = [r for r in rows.outer if r in ranks]
    output = [r for r in op.result_type.rank_names if r in ranks]
    others = [r for r in ranks if r not in (p, *rows.outer)]
    partition: dict[str, list[int]] = {}
    space: dict[str, int] = {}
    middle: list[str] = []
    inner: list[str] = []
    if unit == where.matrix or rows_spatial:
        partition[p] = [block, plan.tile]
        root = [*outer, f"{p}2"]
        middle.append(f"{p}1")
        inner.append(f"{p}0")
        space[f"{p}0"] = 0
        columns = [r for r in others if r in output] if unit == where.matrix else []
        if columns:
            column = max(columns, key=lambda r: sizes[r])
            c1, c0 = _split(sizes[column], where.key_side())
            if c1 > 1:
                partition[column] = [c0]
                middle.append(f"{column}1")
                inner.append(f"{column}0")
                space[f"{column}0"] = 1
            else:
                inner.append(column)
                space[column] = 1
            others = [r for r in others if r != column]
        reduced = [r for r in others if r not in output]
        if stationary and unit == where.matrix:
            split_column = [c for c in columns if f"{c}1" in middle]
            largest = max(
                [*(r for r in reduced if sizes[r] > where.key_side()), *split_column],
                key=lambda r: sizes[r],
                default=None,
            )
            if largest in split_column:
                middle.remove(f"{largest}1")
                root.append(f"{largest}1")
            elif largest is not None:
                r1, r0 = _split(sizes[largest], where.key_side())
                partition[largest] = [r0]
                root.append(f"{largest}1")
                middle.append(f"{largest}0")
                others = [r for r in others if r != largest]
        middle += others
    else:
        # One block of rows at a time, the largest other rank across the PEs.
        partition[p] = [block]
        root = [*outer, f"{p}1"]
        middle.append(f"{p}0")
        if others:
            spread = max(others, key=lambda r: sizes[r])
            s1, s0 = _split(sizes[spread], where.side())
            if s1 > 1:
                partition[spread] = [s0]
                middle += [r for r in others if r != spread] + [f"{spread}1"]
                inner.append(f"{spread}0")
                space[f"{spread}0"] = 0
            else:
                middle += [r for r in others if r != spread]
                inner.append(spread)
                space[spread] = 0
    at: dict[str, str] = {}
    for loops, level in ((root, where.root), (middle, where.buffer)):
        if loops:
            at[loops[0]] = level
    if inner:
        at[inner[0]] = where.fanout_level(unit)
    tensors = [op.access_name(v) for v, _ in op.accesses()] + [op.tensor_name]
    keep = dict(plan.keeps.get(op, {}))
    reduced_above = {r for r in root if r.rstrip("0123456789") in op_reduced(op)}
    if reduced_above:
        keep.pop(op.tensor_name, None)  # partial sums above the buffer stay in the buffer
    return MappingAttr.make(
        unit,
        [*root, *middle, *inner],
        partition,
        space,
        {t: plan.homes[t] for t in dict.fromkeys(tensors)},
        plan.kernels.get(op, ""),
        at,
        keep,
    )


def op_reduced(op: EinsumOp) -> set[str]:
    """The ranks `op` reduces."""
    return {rank_of(v) for v in op.reduced_variables()}


def op_sizes(op: EinsumOp) -> dict[str, int]:
    """The rank sizes of the cascade `op` is in."""
    cascade = op.parent_op()
    assert isinstance(cascade, CascadeOp)
    return cascade.rank_sizes()


def _check_tile(cascade: CascadeOp, rows: RowLayout, tile: int, pass_name: str) -> int:
    size = cascade.rank_sizes()[rows.row]
    if tile <= 0 or size % tile:
        raise OpPassFailedException(
            cascade,
            f"{pass_name}: tile {tile} does not divide the row rank {rows.row} of size {size}"
        )
    return size


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


def _keeps(
    cascade: CascadeOp, where: Roles, homes: dict[str, str], streamed: bool
) -> dict[EinsumOp, dict[str, list[str]]]:
    """Exact keep sets: what goes to DRAM leaves the PEs straight for it, and the inputs
    stream from DRAM into the PEs when `streamed` (reads of a predecessor's output from the PE
    registers are decided once the loops are known: `_register_reads`)."""
    inputs = {n for n, _ in cascade.inputs()}
    keeps: dict[EinsumOp, dict[str, list[str]]] = {}
    for op in cascade.einsums():
        keep: dict[str, list[str]] = {}
        if homes[op.tensor_name] == where.root:
            keep[op.tensor_name] = [where.root, REGISTERS]
        if streamed:
            for value, _ in op.accesses():
                name = op.access_name(value)
                if value is not None and name in inputs:
                    keep[name] = [where.root, REGISTERS]
        keeps[op] = keep
    return keeps


def _register_reads(cascade: CascadeOp, plan: Plan) -> None:
    """Let an Einsum read its predecessor's output from the PE registers when both run the
    same loops on the same unit (the value is still there); an output every reader takes from
    the registers is kept only there."""
    einsums = cascade.einsums()
    in_registers: dict[str, int] = {}
    for before, op in zip(einsums, einsums[1:], strict=False):
        first = before.attributes[MAPPING_ATTR]
        second = op.attributes[MAPPING_ATTR]
        assert isinstance(first, MappingAttr) and isinstance(second, MappingAttr)
        reads = {op.access_name(v) for v, _ in op.accesses() if v is not None}
        if (
            before.tensor_name in reads
            and plan.units[before] == plan.units[op]
            and first.loop_order == second.loop_order
            and first.partitions == second.partitions
            and first.spatial == second.spatial
            and plan.homes[before.tensor_name] != plan.where.root
        ):
            _set_level(op, before.tensor_name)
            in_registers[before.tensor_name] = in_registers.get(before.tensor_name, 0) + 1
    for op in einsums:
        readers = [u for u in op.result.uses if isinstance(u.operation, EinsumOp)]
        count = in_registers.get(op.tensor_name, 0)
        if count and count == len({id(u.operation) for u in readers}):
            _set_level(op, op.tensor_name)


def _set_level(op: EinsumOp, tensor: str) -> None:
    """Keep `tensor` only in the PE registers in `op`'s mapping."""
    mapping = op.attributes[MAPPING_ATTR]
    assert isinstance(mapping, MappingAttr)
    kept = _with_keep(mapping, tensor, [REGISTERS])
    op.attributes[MAPPING_ATTR] = MappingAttr.make(
        kept.unit_name,
        kept.loop_order,
        kept.partitions,
        kept.spatial,
        {**kept.levels, tensor: REGISTERS},
        kept.kernel_name,
        kept.boundaries,
        kept.keeps,
    )


def _fits(cascade: CascadeOp, where: Roles, kernel: str | None = None) -> bool:
    if where.capacity is None:
        return True
    peaks = peak_bytes(cascade, where.arch, kernel)
    return peaks.get(where.buffer, 0) <= where.capacity


def _choose_block(
    cascade: CascadeOp,
    plan: Plan,
    members: Sequence[EinsumOp],
    kernel: str | None,
) -> None:
    """Map `members` at the largest row blocks that fit, the 2D array's Einsums first (rows
    across the array, blocks of whole tiles), then the 1D array's: rows across the array if
    any tile of rows fits, else blocks of rows with another rank across (module docstring)."""
    size = cascade.rank_sizes()[plan.rows.row]
    matrix = [op for op in members if plan.units[op] == plan.where.matrix]
    vector = [op for op in members if plan.units[op] != plan.where.matrix]

    def attach(
        group: Sequence[EinsumOp], block: int, rows_spatial: bool, stationary: bool = False
    ) -> bool:
        for op in group:
            op.attributes[MAPPING_ATTR] = baseline_mapping(
                op, plan, block, rows_spatial, stationary
            )
        _register_reads(cascade, plan)
        return _fits(cascade, plan.where, kernel)

    tiles = [d * plan.tile for d in divisors(size // plan.tile)]
    rows = divisors(size)
    if vector:
        attach(vector, 1, False)  # the smallest footprint while the 2D array's block is chosen
    if matrix:
        # Output-stationary when the whole row range fits (each operand read once), else
        # weight-stationary at the largest row block that fits; stream inputs as a last resort.
        if attach(matrix, size, True):
            pass
        else:
            best = _largest(tiles, lambda block: attach(matrix, block, True, True))
            staged = _staged_inputs(plan, matrix)
            while best is None and staged:
                _stream(plan, matrix, staged.pop())
                best = _largest(tiles, lambda block: attach(matrix, block, True, True))
            attach(matrix, best if best is not None else plan.tile, True, True)
        _stream_if_no_reuse(cascade, plan, matrix, kernel)
    if vector:
        for candidates, spread in ((tiles, True), (rows, False)):
            best = _largest(candidates, partial(_attach_spread, attach, vector, spread))
            if best is not None:
                attach(vector, best, spread)
                return
        attach(vector, 1, False)  # nothing fits: the smallest block, reported as an overflow


def _attach_spread(
    attach: Callable[[Sequence[EinsumOp], int, bool], bool],
    group: Sequence[EinsumOp],
    spread: bool,
    block: int,
) -> bool:
    return attach(group, block, spread)


def _staged_inputs(plan: Plan, members: Sequence[EinsumOp]) -> list[str]:
    """What `members` read from DRAM through the buffer, smallest first."""
    cascade = members[0].parent_op()
    assert isinstance(cascade, CascadeOp)
    sizes = cascade.rank_sizes()
    found: dict[str, int] = {}
    for op in members:
        for value, _ in op.accesses():
            name = op.access_name(value)
            if (
                value is not None
                and plan.homes.get(name) == plan.where.root
                and name not in plan.keeps[op]
            ):
                ranks = value.type.rank_names  # type: ignore[attr-defined]
                found[name] = 1
                for rank in ranks:
                    found[name] *= sizes[rank]
    return sorted(found, key=lambda n: found[n])


def _stream(plan: Plan, members: Sequence[EinsumOp], tensor: str) -> None:
    """Let `members` read `tensor` from DRAM straight into the PEs (no buffer copy)."""
    for op in members:
        if any(op.access_name(v) == tensor for v, _ in op.accesses() if v is not None):
            plan.keeps[op][tensor] = [plan.where.root, REGISTERS]


def _stream_if_no_reuse(
    cascade: CascadeOp, plan: Plan, members: Sequence[EinsumOp], kernel: str | None
) -> None:
    """Stream from DRAM into the PEs each input the buffer saves no DRAM traffic for (read
    once either way): staging it would only add a buffer write and read."""
    for tensor in _staged_inputs(plan, members):
        before = root_words(cascade, plan.where.arch, tensor, kernel)
        saved = {op: op.attributes[MAPPING_ATTR] for op in members}
        for op in members:
            if any(op.access_name(v) == tensor for v, _ in op.accesses() if v is not None):
                mapping = saved[op]
                assert isinstance(mapping, MappingAttr)
                op.attributes[MAPPING_ATTR] = _with_keep(
                    mapping, tensor, [plan.where.root, REGISTERS]
                )
        if root_words(cascade, plan.where.arch, tensor, kernel) > before:
            for op in members:
                op.attributes[MAPPING_ATTR] = saved[op]
        else:
            _stream(plan, members, tensor)


def _with_keep(mapping: MappingAttr, tensor: str, levels: list[str]) -> MappingAttr:
    """`mapping` with `tensor` kept exactly in `levels`."""
    return MappingAttr.make(
        mapping.unit_name,
        mapping.loop_order,
        mapping.partitions,
        mapping.spatial,
        mapping.levels,
        mapping.kernel_name,
        mapping.boundaries,
        {**mapping.keeps, tensor: levels},
    )


def _largest(candidates: Sequence[int], fits: Callable[[int], bool]) -> int | None:
    """The largest candidate (ascending, fitting monotonically) that fits, or None."""
    if not candidates or not fits(candidates[0]):
        return None
    low, high = 0, len(candidates) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if fits(candidates[middle]):
            low = middle
        else:
            high = middle - 1
    return candidates[low]


def _prepare(
    cascade: CascadeOp, rank: str | None, tile: int | None, arch: str | None, pass_name: str
) -> tuple[RowLayout, int, Roles]:
    where = roles(pass_name, arch, cascade)
    rows = find_rows(cascade, rank, pass_name)
    size = cascade.rank_sizes()[rows.row]
    if tile is None:
        tile = largest_divisor_at_most(size, where.side())
    _check_tile(cascade, rows, tile, pass_name)
    return rows, tile, where


def _homes(cascade: CascadeOp, where: Roles, off_chip: set[str]) -> dict[str, str]:
    homes = {name: where.root for name, _ in cascade.inputs()}
    for op in cascade.einsums():
        out = is_returned(cascade, op.result) or op.tensor_name in off_chip
        homes[op.tensor_name] = where.root if out else where.buffer
    return homes


def _crossing(cascade: CascadeOp, group: dict[EinsumOp, str]) -> set[str]:
    """Tensors read by an Einsum of another group (kernel or unit) than their producer's."""
    return {
        op.tensor_name
        for op in cascade.einsums()
        for use in op.result.uses
        if isinstance(use.operation, EinsumOp) and group[use.operation] != group[op]
    }


def map_unfused(
    cascade: CascadeOp, rank: str | None = None, tile: int | None = None, arch: str | None = None
) -> None:
    """Attach the unfused baseline's mapping to every Einsum of `cascade`."""
    rows, tile, where = _prepare(cascade, rank, tile, arch, "map-unfused")
    units = units_of(cascade, where)
    runs: list[list[EinsumOp]] = []
    for op in cascade.einsums():
        if not runs or units[runs[-1][-1]] != units[op]:
            runs.append([])
        runs[-1].append(op)
    names = _unique([kernel_name(run) for run in runs])
    kernels = {op: name for run, name in zip(runs, names, strict=True) for op in run}
    homes = _homes(cascade, where, _crossing(cascade, kernels))
    plan = Plan(rows, tile, where, units, homes, _keeps(cascade, where, homes, False), kernels)
    for op in cascade.einsums():
        op.attributes[MAPPING_ATTR] = baseline_mapping(op, plan, tile, True)
    for run, name in zip(runs, names, strict=True):
        _choose_block(cascade, plan, run, name)


def map_flat(
    cascade: CascadeOp,
    rank: str | None = None,
    tile: int | None = None,
    buffer: int | None = None,
    arch: str | None = None,
) -> int:
    """Attach FLAT's mapping to every Einsum of `cascade`; returns the row block chosen (in
    rows; for off-chip intermediates, the 1D array's)."""
    rows, tile, where = _prepare(cascade, rank, tile, arch, "map-flat")
    if buffer is not None:
        where = Roles(
            where.arch, where.matrix, where.vector, where.root, where.buffer, where.staging,
            buffer,
        )
    units = units_of(cascade, where)
    size = cascade.rank_sizes()[rows.row]
    homes = _homes(cascade, where, set())
    plan = Plan(rows, tile, where, units, homes, _keeps(cascade, where, homes, True), {})
    einsums = cascade.einsums()

    def attach(block: int) -> bool:
        for op in einsums:
            op.attributes[MAPPING_ATTR] = baseline_mapping(op, plan, block, True)
        _register_reads(cascade, plan)
        return _fits(cascade, where)

    candidates = [d * tile for d in divisors(size // tile)]
    best = _largest(candidates, attach)
    if best is not None:
        attach(best)
        return best
    # Off chip: what the 2D and the 1D arrays pass each other goes through DRAM.
    homes = _homes(cascade, where, _crossing(cascade, units))
    plan = Plan(rows, tile, where, units, homes, _keeps(cascade, where, homes, False), {})
    for op in einsums:
        op.attributes[MAPPING_ATTR] = baseline_mapping(op, plan, tile, True)
    _choose_block(cascade, plan, einsums, None)
    vector = [op for op in einsums if units[op] == where.vector]
    mapping = vector[0].attributes[MAPPING_ATTR] if vector else None
    if isinstance(mapping, MappingAttr) and rows.row in mapping.partitions:
        return mapping.partitions[rows.row][0]
    return tile


@dataclass(frozen=True)
class MapUnfusedPass(ModulePass):
    """The unfused baseline (`map-unfused{arch=flat}`, optionally `rank=P` for the row rank
    and `tile` for the rows of one tile, by default the arrays' side): contractions on the 2D
    array, the rest on the 1D array, kernels through DRAM, each at the largest row block that
    fits the buffer."""

    name = "map-unfused"
    arch: str | None = None
    rank: str | None = None
    tile: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_unfused(cascade, self.rank, self.tile, self.arch)


@dataclass(frozen=True)
class MapFlatPass(ModulePass):
    """FLAT's mapping (`map-flat{arch=flat}`, optionally `rank=P`, `tile` and `buffer`, the
    bytes the row block must fit in, by default the architecture's): one kernel fused through
    the global buffer at the largest row block that fits."""

    name = "map-flat"
    arch: str | None = None
    rank: str | None = None
    tile: int | None = None
    buffer: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            map_flat(cascade, self.rank, self.tile, self.buffer, self.arch)
