"""`count-passes`: how many passes over each rank's input a cascade needs.

The rule (FuseMax §2, `shared/reference/fusemax.md`): a value *needs all of R* when it is the
output of a reduction over R, the final value of an iterative rank R (read at the rank's
extent, `RNV[M1, f, p]`), or is computed without iterating R from such a value. An Einsum that
iterates R and reads a value that needs all of R starts a new pass over R; reads of the current
or previous index of an iterative rank do not. passes(R) = 1 + the largest number of pass starts
on any producer -> consumer path. Ranks no Einsum iterates are not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp, i64
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of, variable_of
from einsum_opt.dialects.locations import OpPassFailedException

PASSES_ATTR = "passes"
"""The cascade attribute `count-passes` writes: rank name -> pass count (i64)."""


@dataclass
class _RankState:
    needs_all: dict[SSAValue, bool]
    depth: dict[SSAValue, int]


def _reads_final_value(access: IndexExpr, var: str) -> bool:
    return access.as_extent() == rank_of(var)


def _iterates(op: EinsumOp, var: str) -> bool:
    return var in op.variables()


def _passes_over(cascade: CascadeOp, var: str) -> int:
    """passes(rank of `var`) by a fixpoint over the Einsums (cycles only through read-aheads)."""
    return 1 + max(_rank_state(cascade, var).depth.values(), default=0)


def _rank_state(cascade: CascadeOp, var: str) -> _RankState:
    einsums = cascade.einsums()
    state = _RankState({}, {})
    for _ in range(len(einsums) + 2):
        changed = False
        for op in einsums:
            needs, depth = _evaluate(op, var, state)
            out = op.result
            if state.needs_all.get(out) != needs or state.depth.get(out) != depth:
                state.needs_all[out], state.depth[out] = needs, depth
                changed = True
        if not changed:
            return state
    raise OpPassFailedException(
        cascade,
        f"count-passes: @{cascade.cascade_name}: passes over rank {rank_of(var)} do not converge "
        "(a value that needs all of the rank feeds back into its own iteration)"
    )


def _evaluate(op: EinsumOp, var: str, state: _RankState) -> tuple[bool, int]:
    iterates = _iterates(op, var)
    needs = var in op.reduced_variables()
    depth = 0
    for value, indices in op.accesses():
        if value is None:  # a self read is the previous value: never a pass start
            continue
        rank = rank_of(var)
        tensor_ranks = op.access_type(value).rank_names
        final = any(
            r == rank and _reads_final_value(ix, var)
            for r, ix in zip(tensor_ranks, indices, strict=True)
        )
        needs_all = final or state.needs_all.get(value, False)
        start = 1 if iterates and needs_all else 0
        depth = max(depth, state.depth.get(value, 0) + start)
        if needs_all and not iterates:
            needs = True
    return needs, depth


def pass_starts(cascade: CascadeOp, rank: str) -> list[tuple[EinsumOp, SSAValue]]:
    """The reads that start a new pass over `rank`: (the Einsum iterating the rank, the value
    it reads that needs all of the rank), deepest first."""
    var = variable_of(rank)
    state = _rank_state(cascade, var)
    starts: list[tuple[int, EinsumOp, SSAValue]] = []
    for op in cascade.einsums():
        if not _iterates(op, var):
            continue
        for value, indices in op.accesses():
            if value is None:
                continue
            ranks = op.access_type(value).rank_names
            final = any(
                r == rank and _reads_final_value(ix, var)
                for r, ix in zip(ranks, indices, strict=True)
            )
            if final or state.needs_all.get(value, False):
                starts.append((state.depth.get(op.result, 0), op, value))
    starts.sort(key=lambda s: -s[0])
    return [(op, value) for _, op, value in starts]


def needs_all_of(cascade: CascadeOp, rank: str) -> set[SSAValue]:
    """The values that need all of `rank` (a reduction over it, a final value, or computed
    from one without iterating it)."""
    state = _rank_state(cascade, variable_of(rank))
    return {v for v, needs in state.needs_all.items() if needs}


def count_passes(cascade: CascadeOp) -> dict[str, int]:
    """Rank name -> passes, for every declared rank some Einsum iterates (declaration order)."""
    iterated = {v for op in cascade.einsums() for v in op.variables()}
    return {
        rank: _passes_over(cascade, variable_of(rank))
        for rank in cascade.ranks.names
        if variable_of(rank) in iterated
    }


def annotate_passes(module: ModuleOp | CascadeOp) -> None:
    """Attach the `passes` dictionary to every cascade."""
    cascades = cascades_in(module)
    for cascade in cascades:
        counts = count_passes(cascade)
        cascade.attributes[PASSES_ATTR] = DictionaryAttr(
            {rank: IntegerAttr(n, i64) for rank, n in counts.items()}
        )


@dataclass(frozen=True)
class CountPassesPass(ModulePass):
    """Annotate each cascade with `passes = {RANK = n, ...}`: its passes over each rank."""

    name = "count-passes"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        annotate_passes(op)
