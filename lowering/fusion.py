"""Which loops several loop nests of a kernel share: they run one after another inside them."""

from __future__ import annotations

from collections.abc import Sequence

from einsum_opt.dialects.loopnest import NestOp


def fused_loops(nests: Sequence[NestOp]) -> tuple[str, ...]:
    """The loops several nests without running values share, outermost first: the longest
    common prefix of their temporal loops (same variables and trip counts), cut before a loop
    that one of them reduces while another reads the result (its consumer needs every
    iteration). Empty for a single nest."""
    if len(nests) < 2:
        return ()
    produced = {n.tensor_name for n in nests}
    consumed = {n.access_name(v) for n in nests for v, _ in n.accesses() if v is not None}
    blocked = {
        v for n in nests if n.tensor_name in produced & consumed for v in n.reduced_variables()
    }
    prefix: list[str] = []
    for loops in zip(*(n.loop_list() for n in nests), strict=False):
        first = loops[0]
        if (
            first.spatial_axis is not None
            or first.var.data in blocked
            or any(
                lp.var.data != first.var.data
                or lp.extent.data != first.extent.data
                or lp.spatial_axis is not None
                for lp in loops
            )
        ):
            break
        prefix.append(first.var.data)
    return tuple(prefix)
