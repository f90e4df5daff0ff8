"""`split-rank{rank=M tile=256}`: partition a rank into tiles (TeAAL's `uniform_shape`).

Rank R becomes R1 (outer, R / R0 tiles) and R0 (inner, `tile` coordinates) in every Einsum and
tensor that uses it; an input with rank R is re-blocked first by an Einsum
`BX[..., r1, r0, ...] = X[..., r1*R0+r0, ...]`, as BK and BV are in the 1-pass cascade. Reductions
over R reduce over both levels with the same operator. A cascade output keeps its declared
shape: the Einsum producing it iterates the tiles and assembles them in place
(`A[m1*M0+m0, p] = ...`), and Einsums reading it read `A[m1*M0+m0, p]`. When R1 or R0 is
already declared, the levels get the next free names (R3 x R2, ...). A tile that does not
divide the rank is rejected: a partial last tile would read past the end of the rank.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_attrs import RanksAttr, TensorType
from einsum_opt.dialects.einsum_syntax import IndexExpr, variable_of
from einsum_opt.dialects.locations import OpPassFailedException, carry_location
from einsum_opt.transforms.rewriting import (
    Names,
    Read,
    build_einsum,
    erase_einsums,
    insert_before,
    invalidate_analyses,
)


class SplitError(Exception):
    """The rank cannot be split; the message says why and `op` is the cascade or Einsum at
    fault."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op


def split_names(cascade: CascadeOp, rank: str) -> tuple[str, str]:
    """(outer, inner) names for the levels of `rank`: R1 x R0, or the first free pair R3 x R2,
    R5 x R4, ... when those (or their index variables) are taken."""
    taken = {variable_of(n) for n in cascade.ranks.names}
    k = 0
    while True:
        outer, inner = f"{rank}{k + 1}", f"{rank}{k}"
        if variable_of(outer) not in taken and variable_of(inner) not in taken:
            return outer, inner
        k += 2


def _split_ranks(ranks: tuple[str, ...], rank: str, levels: tuple[str, str]) -> list[str]:
    return [r for name in ranks for r in (levels if name == rank else (name,))]


def _split_indices(
    ranks: tuple[str, ...],
    indices: tuple[IndexExpr, ...],
    rank: str,
    levels: tuple[str, str],
    assembled: bool = False,
) -> list[IndexExpr]:
    """Indices with the plain index of `rank` split into its two levels; `assembled` keeps
    one index per rank (a tensor that keeps its declared shape) as `r1*R0+r0`."""
    var = variable_of(rank)
    outer, inner = (variable_of(n) for n in levels)
    out: list[IndexExpr] = []
    for r, ix in zip(ranks, indices, strict=True):
        if r == rank and ix.as_variable() == var:
            if assembled:
                out.append(IndexExpr.blocked(outer, inner))
            else:
                out += [IndexExpr.var(outer), IndexExpr.var(inner)]
        else:
            out.append(ix)
    return out


def check_splittable(cascade: CascadeOp, rank: str, tile: int) -> None:
    """Raise `SplitError` unless `rank` can be split into tiles of `tile`."""
    where = f"@{cascade.cascade_name}"
    if rank not in cascade.ranks.names:
        raise SplitError(cascade, f"{where}: rank {rank} is not declared")
    size = cascade.rank_sizes()[rank]
    if tile <= 0:
        raise SplitError(
            cascade, f"{where}: the tile must be a positive number of coordinates, got {tile}"
        )
    if size % tile:
        raise SplitError(
            cascade,
            f"{where}: tile {tile} does not divide rank {rank} of size {size} (a partial last "
            "tile would read past the end of the rank)"
        )
    var = variable_of(rank)
    for op in cascade.einsums():
        if op.iterative_rank() == var:
            raise SplitError(op, f"{where}: rank {rank} is iterative in einsum {op.tensor_name}")
        for value, indices in op.accesses():
            for r, ix in zip(op.access_type(value).rank_names, indices, strict=True):
                plain = ix.as_variable() == var
                if (var in ix.variables and not plain) or (r == rank and not plain):
                    raise SplitError(
                        op,
                        f"{where}: einsum {op.tensor_name} indexes rank {rank} with '{ix}'; "
                        f"only the plain index {var} can be split"
                    )


def split_rank(cascade: CascadeOp, rank: str, tile: int) -> tuple[str, str]:
    """Split `rank` of `cascade` into an outer and an inner level with `tile` inner
    coordinates; returns the names of the two levels (R1, R0 unless those are taken)."""
    check_splittable(cascade, rank, tile)
    levels = split_names(cascade, rank)
    outer, inner = levels
    cascade.ranks = RanksAttr((*cascade.ranks.data, (inner, tile), (outer, (rank, inner))))
    names = Names(cascade)
    first = cascade.body.block.first_op
    assert first is not None
    returned = set(cascade.return_op().values)
    replacement: dict[SSAValue, SSAValue] = {}
    for (name, t), arg in zip(cascade.inputs(), cascade.body.block.args, strict=True):
        if rank in t.rank_names:
            indices = tuple(IndexExpr.var(variable_of(r)) for r in t.rank_names)
            blocked = IndexExpr.blocked(variable_of(outer), variable_of(inner))
            src = [
                blocked if r == rank else ix for r, ix in zip(t.rank_names, indices, strict=True)
            ]
            op = build_einsum(
                names.fresh(f"B{name}"),
                _split_indices(t.rank_names, indices, rank, levels),
                _split_ranks(t.rank_names, rank, levels),
                t.element_type,
                Read(arg, tuple(src)),
            )
            insert_before(first, [op])
            replacement[arg] = op.result
    old_ops = [op for op in cascade.einsums() if op.result not in replacement.values()]
    assembled = {op.result for op in old_ops if op.result in returned}
    new_ops: list[EinsumOp] = []
    for op in old_ops:
        new_ops.append(_split_einsum(op, rank, levels, assembled))
        insert_before(op, [new_ops[-1]])
        replacement[op.result] = new_ops[-1].result
    for op in new_ops:
        op.operands = [replacement.get(v, v) for v in op.inputs]
    ret = cascade.return_op()
    ret.operands = [
        replacement[v] if v in replacement and v in assembled else v for v in ret.values
    ]
    erase_einsums(old_ops)
    invalidate_analyses(cascade)
    return levels


def _split_einsum(
    op: EinsumOp, rank: str, levels: tuple[str, str], assembled: Collection[SSAValue]
) -> EinsumOp:
    """The Einsum with `rank` split; its operands still name the old values (fixed by caller).
    Tensors in `assembled` keep their declared shape."""
    outer, inner = (variable_of(n) for n in levels)
    var = variable_of(rank)
    out_t = op.result_type
    keeps_shape = op.result in assembled
    accesses = [
        (
            value,
            _split_indices(
                op.access_type(value).rank_names,
                indices,
                rank,
                levels,
                (op.result if value is None else value) in assembled,
            ),
        )
        for value, indices in op.accesses()
    ]
    reduce: list[tuple[str, str]] = []
    for v, o in op.reduce.data:
        reduce += [(outer, o), (inner, o)] if v == var else [(v, o)]
    result_ranks = out_t.rank_names if keeps_shape else _split_ranks(out_t.rank_names, rank, levels)
    new = EinsumOp(
        op.tensor_name,
        _split_indices(out_t.rank_names, op.output_indices, rank, levels, keeps_shape),
        accesses,
        op.body.clone(),
        TensorType(result_ranks, out_t.element_type),
        _in_first_use_order(reduce, accesses),
        op.merge.data,
        op.init,
    )
    new.attributes.update(op.attributes)
    carry_location(op, new)
    return new


def _in_first_use_order(
    reduce: list[tuple[str, str]], accesses: list[tuple[SSAValue | None, list[IndexExpr]]]
) -> list[tuple[str, str]]:
    order = [v for _, ixs in accesses for ix in ixs for v in ix.variables]
    return sorted(reduce, key=lambda item: order.index(item[0]))


@dataclass(frozen=True)
class SplitRankPass(ModulePass):
    """Split a rank into tiles in every cascade that declares it: `split-rank{rank=M tile=256}`."""

    name = "split-rank"
    rank: str
    tile: int

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        cascades = [c for c in cascades_in(op) if self.rank in c.ranks.names]
        if not cascades:
            raise PassFailedException(f"split-rank: no cascade declares rank {self.rank}")
        for cascade in cascades:
            try:
                split_rank(cascade, self.rank, self.tile)
            except SplitError as e:
                raise OpPassFailedException(e.op, f"split-rank: {e}") from None
