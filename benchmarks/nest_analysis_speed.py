"""How fast is the per-nest analysis, and does its time grow with the extents? It must not
(the counts are closed-form). Times `analyze` on the worked GEMM of reference/timeloop.md (3
levels, 3 tensors) at 1K and at 1M a side, on a 4×4 and on a 256×256 array, and on a stream of
distinct mappings of one GEMM (as a mapper would evaluate them); prints the ratios, measured in
one run (best of several repetitions), and evaluations per second.

Run: `.venv/bin/python benchmarks/nest_analysis_speed.py`
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from einsum_opt.costmodel.link_transfers import fanout_of
from einsum_opt.costmodel.nest_analysis import LevelSpec, Loop, NestSpec, TensorSpec, Term, analyze
from einsum_opt.costmodel.tile_trace import walk_trace

GEMM = (
    TensorSpec("A", ((Term(1, "M"),), (Term(1, "K"),)), False),
    TensorSpec("B", ((Term(1, "K"),), (Term(1, "N"),)), False),
    TensorSpec("Z", ((Term(1, "M"),), (Term(1, "N"),)), True),
)
ALL = frozenset({"A", "B", "Z"})


def gemm(side: int, array: int) -> NestSpec:
    """DRAM → GLB → array×array RFs keeping Z (output stationary), K in the RFs."""
    k_rf = 64
    return NestSpec(
        {"M": side, "N": side, "K": side},
        GEMM,
        (
            LevelSpec(
                "DRAM",
                1,
                1,
                ALL,
                (
                    Loop("K", side // k_rf),
                    Loop("M", side // (4 * array)),
                    Loop("N", side // (4 * array)),
                ),
            ),
            LevelSpec(
                "GLB",
                1,
                1,
                ALL,
                (Loop("M", 4), Loop("N", 4), Loop("M", array, "X"), Loop("N", array, "Y")),
            ),
            LevelSpec("RF", array, array, frozenset({"Z"}), (Loop("K", k_rf),)),
        ),
        array,
        array,
    )


def mapping_stream(side: int = 256, array: int = 16) -> list[NestSpec]:
    """Distinct mappings of one GEMM: every split of M, N, K between DRAM, GLB and RF, the
    array's axes taken by M and N, two loop orders at DRAM."""
    specs = []
    splits = [(a, b) for a in (1, 2, 4, 8) for b in (1, 2, 4, 8) if side // array % (a * b) == 0]
    for (m_glb, m_rf), (n_glb, n_rf) in itertools.product(splits, splits):
        for k_rf, order in itertools.product((1, 4, 16, 64), ("KMN", "MNK")):
            dram = {"M": side // array // m_glb // m_rf, "N": side // array // n_glb // n_rf}
            dram["K"] = side // k_rf
            specs.append(
                NestSpec(
                    {"M": side, "N": side, "K": side},
                    GEMM,
                    (
                        LevelSpec("DRAM", 1, 1, ALL, tuple(Loop(d, dram[d]) for d in order)),
                        LevelSpec(
                            "GLB",
                            1,
                            1,
                            ALL,
                            (
                                Loop("M", m_glb),
                                Loop("N", n_glb),
                                Loop("M", array, "X"),
                                Loop("N", array, "Y"),
                            ),
                        ),
                        LevelSpec(
                            "RF",
                            array,
                            array,
                            frozenset({"Z"}),
                            (Loop("M", m_rf), Loop("N", n_rf), Loop("K", k_rf)),
                        ),
                    ),
                    array,
                    array,
                )
            )
    return specs


def best_seconds(run: Callable[[], None], repeats: int = 7, calls: int = 200) -> float:
    """The fastest mean time of one call over several repetitions."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    """Print times per evaluation, the size and array ratios, and evaluations per second."""
    small, large = gemm(1024, 4), gemm(1 << 20, 4)
    small_array, large_array = gemm(1 << 12, 4), gemm(1 << 12, 256)
    times = {
        name: best_seconds(lambda spec=spec: analyze(spec))  # type: ignore[misc]
        for name, spec in (
            ("1K", small),
            ("1M", large),
            ("4x4", small_array),
            ("256x256", large_array),
        )
    }
    stream = mapping_stream()
    per_mapping = float("inf")
    for _ in range(3):  # cold: nothing kept from an earlier pass
        walk_trace.cache_clear()
        fanout_of.cache_clear()
        start = time.perf_counter()
        for spec in stream:
            analyze(spec)
        per_mapping = min(per_mapping, (time.perf_counter() - start) / len(stream))
    print(
        f"3-level GEMM: 1K a side {times['1K'] * 1e6:.0f} µs, 1M a side {times['1M'] * 1e6:.0f} µs"
        f" (ratio 1M/1K {times['1M'] / times['1K']:.2f}); 4x4 array {times['4x4'] * 1e6:.0f} µs,"
        f" 256x256 array {times['256x256'] * 1e6:.0f} µs"
        f" (ratio {times['256x256'] / times['4x4']:.2f}); 1.00 = independent of the extents"
    )
    print(
        f"{len(stream)} distinct mappings: {per_mapping * 1e6:.0f} µs each, "
        f"{1 / per_mapping:.0f} evaluations per second (the same nest again, its walks "
        f"kept: {1 / times['1K']:.0f} per second)"
    )


if __name__ == "__main__":
    main()
