"""What tests read off a lowered dataflow program: its compute stages, the accesses at a
level, what each level holds."""

from __future__ import annotations

from einsum_opt.dialects.dataflow import AccessOp, BufferOp, ComputeOp, ProgramOp


def stages(program: ProgramOp) -> dict[str, ComputeOp]:
    """Einsum -> its compute stage."""
    return {op.einsum_name: op for op in program.walk() if isinstance(op, ComputeOp)}


def accesses(program: ProgramOp, level: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(Einsum, tensor) -> (reads, fills, updates) at `level`, summed over instances."""
    return {
        (op.einsum_name, op.tensor_name): op.counts()
        for op in program.walk()
        if isinstance(op, AccessOp) and op.level_name == level
    }


def buffers(program: ProgramOp) -> dict[str, dict[str, int]]:
    """Level -> the allocations it holds at its peak (bytes per instance)."""
    return {op.level_name: op.holds_map() for op in program.walk() if isinstance(op, BufferOp)}
