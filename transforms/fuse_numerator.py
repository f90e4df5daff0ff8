"""`fuse-numerator`: numerator merging (2 passes -> 1), the last step of FuseMax.

Matches a +-reduction over rank r (or a split pair r1 x r0) of a product that has one factor
```
A[...] = exp(Y - T[R, o]) / N[...]        # (possibly through an elementwise numerator Einsum)
```
where T is an iterative tensor over r read at its final value and N does not depend on r. The
division commutes with the sum (the reduction is linear in A), and the sum of exp(Y - T[R])
times the other factors W is built as a running numerator rescaled by the same correction
factor that the running denominator uses:
```
PRM[r, o]      = exp(T[r, o] - T[r+1, o])
SLN[r, r0, o]  = exp(Y - T[r+1, o])
SPNV[r, out]   = PRM[r, o] * RNV[r, out]
SLNV[r, out]   = SLN[r, r0, o] * W :: add(r0)
RNV[r+1, out]  = SPNV[r, out] + SLNV[r, out]           init 0
Z[out]         = RNV[R, out] / N[...]
```
By induction RNV[k] = sum over j < k of exp(Y_j - T[k]) W_j, so RNV[R] / N is the original sum
whatever values T takes (the running max keeps it in range). Existing PRM and SLN Einsums (from
`fuse-max-sum`) are reused when they compute exactly these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.transforms.rewriting import (
    Names,
    RCall,
    Read,
    Tree,
    build_einsum,
    call,
    inlined_elementwise,
    insert_before,
    is_returned,
    merge_all,
    parent_rank,
    product_factors,
    product_of,
    ranks_of,
    reads_in,
    remark,
    remove_dead_einsums,
    rename_variables,
    replace_einsum,
    rescaled_running_sum,
    resolved,
    variables_in,
)


@dataclass(frozen=True)
class Numerator:
    """A matched reduction of (exp(Y - T[R]) / N) * W."""

    reduction: EinsumOp
    value: Tree  # Y
    running: Read  # T[R, o]: the final value of an iterative tensor
    outer: str  # the iterative variable of T
    inner: tuple[str, ...]
    normaliser: Tree  # N
    weight: list[Tree]  # W, the other factors


def _division(av: EinsumOp, factor: Tree) -> tuple[Tree, Tree] | None:
    """(numerator, normaliser) of a factor that divides: written in place (`SN / SD`) or an
    elementwise Einsum read as the factor (`A[m, p]` with `A = SN / SD`), in av's variables."""
    if isinstance(factor, RCall) and factor.fn == "div":
        return factor.args[0], factor.args[1]
    if not isinstance(factor, Read):
        return None
    a = factor.value.owner if factor.value is not None else None
    if not isinstance(a, EinsumOp) or a.reduced_variables() or a.iterative_rank():
        return None
    body = resolved(a)
    if body is None:
        return None
    tree = rename_variables(body, dict(zip(a.output_variables(), factor.indices, strict=True)))
    if not isinstance(tree, RCall) or tree.fn != "div":
        return None
    return tree.args[0], tree.args[1]


def _final_read(read: Tree, reduced: set[str]) -> tuple[Read, str] | None:
    """(read, iterative variable) when `read` is an iterative tensor at its final value over a
    reduced rank, indexed elsewhere by variables that are not reduced."""
    if not isinstance(read, Read) or read.value is None:
        return None
    producer = read.value.owner
    if not isinstance(producer, EinsumOp) or (it := producer.iterative_rank()) is None:
        return None
    if it not in reduced:
        return None
    for rank, ix in zip(ranks_of(read.value), read.indices, strict=True):
        if rank == rank_of(it):
            if ix.as_extent() != rank:
                return None
        elif ix.as_variable() is None or ix.as_variable() in reduced:
            return None
    return read, it


def find_numerator(cascade: CascadeOp, rank: str | None = None) -> Numerator | None:
    """The first reduction whose normalised numerator can be merged (over `rank` if given)."""
    for av in cascade.einsums():
        reduced = av.reduced_variables()
        if not reduced or av.iterative_rank() or any(o != "add" for _, o in av.reduce.data):
            continue
        tree = resolved(av)
        if tree is None:
            continue
        factors = product_factors(tree)
        for k, factor in enumerate(factors):
            if (split := _division(av, factor)) is None:
                continue
            numerator, normaliser = split
            if variables_in(normaliser) & set(reduced):
                continue
            shifted = inlined_elementwise(numerator)
            if not (isinstance(shifted, RCall) and shifted.fn == "exp"):
                continue
            diff = shifted.args[0]
            if not (isinstance(diff, RCall) and diff.fn == "sub"):
                continue
            final = _final_read(diff.args[1], set(reduced))
            if final is None:
                continue
            running, outer = final
            if rank is not None and parent_rank(cascade, rank_of(outer)) != rank:
                continue
            inner = tuple(v for v in reduced if v != outer)
            return Numerator(
                av,
                diff.args[0],
                running,
                outer,
                inner,
                normaliser,
                [f for i, f in enumerate(factors) if i != k],
            )
    return None


def _find_einsum(cascade: CascadeOp, tree: Tree, output: list[IndexExpr]) -> EinsumOp | None:
    for op in cascade.einsums():
        if list(op.output_indices) == output and resolved(op) == tree:
            return op
    return None


def merge_numerator(cascade: CascadeOp, match: Numerator) -> None:
    """Rewrite one matched reduction into a running numerator divided once at the end."""
    av = match.reduction
    names = Names(cascade)
    elt = av.result_type.element_type
    r = match.outer
    big_r = rank_of(r)
    t = match.running.value
    assert t is not None
    t_ranks = ranks_of(t)
    at = t_ranks.index(big_r)

    def t_read(shift: int) -> Read:
        ix = list(match.running.indices)
        ix[at] = IndexExpr.var(r, shift)
        return Read(t, tuple(ix))

    o_t = [ix for i, ix in enumerate(match.running.indices) if i != at]
    o_t_ranks = [rk for i, rk in enumerate(t_ranks) if i != at]
    now_t = [IndexExpr.var(r), *o_t]
    new = []
    prm_tree = call("exp", call("sub", t_read(0), t_read(1)))
    prm = _find_einsum(cascade, prm_tree, now_t)
    if prm is None:
        prm = build_einsum(names.fresh("PRM"), now_t, [big_r, *o_t_ranks], elt, prm_tree)
        new.append(prm)
    sln_tree = call("exp", call("sub", match.value, t_read(1)))
    # Same variable order as fuse-max-sum's SLN (the running tensor's), so it is reused.
    rest = variables_in(match.value) - {r, *match.inner}
    running_order = [v for ix in o_t for v in ix.variables]
    first_use = [v for read in reads_in(match.value) for ix in read.indices for v in ix.variables]
    tile_vars = [r, *match.inner]
    for v in running_order + first_use:
        if v in rest and v not in tile_vars:
            tile_vars.append(v)
    tile = [IndexExpr.var(v) for v in tile_vars]
    sln = _find_einsum(cascade, sln_tree, tile)
    if sln is None:
        sln = build_einsum(names.fresh("SLN"), tile, [rank_of(v) for v in tile_vars], elt, sln_tree)
        new.append(sln)
    out = list(av.output_indices)
    out_ranks = list(av.result_type.rank_names)
    now = [IndexExpr.var(r), *out]
    ranks = [big_r, *out_ranks]
    spnv, slnv, rnv = rescaled_running_sum(
        names,
        ("SPNV", "SLNV", "RNV"),
        Read(prm.result, tuple(prm.output_indices)),
        product_of([Read(sln.result, tuple(sln.output_indices)), *match.weight]),
        match.inner,
        now,
        ranks,
        elt,
    )
    final = Read(rnv.result, (IndexExpr.extent(big_r), *out))
    result = build_einsum(av.tensor_name, out, out_ranks, elt, call("div", final, match.normaliser))
    insert_before(av, [*new, spnv, slnv, rnv])
    replace_einsum(av, result)
    remove_dead_einsums(cascade)


def fuse_numerator(cascade: CascadeOp, rank: str | None = None) -> int:
    """Merge every normalised numerator of `cascade` (over `rank` if given); returns how many."""
    return merge_all(cascade, find_numerator, merge_numerator, rank)


def why_not(cascade: CascadeOp) -> str:
    """Why no numerator can be merged: names an Einsum divided by a final running value whose
    result is consumed per element, if there is one."""
    for op in cascade.einsums():
        body = resolved(op)
        if not (isinstance(body, RCall) and body.fn == "div"):
            continue
        den = body.args[1]
        producer = den.value.owner if isinstance(den, Read) and den.value is not None else None
        if not isinstance(producer, EinsumOp) or producer.iterative_rank() is None:
            continue
        if _final_read(den, {producer.iterative_rank() or ""}) is None:
            continue
        how = "it is a cascade output" if is_returned(cascade, op.result) else "no + reduction"
        return (
            f"{op.tensor_name} is divided by a running normaliser and consumed per element "
            f"({how} over its rank): the normaliser is needed before any element can be "
            "written, so 2 passes is the minimum"
        )
    return "no division by a running normaliser feeds a + reduction over the same rank"


@dataclass(frozen=True)
class FuseNumeratorPass(ModulePass):
    """Numerator merging: defer a division by a running normaliser past the + reduction it
    feeds, rescaling a running numerator (`fuse-numerator`, optionally `{rank=M}`)."""

    name = "fuse-numerator"
    rank: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            if not fuse_numerator(cascade, self.rank):
                remark(f"fuse-numerator: @{cascade.cascade_name}: {why_not(cascade)}")
