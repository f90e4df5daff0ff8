"""`fuse-mean-variance`: mean/variance merging (layer norm's 3 passes -> 2).

Matches, over a rank r (or both levels r1 x r0 of a split rank R):
```
S[o]  = Y :: add(r)                    # a + reduction of any expression Y over r
MU[o] = S[o] / R                       # the mean (R: the size of the rank)
SQ[o] = (Y - MU[o]) * (Y - MU[o])      # + reduction over r of the squared deviations
```
(the deviations may live in their own Einsum, the tensors may list their ranks in any order)
and computes mean and squared deviations in one running pass. Unsplit, Welford's update:
```
RC[r+1, o]   = RC[r, o] + 1                                          init 0
RMU[r+1, o]  = RMU[r, o] + (Y - RMU[r, o]) / RC[r+1, o]              init 0
RM2[r+1, o]  = RM2[r, o] + (Y - RMU[r, o]) * (Y - RMU[r+1, o])       init 0
```
On a split rank, Chan's pairwise combination of the tiles: each tile's mean and squared
deviations (two passes over the tile's R0 values, one over the tiles) join the running ones:
```
LS[r1, o]     = Y :: add(r0)
LMU[r1, o]    = LS[r1, o] / R0
LM2[r1, o]    = (Y - LMU[r1, o]) * (Y - LMU[r1, o]) :: add(r0)
RC[r1+1, o]   = RC[r1, o] + R0                                                     init 0
RMU[r1+1, o]  = RMU[r1, o] + (LMU[r1, o] - RMU[r1, o]) * R0 / RC[r1+1, o]           init 0
RM2[r1+1, o]  = RM2[r1, o] + LM2[r1, o]
                + (LMU[r1, o] - RMU[r1, o])^2 * RC[r1, o] * R0 / RC[r1+1, o]        init 0
```
Reads of MU and SQ become reads of RMU[R, o] and RM2[R, o].
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import Const, IndexExpr, Size, rank_of
from einsum_opt.transforms.fuse_max_sum import has_plain_outputs, outer_inner
from einsum_opt.transforms.rewriting import (
    Names,
    Read,
    Tree,
    build_einsum,
    call,
    inlined_elementwise,
    insert_before,
    merge_all,
    merges_over,
    parent_rank,
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
    outer: str
    inner: tuple[str, ...]
    value: Tree


def sum_levels(cascade: CascadeOp, op: EinsumOp) -> tuple[str, tuple[str, ...]] | None:
    """(outer, inner variables) of a + reduction over one rank or a split pair."""
    reduced = op.reduced_variables()
    if not reduced or op.iterative_rank() or any(o != "add" for _, o in op.reduce.data):
        return None
    if not has_plain_outputs(op):
        return None
    return outer_inner(cascade, reduced)


def is_mean_of(mu: EinsumOp, s: EinsumOp, rank: str) -> bool:
    """Whether `mu` computes S / R (or S * (1 / R)) elementwise, R the size of `rank`."""
    if mu.reduced_variables() or mu.iterative_rank() or not has_plain_outputs(mu):
        return False
    if set(mu.output_variables()) != set(s.output_variables()):
        return False
    total = Read(s.result, s.output_indices)
    body = resolved(mu)
    return body in (
        call("div", total, Size(rank)),
        call("mul", total, call("div", Const(1.0), Size(rank))),
        call("mul", total, call("div", Const(1), Size(rank))),
    )


def squared_deviation(value: Tree, mean: Read) -> list[Tree]:
    """The ways of writing (Y - MU)^2."""
    a, b = call("sub", value, mean), call("sub", mean, value)
    return [call("mul", a, a), call("mul", b, b)]


def find_mean_variance(cascade: CascadeOp, rank: str | None = None) -> MeanVariance | None:
    """The first mean/variance triple (over `rank`, or its split, if given)."""
    einsums = cascade.einsums()
    for s in einsums:
        levels = sum_levels(cascade, s)
        value = resolved(s)
        if levels is None or value is None:
            continue
        whole = parent_rank(cascade, rank_of(levels[0]))
        if not merges_over(cascade, levels[0], rank):
            continue
        elt = s.result_type.element_type
        for mu in einsums:
            if not is_mean_of(mu, s, whole):
                continue
            mean = Read(mu.result, mu.output_indices)
            wanted = [inlined_elementwise(t, elt) for t in squared_deviation(value, mean)]
            for sq in einsums:
                body = resolved(sq)
                if body is None or sum_levels(cascade, sq) is None:
                    continue
                if set(sq.reduced_variables()) != set(s.reduced_variables()):
                    continue
                if set(sq.output_variables()) != set(s.output_variables()):
                    continue
                if inlined_elementwise(body, elt) in wanted:
                    return MeanVariance(s, mu, sq, *levels, value)
    return None


def merge_mean_variance(cascade: CascadeOp, match: MeanVariance) -> None:
    """Rewrite one matched triple into a running mean and running squared deviations."""
    s = match.sum_op
    o = tuple(s.output_indices)
    r = match.outer
    big_r = rank_of(r)
    now, nxt = (IndexExpr.var(r), *o), (IndexExpr.var(r, 1), *o)
    elt = s.result_type.element_type
    names = Names(cascade)

    def einsum(
        wanted: str,
        output: tuple[IndexExpr, ...],
        tree: Tree,
        reduce: list[tuple[str, str]] | None = None,
        init: float | None = None,
    ) -> EinsumOp:
        out_ranks = [rank_of(ix.variables[0]) for ix in output]
        return build_einsum(names.fresh(wanted), output, out_ranks, elt, tree, reduce or [], init)

    count_step: Tree = Const(1.0) if not match.inner else Size(rank_of(match.inner[0]))
    # The count is kept per row, like the running values it divides (one loop nest shape).
    count = einsum("RC", nxt, call("add", Read(None, now), count_step), init=0.0)
    count_now, count_next = Read(count.result, now), Read(count.result, nxt)
    if not match.inner:
        y = match.value
        mean_now = Read(None, now)
        rmu = einsum(
            "RMU",
            nxt,
            call("add", mean_now, call("div", call("sub", y, mean_now), count_next)),
            init=0.0,
        )
        rmu_now, rmu_next = Read(rmu.result, now), Read(rmu.result, nxt)
        rm2 = einsum(
            "RM2",
            nxt,
            call(
                "add",
                Read(None, now),
                call("mul", call("sub", y, rmu_now), call("sub", y, rmu_next)),
            ),
            init=0.0,
        )
        new = [count, rmu, rm2]
    else:
        local = [(v, "add") for v in match.inner]
        tile = Size(rank_of(match.inner[0]))
        ls = einsum("LS", now, match.value, reduce=local)
        lmu = einsum("LMU", now, call("div", Read(ls.result, now), tile))
        dev = call("sub", match.value, Read(lmu.result, now))
        lm2 = einsum("LM2", now, call("mul", dev, dev), reduce=local)
        mean_now = Read(None, now)
        delta = call("sub", Read(lmu.result, now), mean_now)
        rmu = einsum(
            "RMU",
            nxt,
            call("add", mean_now, call("div", call("mul", delta, tile), count_next)),
            init=0.0,
        )
        delta = call("sub", Read(lmu.result, now), Read(rmu.result, now))
        spread = call(
            "div", call("mul", call("mul", call("mul", delta, delta), count_now), tile), count_next
        )
        rm2 = einsum(
            "RM2",
            nxt,
            call("add", call("add", Read(None, now), Read(lm2.result, now)), spread),
            init=0.0,
        )
        new = [ls, lmu, lm2, count, rmu, rm2]
    insert_before(s, new)
    read_final_value(cascade, match.mean, rmu, big_r)
    read_final_value(cascade, match.squares, rm2, big_r)
    remove_dead_einsums(cascade)


def fuse_mean_variance(cascade: CascadeOp, rank: str | None = None) -> int:
    """Merge every mean/variance triple of `cascade` (over `rank` if given); returns how many."""
    return merge_all(cascade, find_mean_variance, merge_mean_variance, rank)


@dataclass(frozen=True)
class FuseMeanVariancePass(ModulePass):
    """Mean/variance merging: a mean and the sum of squared deviations from it become one
    running pass (Welford, or Chan's combination of tiles on a split rank)
    (`fuse-mean-variance`, optionally `{rank=N}`)."""

    name = "fuse-mean-variance"
    rank: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from einsum_opt.transforms.fusion_remarks import mean_variance_blocker

        for cascade in cascades_in(op):
            if not fuse_mean_variance(cascade, self.rank):
                remark(
                    f"fuse-mean-variance: @{cascade.cascade_name}: nothing to merge: "
                    f"{mean_variance_blocker(cascade, self.rank)}"
                )
