"""What a mapped cascade would hold in each storage level: the lowering's own count, for the
mapping passes that choose tiles to fit (`map-fusemax`'s query block, `map-flat`'s row block).

The cascade is lowered to loop nests on a copy and every kernel is placed and analysed exactly
as `lower-to-dataflow` does it, so a mapping pass and the cost report can never disagree on
whether a tile fits.
"""

from __future__ import annotations

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture
from einsum_opt.lowering.accesses import kernel_accesses
from einsum_opt.lowering.einsum_to_loopnest import lower_to_loopnest
from einsum_opt.lowering.kernels import split_kernels
from einsum_opt.lowering.loopnest_to_dataflow import find_views


def peak_bytes(cascade: CascadeOp, arch: Architecture) -> dict[str, int]:
    """Level -> the most bytes one instance holds at once, over the kernels of `cascade` as
    its mappings now stand (the cascade itself is left unchanged)."""
    copy = cascade.clone()
    lower_to_loopnest(copy)
    nests = [op for op in copy.body.block.ops if isinstance(op, NestOp)]
    views = find_views(copy, nests)
    computing = [n for n in nests if n.tensor_name not in views]
    peaks: dict[str, int] = {}
    for members in split_kernels(computing, views).values():
        for buffer in kernel_accesses(copy, members, views, arch).buffers:
            label = buffer.level_name
            peaks[label] = max(peaks.get(label, 0), buffer.bytes_value)
    copy.erase(safe_erase=False)
    return peaks
