"""What a mapped cascade would hold in each storage level: the lowering's own count, for the
mapping passes that choose tiles to fit (`map-fusemax`'s query block, `map-flat`'s row block).

The cascade is lowered to loop nests on a copy and every kernel is placed and analysed exactly
as `lower-to-dataflow` does it, so a mapping pass and the cost report can never disagree on
whether a tile fits.
"""

from __future__ import annotations

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.locations import clone_located
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture
from einsum_opt.lowering.accesses import KernelAccesses, kernel_accesses
from einsum_opt.lowering.einsum_to_loopnest import lower_to_loopnest
from einsum_opt.lowering.kernels import split_kernels
from einsum_opt.lowering.loopnest_to_dataflow import find_views


def trial(
    cascade: CascadeOp, arch: Architecture, kernel: str | None = None
) -> list[KernelAccesses]:
    """The accesses and buffers of every kernel of `cascade` (or the one named `kernel`) as
    its mappings now stand, counted on a copy (the cascade is left unchanged)."""
    copy = clone_located(cascade)
    lower_to_loopnest(copy)
    nests = [op for op in copy.body.block.ops if isinstance(op, NestOp)]
    views = find_views(copy, nests)
    computing = [n for n in nests if n.tensor_name not in views]
    found = [
        kernel_accesses(copy, members, views, arch)
        for name, members in split_kernels(computing, views).items()
        if kernel is None or name == kernel
    ]
    copy.erase(safe_erase=False)
    return found


def peak_bytes(
    cascade: CascadeOp, arch: Architecture, kernel: str | None = None
) -> dict[str, int]:
    """Level -> the most bytes one instance holds at once, over the kernels of `cascade` (or
    the one named `kernel`) as its mappings now stand (the cascade is left unchanged)."""
    peaks: dict[str, int] = {}
    for found in trial(cascade, arch, kernel):
        for buffer in found.buffers:
            label = buffer.level_name
            peaks[label] = max(peaks.get(label, 0), buffer.bytes_value)
    return peaks


def root_words(
    cascade: CascadeOp, arch: Architecture, tensor: str, kernel: str | None = None
) -> int:
    """Words of `tensor` read from or written to the root level (DRAM), as mapped now."""
    return sum(
        sum(access.counts())
        for found in trial(cascade, arch, kernel)
        for access in found.accesses
        if access.tensor_name == tensor and access.level_name == arch.root
    )
