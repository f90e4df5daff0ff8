"""Why a merge does not apply, and why passes remain: the remarks of the fusion passes.

Each function names the Einsum and the condition that actually blocks the merge, by looking for
the nearest miss of the pattern the merge matches; `remaining_reason` starts from the read that
starts the extra pass (`count_passes.pass_starts`) and explains that read.
"""

from __future__ import annotations

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_syntax import rank_of
from einsum_opt.transforms.count_passes import count_passes, pass_starts
from einsum_opt.transforms.factors import shift_of
from einsum_opt.transforms.fuse_max_sum import exposed_shift, max_reductions, shift_by
from einsum_opt.transforms.fuse_mean_variance import is_mean_of, sum_levels
from einsum_opt.transforms.fuse_numerator import final_read, reduction_factors
from einsum_opt.transforms.rewriting import (
    Read,
    inlined_elementwise,
    is_returned,
    parent_rank,
    ranks_of,
    resolved,
)


def _over(rank: str | None) -> str:
    return f" over {rank}" if rank else ""


def _ranks(variables: tuple[str, ...] | set[str]) -> str:
    return ", ".join(rank_of(v) for v in sorted(variables))


def max_sum_blocker(cascade: CascadeOp, rank: str | None = None) -> str:
    """Why no max-reduction and sum of the exponential shifted by it can be merged."""
    found = max_reductions(cascade, rank)
    if not found:
        return f"no max-reduction{_over(rank)} (over one rank, or both levels of a split rank)"
    return _max_sum_miss(cascade, found[0][0])


def _max_sum_miss(cascade: CascadeOp, g: EinsumOp) -> str:
    name = g.tensor_name
    value = resolved(g)
    assert value is not None
    elt = g.result_type.element_type
    want = inlined_elementwise(value, elt)
    reduced = set(g.reduced_variables())
    shifts = []
    for op in cascade.einsums():
        body = resolved(op)
        shift = None if body is None or op is g else shift_by(g, body)
        if shift is not None:
            shifts.append((op, inlined_elementwise(shift.value, elt) == want))
    if not shifts:
        return f"the max {name} is not subtracted in an exp(y - {name}) by any Einsum"
    if not any(same for _, same in shifts):
        other = shifts[0][0].tensor_name
        return f"{other} computes exp(y - {name}) of another y than the one {name} maximises"
    for op, same in shifts:
        if not same or not op.reduced_variables():
            continue
        where = op.tensor_name
        if set(op.reduced_variables()) != reduced:
            return (
                f"{where} sums exp(y - {name}) over {_ranks(set(op.reduced_variables()))}, "
                f"not over {_ranks(reduced)}"
            )
        if any(o != "add" for _, o in op.reduce.data):
            return f"{where} reduces exp(y - {name}) with {op.reduce.data[0][1]}, not +"
        return f"{where} keeps other ranks than {name} ({', '.join(op.result_type.rank_names)})"
    shifted = next(op for op, same in shifts if same).tensor_name
    return f"exp(y - {name}) ({shifted}) is not summed over {_ranks(reduced)} by any Einsum"


def numerator_blocker(cascade: CascadeOp, rank: str | None = None) -> str:
    """Why no sum of a value shifted by a running max's final value can be merged."""
    for av in cascade.einsums():
        factors = reduction_factors(av)
        reduced = set(av.reduced_variables())
        if factors is None or (rank is not None and not _reduces(cascade, av, rank)):
            continue
        for f in factors.numerator:
            shift = shift_of(f)
            if shift is None or final_read(shift.by, reduced) is not None:
                continue
            by = shift.by
            producer = by.value.owner if isinstance(by, Read) and by.value is not None else None
            if isinstance(producer, EinsumOp) and any(o == "max" for _, o in producer.reduce.data):
                return (
                    f"{av.tensor_name} sums exp(y - {producer.tensor_name}), shifted by the full "
                    f"max {producer.tensor_name}: merge it into a running max first "
                    f"(fuse-max-sum: {max_sum_blocker(cascade, rank)})"
                )
            return (
                f"{av.tensor_name} sums an exponential whose shift is not the final value of a "
                f"running max over the summed rank"
            )
    per_element = _per_element_final_reader(cascade, rank)
    if per_element is not None:
        return per_element
    return (
        f"no + reduction{_over(rank)} sums a product with a factor exp(y - M[R]), M a running "
        "max read at its final value"
    )


def _reduces(cascade: CascadeOp, op: EinsumOp, rank: str) -> bool:
    return any(parent_rank(cascade, rank_of(v)) == rank for v in op.reduced_variables())


def _per_element_final_reader(cascade: CascadeOp, rank: str | None) -> str | None:
    """The remark for an Einsum dividing by (or otherwise reading) a running value's final
    value per element of the running rank (a returned one first)."""
    found: list[tuple[EinsumOp, str, str]] = []
    for op in cascade.einsums():
        finals: dict[str, str] = {}
        for value, indices in op.accesses():
            producer = None if value is None else value.owner
            if not isinstance(producer, EinsumOp) or (it := producer.iterative_rank()) is None:
                continue
            if rank is not None and parent_rank(cascade, rank_of(it)) != rank:
                continue
            if it not in op.variables() or final_read(Read(value, tuple(indices)), {it}) is None:
                continue
            finals[producer.tensor_name] = parent_rank(cascade, rank_of(it))
        if finals:
            whole = next(iter(finals.values()))
            found.append((op, " and ".join(finals), whole))
    found.sort(key=lambda f: not is_returned(cascade, f[0].result))
    return _why_per_element(cascade, *found[0]) if found else None


def _why_per_element(cascade: CascadeOp, op: EinsumOp, running: str, rank: str) -> str:
    """Explain an Einsum iterating `rank` that reads `running`'s final value."""
    plural = "s" if " and " in running else ""
    what = f"{op.tensor_name} reads the final value{plural} of {running} per element of {rank}"
    minimum = (
        "the final value is needed before any element can be written, so 2 passes is the minimum"
    )
    if is_returned(cascade, op.result) and _has_rank(cascade, op.result, rank):
        return f"{what} and is a cascade output over {rank}: {minimum}"
    if _reaches_output_over(cascade, op.result, rank):
        return f"{what} and a cascade output over {rank} needs it per element: {minimum}"
    readers = sorted(
        {u.operation.tensor_name for u in op.result.uses if isinstance(u.operation, EinsumOp)}
    )
    sums = [
        u.operation.tensor_name
        for u in op.result.uses
        if isinstance(u.operation, EinsumOp) and u.operation.reduced_variables()
    ]
    if sums:
        return (
            f"{what}; {sums[0]} sums it, but not as a product with a factor exp(y - M[{rank}]), "
            "M a running max (only such a factor can be rescaled as the sum runs)"
        )
    return f"{what}; its readers ({', '.join(readers) or 'none'}) do not sum it over {rank}"


def _reaches_output_over(cascade: CascadeOp, value: SSAValue, rank: str) -> bool:
    """Whether `value` flows, without a reduction over `rank`, into a returned tensor that has
    `rank` (or one of its levels)."""
    seen: set[SSAValue] = set()
    work = [value]
    while work:
        v = work.pop()
        if v in seen:
            continue
        seen.add(v)
        owner = v.owner
        if isinstance(owner, EinsumOp) and _reduces(cascade, owner, rank) and v is not value:
            continue
        if is_returned(cascade, v) and _has_rank(cascade, v, rank):
            return True
        work += [u.operation.results[0] for u in v.uses if isinstance(u.operation, EinsumOp)]
    return False


def _has_rank(cascade: CascadeOp, value: SSAValue, rank: str) -> bool:
    return any(parent_rank(cascade, r) == rank for r in ranks_of(value))


def mean_variance_blocker(cascade: CascadeOp, rank: str | None = None) -> str:
    """Why no mean and sum of squared deviations from it can be merged."""
    sums = [
        s
        for s in cascade.einsums()
        if (levels := sum_levels(cascade, s)) is not None
        and (rank is None or parent_rank(cascade, rank_of(levels[0])) == rank)
    ]
    if not sums:
        return f"no + reduction{_over(rank)}"
    for s in sums:
        levels = sum_levels(cascade, s)
        assert levels is not None
        whole = parent_rank(cascade, rank_of(levels[0]))
        means = [mu for mu in cascade.einsums() if is_mean_of(mu, s, whole)]
        if means:
            return (
                f"{means[0].tensor_name} is the mean {s.tensor_name} / {whole}, but no + "
                f"reduction over {whole} sums the squared deviations (y - "
                f"{means[0].tensor_name})^2 of the same y"
            )
    return f"no Einsum divides a sum over {rank or 'a rank'} by the rank's size (a mean S / R)"


def minimum_passes(cascade: CascadeOp, rank: str) -> int:
    """The fewest passes over `rank` any rewrite could reach: 2 when a cascade output has the
    rank and depends on all of it (on a reduction over it or a final value along it): it
    cannot be written per element before the whole rank was read; else 1."""
    for value in cascade.return_op().values:
        if _has_rank(cascade, value, rank) and _needs_whole(cascade, value, rank):
            return 2
    return 1


def _needs_whole(cascade: CascadeOp, value: SSAValue, rank: str) -> bool:
    """Whether computing `value` takes a reduction over `rank` or a final value along it."""
    seen: set[SSAValue] = set()
    work = [value]
    while work:
        v = work.pop()
        owner = v.owner
        if v in seen or not isinstance(owner, EinsumOp):
            continue
        seen.add(v)
        if _reduces(cascade, owner, rank):
            return True
        for read, indices in owner.accesses():
            if read is None:
                continue
            for r, ix in zip(ranks_of(read), indices, strict=True):
                if ix.as_extent() == r and parent_rank(cascade, r) == rank:
                    return True
            work.append(read)
    return False


def remaining_reason(cascade: CascadeOp, rank: str, level: str) -> str:
    """Why more than one pass over `level` (the rank or its outer level) remains: the read that
    starts an extra pass and what keeps it from being merged. Above the minimum, that is an
    unmerged reduction read while iterating the rank; at the minimum, the output that needs a
    value of the whole rank per element."""
    starts = pass_starts(cascade, level)
    if not starts:
        return "no read starts a second pass"
    above = count_passes(cascade).get(level, 1) > minimum_passes(cascade, rank)
    for op, value in reversed(starts) if above else []:  # the first extra pass first
        producer = value.owner
        if not isinstance(producer, EinsumOp) or producer.iterative_rank() is not None:
            continue
        operators = {o for _, o in producer.reduce.data}
        if not operators:
            continue
        kind = "sum" if operators == {"add"} else "/".join(sorted(operators))
        reads = (
            f"{op.tensor_name} reads {producer.tensor_name}, a {kind} over {rank}, while "
            f"iterating {rank}; "
        )
        body = resolved(producer)
        if operators == {"add"} and (body is None or exposed_shift(body) is None):
            return reads + mean_variance_blocker(cascade, rank)
        return reads + max_sum_blocker(cascade, rank)
    op, value = starts[0]
    producer = value.owner
    name = producer.tensor_name if isinstance(producer, EinsumOp) else "an input"
    if _reaches_output_over(cascade, op.result, rank):
        return (
            f"{op.tensor_name} needs {name} (all of {rank}) before any of its elements, and a "
            f"cascade output over {rank} needs it per element"
        )
    return numerator_blocker(cascade, rank)
