"""`fuse-numerator`: numerator merging (2 passes -> 1), the last step of FuseMax.

Matches a +-reduction over rank r (or a split pair r1 x r0) of a product with one factor
```
exp(Y - T[R, o])          # possibly scaled, exp((Y - T[R, o]) * c), and possibly read through
                          # elementwise Einsums (A = SN / SD, AD = A * DROP, SN = exp(...))
```
where T is an iterative tensor over r read at its final value (the running max of
`fuse-max-sum`). The other factors are the weights W (those that depend on r: V, a dropout
mask) and the factors outside the sum (those that do not: the normaliser 1 / SD however it is
written, `SN / SD`, `SN * (1 / SD)`, `SN * R` with `R = 1 / SD`, constants). Since the sum is
linear, the outside factors move out of it, and the sum of exp(Y - T[R]) * W is built as a
running numerator rescaled by the same correction factor as the running denominator:
```
PRM[r, o]      = exp(T[r, o] - T[r+1, o])
SLN[r, r0, o]  = exp(Y - T[r+1, o])
SPNV[r, out]   = PRM[r, o] * RNV[r, out]
SLNV[r, out]   = SLN[r, r0, o] * W :: add(r0)
RNV[r+1, out]  = SPNV[r, out] + SLNV[r, out]              init 0
Z[out]         = RNV[R, out] * outside
```
By induction RNV[k] = sum over j < k of exp(Y_j - T[k]) W_j, so RNV[R] * outside is the original
sum whatever values T takes (the running max keeps it in range; started at the lowest finite
value, as `fuse-max-sum` starts it, it is right on masked inputs too). A sum that is divided
afterwards (`SNV = SN * V`, `AV = SNV / SD`, as FlashAttention normalises) is the same match
with nothing outside. Existing PRM and SLN Einsums (from `fuse-max-sum`) are reused when they
compute exactly these values.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Attribute
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.transforms.factors import Expander, Factors, Shift, factors_of, shift_of, shifted
from einsum_opt.transforms.fuse_max_sum import has_plain_outputs
from einsum_opt.transforms.rewriting import (
    Names,
    RCall,
    Read,
    Tree,
    build_einsum,
    elementwise_producer,
    inlined_elementwise,
    insert_before,
    merge_all,
    merges_over,
    producer_value,
    ranks_of,
    reads_in,
    remark,
    remove_dead_einsums,
    replace_einsum,
    rescaled_running_sum,
    resolved,
    variables_in,
)


@dataclass(frozen=True)
class Numerator:
    """A matched sum of exp(Y - T[R]) * W times factors outside the sum."""

    reduction: EinsumOp
    shift: Shift  # exp((Y - T[R, o]) * c)
    running: Read  # T[R, o]: the final value of an iterative tensor
    outer: str  # the iterative variable of T
    inner: tuple[str, ...]
    weight: Factors  # W: the other factors that depend on the reduced variables
    outside: Factors  # the factors that do not


def final_read(read: Tree, reduced: set[str]) -> tuple[Read, str] | None:
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


def factor_expander(reduced: set[str], element_type: Attribute) -> Expander:
    """Looks into a factor read of an elementwise Einsum of `element_type` that varies over a
    reduced rank and is a copy, a product, a quotient, or an exponential shifted by a final
    running value."""

    def expand(read: Read) -> Tree | None:
        if read.value is None or not variables_in(read) & reduced:
            return None
        producer = elementwise_producer(read)
        if producer is None or producer.result_type.element_type != element_type:
            return None
        value = producer_value(read)
        if isinstance(value, Read) or (isinstance(value, RCall) and value.fn in ("mul", "div")):
            return value
        shift = None if value is None else shift_of(value)
        if shift is not None and final_read(shift.by, reduced) is not None:
            return value
        return None

    return expand


def reduction_factors(av: EinsumOp) -> Factors | None:
    """The factors of a +-reduction's value, looking through elementwise Einsums."""
    reduced = av.reduced_variables()
    if not reduced or av.iterative_rank() or any(o != "add" for _, o in av.reduce.data):
        return None
    tree = resolved(av)
    if tree is None or not has_plain_outputs(av):
        return None
    return factors_of(tree, factor_expander(set(reduced), av.result_type.element_type))


def find_numerator(cascade: CascadeOp, rank: str | None = None) -> Numerator | None:
    """The first reduction whose numerator can be merged (over `rank` if given)."""
    for av in cascade.einsums():
        factors = reduction_factors(av)
        if factors is None:
            continue
        reduced = set(av.reduced_variables())
        for k, factor in enumerate(factors.numerator):
            shift = shift_of(factor)
            if shift is None or (final := final_read(shift.by, reduced)) is None:
                continue
            running, outer = final
            if not merges_over(cascade, outer, rank):
                continue
            weight, outside = Factors(), Factors()
            for i, f in enumerate(factors.numerator):
                if i != k:
                    (weight if variables_in(f) & reduced else outside).numerator.append(f)
            for f in factors.denominator:
                (weight if variables_in(f) & reduced else outside).denominator.append(f)
            inner = tuple(v for v in av.reduced_variables() if v != outer)
            return Numerator(av, shift, running, outer, inner, weight, outside)
    return None


def find_einsum(cascade: CascadeOp, tree: Tree, variables: list[str]) -> EinsumOp | None:
    """An Einsum without reduction over `variables` (in any order) that computes `tree`
    (compared with elementwise Einsums written out)."""
    want: Tree | None = None
    for op in cascade.einsums():
        if op.reduced_variables() or op.iterative_rank() or not has_plain_outputs(op):
            continue
        if sorted(op.output_variables()) != sorted(variables):
            continue
        body = resolved(op)
        if body is None:
            continue
        elt = op.result_type.element_type
        want = inlined_elementwise(tree, elt)
        if body == tree or inlined_elementwise(body, elt) == want:
            return op
    return None


def merge_numerator(cascade: CascadeOp, match: Numerator) -> None:
    """Rewrite one matched reduction into a running numerator, scaled once at the end."""
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
    now_vars = [r, *(ix.as_variable() or "" for ix in o_t)]
    new: list[EinsumOp] = []

    def reuse_or_build(wanted: str, tree: Tree, variables: list[str], ranks: list[str]) -> Read:
        op = find_einsum(cascade, tree, variables)
        if op is None:
            output = [IndexExpr.var(v) for v in variables]
            op = build_einsum(names.fresh(wanted), output, ranks, elt, tree)
            new.append(op)
        return Read(op.result, tuple(op.output_indices))

    now_ranks = [big_r, *o_t_ranks]
    scale = match.shift.scale
    prm = reuse_or_build("PRM", shifted(t_read(0), t_read(1), scale), now_vars, now_ranks)
    # Same variable order as fuse-max-sum's SLN (the running tensor's), so it is reused.
    value = match.shift.value
    rest = variables_in(value) - {r, *match.inner}
    running_order = [v for ix in o_t for v in ix.variables]
    first_use = [v for read in reads_in(value) for ix in read.indices for v in ix.variables]
    tile_vars = [r, *match.inner]
    for v in running_order + first_use:
        if v in rest and v not in tile_vars:
            tile_vars.append(v)
    sln = reuse_or_build(
        "SLN", shifted(value, t_read(1), scale), tile_vars, [rank_of(v) for v in tile_vars]
    )
    weight = Factors([sln, *match.weight.numerator], list(match.weight.denominator))
    out = list(av.output_indices)
    out_ranks = list(av.result_type.rank_names)
    now = [IndexExpr.var(r), *out]
    spnv, slnv, rnv = rescaled_running_sum(
        names,
        ("SPNV", "SLNV", "RNV"),
        prm,
        weight.value(),
        match.inner,
        now,
        [big_r, *out_ranks],
        elt,
    )
    final = Read(rnv.result, (IndexExpr.extent(big_r), *out))
    outside = Factors([final, *match.outside.numerator], list(match.outside.denominator))
    result = build_einsum(av.tensor_name, out, out_ranks, elt, outside.value())
    insert_before(av, [*new, spnv, slnv, rnv])
    replace_einsum(av, result)
    remove_dead_einsums(cascade)


def fuse_numerator(cascade: CascadeOp, rank: str | None = None) -> int:
    """Merge every normalised numerator of `cascade` (over `rank` if given); returns how many."""
    return merge_all(cascade, find_numerator, merge_numerator, rank)


@dataclass(frozen=True)
class FuseNumeratorPass(ModulePass):
    """Numerator merging: defer a division by a running normaliser past the + reduction it
    feeds, rescaling a running numerator (`fuse-numerator`, optionally `{rank=M}`)."""

    name = "fuse-numerator"
    rank: str | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        from einsum_opt.transforms.fusion_remarks import numerator_blocker

        for cascade in cascades_in(op):
            if not fuse_numerator(cascade, self.rank):
                remark(
                    f"fuse-numerator: @{cascade.cascade_name}: "
                    f"{numerator_blocker(cascade, self.rank)}"
                )
