"""`fuse-max-sum`: max/sum merging (3 passes -> 2), FuseMax's online normaliser.

Matches, over a reduced rank r (or a split pair r1 x r0 of one rank):
```
G[o]  = Y :: max(r)                   # a max-reduction of any expression Y
D[o'] = exp(Y - G[o]) :: add(r)       # the same Y shifted by the maximum, summed over r
```
(`o'` may list the ranks of `o` in another order; the exponential may live in its own Einsum,
`SN = exp(Y - G)`, and Y may be written out where G reads it through an Einsum; a positive scalar
scale may multiply the shift, `exp((Y - G) * c)`). The full max becomes a running max RM and the
sum a running sum RD corrected by exp(old - new). Unsplit, the result is the per-element
online form:
```
RM[r+1, o] = max(RM[r, o], Y)                                             init L
RD[r+1, o] = RD[r, o] * exp(RM[r, o] - RM[r+1, o]) + exp(Y - RM[r+1, o])   init 0
```
On a split rank it is the tiled form: local max LM over r0, running max RM over r1, local
numerator SLN, correction PRM, scaled previous denominator SPD, local denominator SLD, RD. The
identity used is exp(y - a) = exp(y - b) * exp(b - a); max and + are associative. L is the
lowest finite value of the element type (`safe_max`), which keeps -inf inputs (masks) right.

Reads of D become reads of the final value RD[R, o]; exponentials shifted by G read the final
RM[R, o]; G itself is kept, computed from the final values (`safe_max.exact_max`), for the
Einsums that read the max otherwise (and a returned D is `safe_max.faithful_sum`), so that a
fully masked row gives what the input cascade gives. None of them needs its own pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.transforms.factors import Shift, shift_of, shifted
from einsum_opt.transforms.rewriting import (
    Names,
    RCall,
    Read,
    Tree,
    build_einsum,
    call,
    inlined_elementwise,
    insert_before,
    merge_all,
    merges_over,
    producer_value,
    read_final_value,
    remark,
    remove_dead_einsums,
    replace_einsum,
    rescaled_running_sum,
    resolved,
    retarget_reads_with,
    split_pair,
)
from einsum_opt.transforms.safe_max import exact_max, faithful_sum, running_max_init


@dataclass(frozen=True)
class MaxSum:
    """A matched max-reduction and sum of the exponential shifted by it."""

    max_op: EinsumOp
    sum_op: EinsumOp
    outer: str
    inner: tuple[str, ...]
    value: Tree
    scale: Tree | None


def outer_inner(cascade: CascadeOp, reduced: tuple[str, ...]) -> tuple[str, tuple[str, ...]] | None:
    """(outer, inner variables) of a reduction over one rank or over both levels of a split
    rank; None otherwise."""
    if len(reduced) == 1:
        return reduced[0], ()
    if len(reduced) == 2:
        a, b = reduced
        if split_pair(cascade, a, b):
            return a, (b,)
        if split_pair(cascade, b, a):
            return b, (a,)
    return None


def exposed_shift(tree: Tree) -> Shift | None:
    """The shifted exponential a value is, looking through the elementwise Einsums it reads
    (`D = SN` with `SN = exp(Y - G)`), but not inside the exponential."""
    while isinstance(tree, Read):
        inner = producer_value(tree)
        if inner is None:
            return None
        tree = inner
    return shift_of(tree)


def has_plain_outputs(op: EinsumOp) -> bool:
    """Whether every output index is a bare rank variable."""
    return all(ix.as_variable() is not None for ix in op.output_indices)


def max_reductions(
    cascade: CascadeOp, rank: str | None
) -> list[tuple[EinsumOp, str, tuple[str, ...]]]:
    """Max-reductions over one rank (or a split pair), with their outer and inner variables."""
    found = []
    for g in cascade.einsums():
        reduced = g.reduced_variables()
        if not reduced or g.iterative_rank() or any(o != "max" for _, o in g.reduce.data):
            continue
        levels = outer_inner(cascade, reduced)
        if levels is None or not has_plain_outputs(g) or resolved(g) is None:
            continue
        if not merges_over(cascade, levels[0], rank):
            continue
        found.append((g, *levels))
    return found


def shift_by(g: EinsumOp, tree: Tree) -> Shift | None:
    """The shift of `tree` when it is an exponential shifted by g's value at g's indices."""
    shift = exposed_shift(tree)
    if shift is None or shift.by != Read(g.result, g.output_indices):
        return None
    return shift


def find_max_sum(cascade: CascadeOp, rank: str | None = None) -> MaxSum | None:
    """The first max / shifted-exponential sum pair (over `rank`, or its split, if given)."""
    einsums = cascade.einsums()
    for g, outer, inner in max_reductions(cascade, rank):
        value = resolved(g)
        assert value is not None
        elt = g.result_type.element_type
        want = inlined_elementwise(value, elt)
        reduced = set(g.reduced_variables())
        for d in einsums:
            body = resolved(d)
            if body is None or d.iterative_rank() or set(d.reduced_variables()) != reduced:
                continue
            if any(o != "add" for _, o in d.reduce.data) or not has_plain_outputs(d):
                continue
            if set(d.output_variables()) != set(g.output_variables()):
                continue
            shift = shift_by(g, body)
            if shift is None or inlined_elementwise(shift.value, elt) != want:
                continue
            return MaxSum(g, d, outer, inner, value, shift.scale)
    return None


def merge_max_sum(cascade: CascadeOp, match: MaxSum) -> None:
    """Rewrite one matched pair into the running max / running sum form."""
    g = match.max_op
    names = Names(cascade)
    elt = g.result_type.element_type
    o = list(g.output_indices)
    o_ranks = list(g.result_type.rank_names)
    r = match.outer
    big_r = rank_of(r)
    now, nxt = (IndexExpr.var(r), *o), (IndexExpr.var(r, 1), *o)
    ranks = [big_r, *o_ranks]
    y, scale = match.value, match.scale
    rm_name = names.fresh("RM")
    init = running_max_init(elt)
    if not match.inner:
        rm = build_einsum(rm_name, nxt, ranks, elt, call("max", Read(None, now), y), init=init)
        rm_now, rm_next = Read(rm.result, now), Read(rm.result, nxt)
        rd = build_einsum(
            names.fresh("RD"),
            nxt,
            ranks,
            elt,
            call(
                "add",
                call("mul", Read(None, now), shifted(rm_now, rm_next, scale)),
                shifted(y, rm_next, scale),
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
            rm_name, nxt, ranks, elt, call("max", Read(None, now), Read(lm.result, now)), init=init
        )
        rm_now, rm_next = Read(rm.result, now), Read(rm.result, nxt)
        tile = (IndexExpr.var(r), *inner_ix, *o)
        sln = build_einsum(
            names.fresh("SLN"),
            tile,
            [big_r, *inner_ranks, *o_ranks],
            elt,
            shifted(y, rm_next, scale),
        )
        prm = build_einsum(names.fresh("PRM"), now, ranks, elt, shifted(rm_now, rm_next, scale))
        spd, sld, rd = rescaled_running_sum(
            names,
            ("SPD", "SLD", "RD"),
            Read(prm.result, now),
            Read(sln.result, tile),
            match.inner,
            list(now),
            ranks,
            elt,
        )
        new = [lm, rm, sln, prm, spd, sld, rd]
    insert_before(g, new)
    final = (IndexExpr.extent(big_r), *o)
    shifts = [op for op in _readers(g) if _reads_only_as_shift(op, g)]
    retarget_reads_with(cascade, g.result, rm.result, lambda ix: (final[0], *ix), shifts)
    exact = build_einsum(
        g.tensor_name,
        o,
        o_ranks,
        elt,
        exact_max(Read(rm.result, final), Read(rd.result, final)),
    )
    replace_einsum(g, exact)
    read_final_value(cascade, match.sum_op, rd, big_r, faithful_sum)
    remove_dead_einsums(cascade)


def _readers(op: EinsumOp) -> list[EinsumOp]:
    """The Einsums reading `op`, each once, in no particular order."""
    return list({u.operation: None for u in op.result.uses if isinstance(u.operation, EinsumOp)})


def _reads_only_as_shift(reader: EinsumOp, g: EinsumOp) -> bool:
    """Whether every read of g in `reader` is the shift of an exponential, exp(y - G): there the
    running max (L on a fully masked row) gives 0 instead of NaN, which the sum turns into the
    input's 0 / 0 = NaN; elsewhere the max itself is read."""
    tree = resolved(reader)
    if tree is None:
        return False
    mine = Read(g.result, g.output_indices)

    def ok(t: Tree) -> bool:
        if isinstance(t, Read):
            return t.value is not g.result
        if not isinstance(t, RCall):
            return True
        shift = shift_of(t)
        if shift is not None and shift.by == mine:
            return ok(shift.value) and (shift.scale is None or ok(shift.scale))
        return all(ok(a) for a in t.args)

    return ok(tree)


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
        from einsum_opt.transforms.fusion_remarks import max_sum_blocker

        for cascade in cascades_in(op):
            if not fuse_max_sum(cascade, self.rank):
                over = f" over rank {self.rank}" if self.rank else ""
                remark(
                    f"fuse-max-sum: @{cascade.cascade_name}: nothing to merge{over}: "
                    f"{max_sum_blocker(cascade, self.rank)}"
                )
