"""The reference's latency composition of FuseMax (`shared/reference/fusemax.md` §4), by hand,
for tests to compare the compiled pipeline's cost model against."""

from __future__ import annotations


def reference_cycles(sizes: dict[str, int], tile: int = 256) -> int:
    """§4's composition: per query block of `tile` queries and per (batch, head),
    max(QK+LM, RD+RNV+AV) + RM + max(SLN+SLD, PRM+SPD) + max(SLNV, SPNV), each term summed
    over the block's M1 key tiles (costs per element: QK E MACs, LM/RM 1 max, SLN/PRM 7,
    SPD 1, SLD/RD 1 add, SLNV/SPNV/RNV F, AV F divides once per block)."""
    e, f, m1 = sizes["E"], sizes["F"], sizes["M"] // tile
    qk, lm, rm, sln, prm, spd, sld, rd = e, 1, 1, 7, 7, 1, 1, 1
    slnv, spnv, rnv, av = f, f, f, f
    block = (
        max((qk + lm) * m1, (rd + rnv) * m1 + av)
        + rm * m1
        + max((sln + sld) * m1, (prm + spd) * m1)
        + max(slnv * m1, spnv * m1)
    )
    return block * (sizes["P"] // tile) * sizes["B"] * sizes["H"]
