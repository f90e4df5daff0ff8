"""Common-subexpression elimination of Einsums: two Einsums that compute the same value from
the same reads (written out through elementwise Einsums of the same element type, so `exp(S -
M)` with `S = QK + B` is `exp(QK + B - M)`), with the same reductions, over the same ranks in
any order, are one: every read of the later one reads the earlier one (with its indices in the
earlier one's rank order). A returned duplicate becomes a copy of the earlier one. Iterative
Einsums, copies and mapped Einsums are left alone.
"""

from __future__ import annotations

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR
from einsum_opt.transforms.rewriting import (
    Read,
    Tree,
    build_einsum,
    erase_einsums,
    inlined_elementwise,
    invalidate_analyses,
    is_returned,
    permuted,
    replace_einsum,
    resolved,
    retarget_reads_with,
)

Key = tuple[object, ...]


def computation_key(op: EinsumOp) -> Key | None:
    """What an Einsum computes, independent of the order of its output ranks; None for the
    ones CSE leaves alone (iterative, non-expression or non-plain outputs)."""
    if op.iterative_rank() is not None or MAPPING_ATTR in op.attributes:
        return None  # a mapped Einsum is placed on hardware as it is
    if any(ix.as_variable() is None for ix in op.output_indices):
        return None
    tree = resolved(op)
    if tree is None or (isinstance(tree, Read) and not op.reduced_variables()):
        return None  # a copy computes nothing (the lowering reads its source)
    elt = op.result_type.element_type
    canonical: Tree = inlined_elementwise(tree, elt)
    operators = op.reduce.data
    mixed = len({o for _, o in operators}) > 1
    reductions = operators if mixed else tuple(sorted(operators))
    return (
        canonical,
        frozenset(zip(op.output_variables(), op.result_type.rank_names, strict=True)),
        reductions,
        str(elt),
    )


def eliminate_common_einsums(cascade: CascadeOp) -> list[str]:
    """Merge Einsums computing the same value into the first of them; returns the names of
    those removed or turned into copies. One pass in program order suffices: an Einsum's
    producers come before it, so they are merged before its own key is taken."""
    merged: list[str] = []
    seen: dict[Key, EinsumOp] = {}
    for op in cascade.einsums():
        key = computation_key(op)
        if key is None:
            continue
        first = seen.setdefault(key, op)
        if first is not op and _merge_into(cascade, op, first):
            merged.append(op.tensor_name)
    if merged:
        invalidate_analyses(cascade)
    return merged


def _merge_into(cascade: CascadeOp, op: EinsumOp, first: EinsumOp) -> bool:
    """Make `op`'s readers read `first`; a returned `op` becomes a copy of `first`. Returns
    whether anything changed (a returned copy of `first` stays as it is)."""
    index_map = permuted(op.result_type.rank_names, first.result_type.rank_names)
    if not is_returned(cascade, op.result):
        retarget_reads_with(cascade, op.result, first.result, index_map)
        erase_einsums([op])
        return True
    out = tuple(op.output_indices)
    copy_of_first = Read(first.result, index_map(out))
    if resolved(op) == copy_of_first:
        return False
    retarget_reads_with(cascade, op.result, first.result, index_map)
    t = op.result_type
    replace_einsum(
        op, build_einsum(op.tensor_name, out, t.rank_names, t.element_type, copy_of_first)
    )
    return True
