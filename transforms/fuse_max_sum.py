"""`fuse-max-sum`: max/sum merging (3 passes -> 2), FuseMax's online normaliser.

Matches, over a reduced rank r (or a split pair r1 x r0 of one rank):
```
G[o]    = Y :: max(r)                 # a max-reduction of any expression Y
S[r, o] = exp(Y - G[o])               # the same Y, shifted by the maximum
D[o]    = S[r, o]                     # summed over the same rank
```
and replaces the full max by a running max RM with the correction factor exp(old - new) on the
running sum RD. Reads of G and D become reads of the final values RM[R, o] and RD[R, o], so
they no longer need their own passes. Unsplit, the result is the per-element online form:
```
RM[r+1, o] = max(RM[r, o], Y)                                         init -inf
RD[r+1, o] = RD[r, o] * exp(RM[r, o] - RM[r+1, o]) + exp(Y - RM[r+1, o])   init 0
```
On a split rank it is the tiled form: local max LM over r0, running max RM over r1, local
numerator SLN, correction PRM, scaled previous denominator SPD, local denominator SLD, RD.
The identity used is exp(y - a) = exp(y - b) * exp(b - a); max and + are associative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.transforms.rewriting import (
    Names,
    Read,
    Tree,
    build_einsum,
    call,
    insert_before,
    merge_all,
    parent_rank,
    read_final_value,
    remark,
    remove_dead_einsums,
    rescaled_running_sum,
    resolved,
    split_pair,
)


@dataclass(frozen=True)
class MaxSum:
    """A matched max / exp-shift / sum triple."""

    max_op: EinsumOp
    shifted: EinsumOp
    sum_op: EinsumOp
    outer: str
    inner: tuple[str, ...]
    value: Tree


def _outer_inner(
    cascade: CascadeOp, reduced: tuple[str, ...]
) -> tuple[str, tuple[str, ...]] | None:
    if len(reduced) == 1:
        return reduced[0], ()
    if len(reduced) == 2:
        a, b = reduced
        if split_pair(cascade, a, b):
            return a, (b,)
        if split_pair(cascade, b, a):
            return b, (a,)
    return None


def _shift_of(op: EinsumOp) -> tuple[Tree, Read] | None:
    """(y, m) when `op` computes exp(y - m) with m a plain read."""
    tree = resolved(op)
    if tree is None or getattr(tree, "fn", None) != "exp":
        return None
    inner = tree.args[0]  # type: ignore[union-attr]
    if getattr(inner, "fn", None) != "sub" or not isinstance(inner.args[1], Read):  # type: ignore[union-attr]
        return None
    return inner.args[0], inner.args[1]  # type: ignore[union-attr]


def find_max_sum(cascade: CascadeOp, rank: str | None = None) -> MaxSum | None:
    """The first max/exp-shift/sum triple (over `rank`, or its split, if given)."""
    einsums = cascade.einsums()
    for g in einsums:
        reduced = g.reduced_variables()
        if not reduced or g.iterative_rank() or any(o != "max" for _, o in g.reduce.data):
            continue
        levels = _outer_inner(cascade, reduced)
        value = resolved(g)
        if levels is None or value is None:
            continue
        outer, inner = levels
        if rank is not None and parent_rank(cascade, rank_of(outer)) != rank:
            continue
        wanted_vars = set(reduced) | set(g.output_variables())
        for s in einsums:
            shift = _shift_of(s)
            if shift is None or s.reduced_variables() or s.iterative_rank():
                continue
            y, m = shift
            if m.value is not g.result or m.indices != g.output_indices or y != value:
                continue
            if set(s.output_variables()) != wanted_vars:
                continue
            for d in einsums:
                body = resolved(d)
                if (
                    body == Read(s.result, s.output_indices)
                    and d.output_indices == g.output_indices
                    and set(d.reduced_variables()) == set(reduced)
                    and all(o == "add" for _, o in d.reduce.data)
                ):
                    return MaxSum(g, s, d, outer, inner, value)
    return None


def merge_max_sum(cascade: CascadeOp, match: MaxSum) -> None:
    """Rewrite one matched triple into the running max / running sum form."""
    g = match.max_op
    names = Names(cascade)
    elt = g.result_type.element_type
    o = list(g.output_indices)
    o_ranks = list(g.result_type.rank_names)
    r = match.outer
    big_r = rank_of(r)
    now, nxt = [IndexExpr.var(r), *o], [IndexExpr.var(r, 1), *o]
    ranks = [big_r, *o_ranks]
    y = match.value
    rm_name = names.fresh("RM")
    if not match.inner:
        rm = build_einsum(
            rm_name, nxt, ranks, elt, call("max", Read(None, tuple(now)), y), init=-math.inf
        )
        rm_now, rm_next = Read(rm.result, tuple(now)), Read(rm.result, tuple(nxt))
        rd = build_einsum(
            names.fresh("RD"),
            nxt,
            ranks,
            elt,
            call(
                "add",
                call("mul", Read(None, tuple(now)), call("exp", call("sub", rm_now, rm_next))),
                call("exp", call("sub", y, rm_next)),
            ),
            init=0.0,
        )
        new = [rm, rd]
    else:
        inner_ix = [IndexExpr.var(v) for v in match.inner]
        inner_ranks = [rank_of(v) for v in match.inner]
        lm = build_einsum(
            names.fresh("LM"), now, ranks, elt, y, reduce=[(v, "max") for v in match.inner]
        )
        rm = build_einsum(
            rm_name,
            nxt,
            ranks,
            elt,
            call("max", Read(None, tuple(now)), Read(lm.result, tuple(now))),
            init=-math.inf,
        )
        rm_now, rm_next = Read(rm.result, tuple(now)), Read(rm.result, tuple(nxt))
        tile = [IndexExpr.var(r), *inner_ix, *o]
        sln = build_einsum(
            names.fresh("SLN"),
            tile,
            [big_r, *inner_ranks, *o_ranks],
            elt,
            call("exp", call("sub", y, rm_next)),
        )
        prm = build_einsum(
            names.fresh("PRM"), now, ranks, elt, call("exp", call("sub", rm_now, rm_next))
        )
        spd, sld, rd = rescaled_running_sum(
            names,
            ("SPD", "SLD", "RD"),
            Read(prm.result, tuple(now)),
            Read(sln.result, tuple(tile)),
            match.inner,
            now,
            ranks,
            elt,
        )
        new = [lm, rm, sln, prm, spd, sld, rd]
    insert_before(g, new)
    read_final_value(cascade, g, rm, big_r)
    read_final_value(cascade, match.sum_op, rd, big_r)
    remove_dead_einsums(cascade)


def fuse_max_sum(cascade: CascadeOp, rank: str | None = None) -> int:
    """Merge every max/sum pair of `cascade` (over `rank` if given); returns how many."""
    return merge_all(cascade, find_max_sum, merge_max_sum, rank)


@dataclass(frozen=True)
class FuseMaxSumPass(ModulePass):
    """Max/sum merging: a full max followed by a sum of exp(x - max) becomes a running max
    with a corrected running sum (`fuse-max-sum`, optionally `{rank=M}`)."""

    name = "fuse-max-sum"
    rank: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            if not fuse_max_sum(cascade, self.rank):
                over = f" over rank {self.rank}" if self.rank else ""
                remark(
                    f"fuse-max-sum: @{cascade.cascade_name}: nothing to merge{over}: no "
                    "max-reduction feeds an exp(x - max) that is summed over the same rank"
                )
