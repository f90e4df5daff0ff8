"""Whether a cascade's tensors fit in memory at given rank sizes, checked before anything is
allocated, so a run at a huge size is refused with the size it asked for."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.einsum_attrs import TensorType
from einsum_opt.interpreters.compute_ops import compute_ops, iterative_rank_name
from einsum_opt.interpreters.einsum_values import ExecutionError, numeric_type


def memory_bytes() -> int | None:
    """This machine's physical memory, if the system says."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: int) -> str:
    """`512 B`, `1.5 KiB`, `4.0 TiB`, ... (binary prefixes)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def tensor_bytes(cascade: CascadeOp, sizes: Mapping[str, int]) -> dict[str, tuple[str, int]]:
    """Tensor name -> (its description, the bytes it takes): every input and every computed
    tensor (an iterative one with its extra entry along its iterative rank)."""
    found: dict[str, tuple[str, int]] = {}

    def add(name: str, t: TensorType, extra_on: str | None = None) -> None:
        elements = math.prod(sizes[r] + (1 if r == extra_on else 0) for r in t.rank_names)
        kind = numeric_type(t.element_type)
        shape = ", ".join(f"{r} = {sizes[r]}" for r in t.rank_names) or "a scalar"
        found[name] = (f"{name} [{shape}] of {t.element_type}", elements * kind.dtype.itemsize)

    for name, t in cascade.inputs():
        add(name, t)
    for op in compute_ops(cascade):
        assert isinstance(op.result.type, TensorType)
        add(op.tensor_name, op.result.type, iterative_rank_name(op))
    return found


def check_fits_in_memory(
    cascade: CascadeOp, sizes: Mapping[str, int], limit: int | None = None
) -> None:
    """ExecutionError, naming the largest tensor and the total asked for, when the cascade's
    tensors at `sizes` need more than `limit` bytes (default: this machine's memory)."""
    limit = memory_bytes() if limit is None else limit
    if limit is None:
        return
    tensors = tensor_bytes(cascade, sizes)
    total = sum(b for _, b in tensors.values())
    if total <= limit:
        return
    largest, largest_bytes = max(tensors.values(), key=lambda entry: entry[1])
    raise ExecutionError(
        f"cascade @{cascade.cascade_name} needs {format_bytes(total)} for its tensors (the "
        f"largest: {largest}, {format_bytes(largest_bytes)}), more than the "
        f"{format_bytes(limit)} of memory; choose smaller rank sizes (--ranks)"
    )
