"""`fuse-mean-variance`: mean/variance merging (layer norm's 3 passes -> 2), Welford's update.

Matches, over a rank r:
```
S[o]  = Y                              # a + reduction of any expression Y over r
MU[o] = S[o] / R                       # the mean (R: the size of rank r)
SQ[o] = (Y - MU[o]) * (Y - MU[o])      # + reduction over r of the squared deviations
```
(the deviations may live in their own Einsum) and computes mean and squared deviations in one
running pass (Welford):
```
RC[r+1]      = RC[r] + 1                                             init 0
RMU[r+1, o]  = RMU[r, o] + (Y - RMU[r, o]) / RC[r+1]                 init 0
RM2[r+1, o]  = RM2[r, o] + (Y - RMU[r, o]) * (Y - RMU[r+1, o])       init 0
```
Reads of MU and SQ become reads of RMU[R, o] and RM2[R, o]. Only an unsplit rank is merged
(Chan's combination of tiles is not implemented).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import Const, IndexExpr, Size, rank_of
from einsum_opt.transforms.rewriting import (
    Names,
    Read,
    Tree,
    build_einsum,
    call,
    inlined_elementwise,
    insert_before,
    merge_all,
    read_final_value,
    remark,
    remove_dead_einsums,
    resolved,
)


@dataclass(frozen=True)
class MeanVariance:
    """A matched sum / mean / squared-deviation triple."""

    sum_op: EinsumOp
    mean: EinsumOp
    squares: EinsumOp
    variable: str
    value: Tree


def _sum_over(op: EinsumOp) -> str | None:
    reduced = op.reduced_variables()
    if len(reduced) != 1 or op.iterative_rank() or op.reduce.data[0][1] != "add":
        return None
    return reduced[0]


def find_mean_variance(cascade: CascadeOp, rank: str | None = None) -> MeanVariance | None:
    """The first mean/variance triple (over `rank` if given)."""
    einsums = cascade.einsums()
    for s in einsums:
        r = _sum_over(s)
        value = resolved(s)
        if r is None or value is None or (rank is not None and rank_of(r) != rank):
            continue
        mean_tree = call("div", Read(s.result, s.output_indices), Size(rank_of(r)))
        for mu in einsums:
            if mu.output_indices != s.output_indices or resolved(mu) != mean_tree:
                continue
            deviation = call("sub", value, Read(mu.result, mu.output_indices))
            squared = inlined_elementwise(call("mul", deviation, deviation))
            for sq in einsums:
                body = resolved(sq)
                if _sum_over(sq) != r or sq.output_indices != s.output_indices or body is None:
                    continue
                if inlined_elementwise(body) == squared:
                    return MeanVariance(s, mu, sq, r, value)
    return None


def merge_mean_variance(cascade: CascadeOp, match: MeanVariance) -> None:
    """Rewrite one matched triple into Welford's running mean and squared deviations."""
    names = Names(cascade)
    s = match.sum_op
    elt = s.result_type.element_type
    r = match.variable
    big_r = rank_of(r)
    o = list(s.output_indices)
    o_ranks = list(s.result_type.rank_names)
    now, nxt = [IndexExpr.var(r), *o], [IndexExpr.var(r, 1), *o]
    ranks = [big_r, *o_ranks]
    y = match.value
    count = build_einsum(
        names.fresh("RC"),
        [IndexExpr.var(r, 1)],
        [big_r],
        elt,
        call("add", Read(None, (IndexExpr.var(r),)), Const(1.0)),
        init=0.0,
    )
    count_next = Read(count.result, (IndexExpr.var(r, 1),))
    mean_now = Read(None, tuple(now))
    rmu = build_einsum(
        names.fresh("RMU"),
        nxt,
        ranks,
        elt,
        call("add", mean_now, call("div", call("sub", y, mean_now), count_next)),
        init=0.0,
    )
    rmu_now, rmu_next = Read(rmu.result, tuple(now)), Read(rmu.result, tuple(nxt))
    rm2 = build_einsum(
        names.fresh("RM2"),
        nxt,
        ranks,
        elt,
        call(
            "add",
            Read(None, tuple(now)),
            call("mul", call("sub", y, rmu_now), call("sub", y, rmu_next)),
        ),
        init=0.0,
    )
    insert_before(s, [count, rmu, rm2])
    read_final_value(cascade, match.mean, rmu, big_r)
    read_final_value(cascade, match.squares, rm2, big_r)
    remove_dead_einsums(cascade)


def fuse_mean_variance(cascade: CascadeOp, rank: str | None = None) -> int:
    """Merge every mean/variance triple of `cascade` (over `rank` if given); returns how many."""
    return merge_all(cascade, find_mean_variance, merge_mean_variance, rank)


@dataclass(frozen=True)
class FuseMeanVariancePass(ModulePass):
    """Mean/variance merging: a mean and the sum of squared deviations from it become one
    running (Welford) pass (`fuse-mean-variance`, optionally `{rank=N}`)."""

    name = "fuse-mean-variance"
    rank: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            if not fuse_mean_variance(cascade, self.rank):
                remark(
                    f"fuse-mean-variance: @{cascade.cascade_name}: nothing to merge: no mean "
                    "S / R feeds a + reduction of squared deviations over the same rank"
                )
