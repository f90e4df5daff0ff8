"""The ops the interpreter executes: Extended Einsums and the loop nests they are lowered to.

An `einsum.einsum` iterates its rank variables, each over its rank's size. A `loopnest.nest`
iterates its own loop variables, each over the loop's trip count; its indices are affine forms
of those variables (and of rank sizes, which always take the cascade's sizes). Everything else
the interpreter needs (accesses, reductions, the map region, the iterative index) the two ops
share through `EinsumStructure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_syntax import rank_of
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.interpreters.einsum_values import ExecutionError

ComputeOp = EinsumOp | NestOp
"""An op that computes one tensor of a cascade."""


def compute_ops(cascade: CascadeOp) -> list[ComputeOp]:
    """The Einsums and loop nests of a cascade, in program order."""
    return [op for op in cascade.body.block.ops if isinstance(op, EinsumOp | NestOp)]


def producer_of(value: SSAValue | None) -> ComputeOp | None:
    """The Einsum or nest computing `value` (None for a cascade input or a self read)."""
    owner = None if value is None else value.owner
    return owner if isinstance(owner, EinsumOp | NestOp) else None


def unique(variables: Sequence[str]) -> tuple[str, ...]:
    """`variables` without repetitions, in order of first appearance."""
    return tuple(dict.fromkeys(variables))


def variable_extents(op: ComputeOp, sizes: Mapping[str, int]) -> dict[str, int]:
    """Iteration variable -> how many values it takes: its rank's size in an Einsum, its
    loop's trip count in a nest. ExecutionError when a nest's loops do not match its indices."""
    variables = unique(op.variables())
    if isinstance(op, EinsumOp):
        return {v: sizes[rank_of(v)] for v in variables}
    extents = op.extents()
    missing = [v for v in variables if v not in extents]
    if missing:
        raise ExecutionError(f"{op.describe()}: index variable {missing[0]} has no loop")
    unused = [v for v in extents if v not in variables]
    if unused:
        raise ExecutionError(f"{op.describe()}: loop {unused[0]} is used by no index")
    return {v: extents[v] for v in variables}


def iterative_position(op: ComputeOp) -> int | None:
    """The output position whose index is `r+1` (the iterative rank), if any."""
    for k, index in enumerate(op.output_indices):
        offset = index.as_offset()
        if offset is not None and offset[1] != 0:
            return k
    return None


def iterative_rank_name(op: ComputeOp) -> str | None:
    """The rank (of the output tensor type) that `op` iterates, if any."""
    k = iterative_position(op)
    names = op.result_type.rank_names
    return None if k is None or k >= len(names) else names[k]


def output_position(op: ComputeOp, variable: str) -> int | None:
    """The first output position whose index uses `variable`."""
    for k, index in enumerate(op.output_indices):
        if variable in index.variables:
            return k
    return None


def check_structure(op: ComputeOp) -> None:
    """ExecutionError when `op` cannot be run: its reductions do not name exactly the
    variables its output does not use, it reads its own output without iterating, or it
    iterates without an initial value."""
    reduced = set(op.reduced_variables())
    listed = [v for v, _ in op.reduce.data]
    if sorted(listed) != sorted(reduced):
        raise ExecutionError(
            f"{op.describe()}: reduces [{', '.join(listed)}], but the variables its output "
            f"does not use are [{', '.join(sorted(reduced))}]"
        )
    if op.self_read_positions() and op.iterative_rank() is None:
        raise ExecutionError(f"{op.describe()}: reads its own output but iterates no rank")
    if op.iterative_rank() is not None and op.init is None:
        raise ExecutionError(f"{op.describe()}: iterates but has no initial value")
