"""Scalar factors move out of sum-reductions: `QK[m, p] = Q[e, p] * K[e, m] / sqrt(E)` costs a
division and a square root per multiply-accumulate, while
```
QKS[m, p] = Q[e, p] * K[e, m]            # the sum of products alone
QK[m, p]  = QKS[m, p] / sqrt(E)          # the scale, once per result
```
computes the same value (the sum is linear) with one division per result. A factor is scalar when
it reads no tensor: numbers, rank sizes, and functions of them. Integer sums with a division are
left alone (integer division does not commute with the sum or with other factors).
"""

from __future__ import annotations

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_map import is_float
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR
from einsum_opt.transforms.factors import Factors, factors_of, is_scalar
from einsum_opt.transforms.rewriting import (
    Names,
    Read,
    build_einsum,
    insert_before,
    invalidate_analyses,
    replace_einsum,
    resolved,
)


def scalar_split(op: EinsumOp) -> tuple[Factors, Factors] | None:
    """(the tensor factors, the scalar factors) of a sum-reduction with scalar factors to hoist;
    None when there is nothing to hoist."""
    if not op.reduced_variables() or op.iterative_rank() or MAPPING_ATTR in op.attributes:
        return None  # a mapped Einsum keeps its form: a new Einsum would have no mapping
    if any(o != "add" for _, o in op.reduce.data):
        return None
    tree = resolved(op)
    if tree is None:
        return None
    factors = factors_of(tree)
    tensors, scalars = Factors(), Factors()
    for f in factors.numerator:
        (scalars if is_scalar(f) else tensors).numerator.append(f)
    for f in factors.denominator:
        (scalars if is_scalar(f) else tensors).denominator.append(f)
    if not is_float(op.result_type.element_type) and factors.denominator:
        return None  # integer division does not distribute: (3 * i) / 2 is not 3 * (i / 2)
    if not tensors.numerator or not (scalars.numerator or scalars.denominator):
        return None
    return tensors, scalars


def hoist_scalar_factors(cascade: CascadeOp) -> list[str]:
    """Move scalar factors out of every sum-reduction; returns the names of the Einsums
    that now compute the scale."""
    names = Names(cascade)
    hoisted: list[str] = []
    for op in cascade.einsums():
        split = scalar_split(op)
        if split is None:
            continue
        tensors, scalars = split
        t = op.result_type
        out = tuple(op.output_indices)
        total = build_einsum(
            names.fresh(f"{op.tensor_name}S"),
            out,
            t.rank_names,
            t.element_type,
            tensors.value(),
            reduce=op.reduce.data,
        )
        scaled = Factors([Read(total.result, out), *scalars.numerator], scalars.denominator)
        insert_before(op, [total])
        replace_einsum(
            op, build_einsum(op.tensor_name, out, t.rank_names, t.element_type, scaled.value())
        )
        hoisted.append(op.tensor_name)
    if hoisted:
        invalidate_analyses(cascade)
    return hoisted
