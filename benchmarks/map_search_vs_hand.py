"""map-search against the hand mappings, side by side in one run (what the README's table and
docs/map-search.md state): the evaluation's attention cascade at the paper's sizes,

- FuseMax: the 1-pass cascade (`pass-fusion{rank=M tile=256}`) mapped by `map-fusemax` and by
  `map-search{arch=fusemax objective=latency budget=20}` (workers: one per core), BERT and XLM
  at 1K, 16K and 1M tokens: latency, and the 2D array's utilisation;
- FLAT: the 3-pass cascade mapped by `map-flat` and by `map-search{arch=flat ...}` at BERT 4K
  and 64K: latency, and whether the global buffer holds the mapping.

Run: `.venv/bin/python benchmarks/map_search_vs_hand.py [--budget SECONDS] [--quick]`
(`--quick`: BERT 1K and FLAT 4K only).
"""

from __future__ import annotations

import sys
import time

from einsum_opt.costmodel.report import CostReport
from einsum_opt.evaluation.sweep import FUSE, attention_sizes, compile_and_cost
from einsum_opt.evaluation.workloads import MODELS, format_length


def _cost(sizes: dict[str, int], pipeline: str, arch: str) -> tuple[CostReport, float]:
    start = time.perf_counter()
    report = compile_and_cost("attention.einsum", sizes, pipeline, arch)[1]
    return report, time.perf_counter() - start


def _row(what: str, searched: CostReport, hand: CostReport, seconds: float) -> str:
    change = (searched.cycles - hand.cycles) / hand.cycles * 100
    util = searched.utilization.get("pe2d", 0.0), hand.utilization.get("pe2d", 0.0)
    fits = "fits" if not searched.buffer_overflow else "overflows"
    hand_fits = "fits" if not hand.buffer_overflow else "overflows"
    return (
        f"{what:<22} {searched.cycles:>20,} ({fits}, 2D {util[0]:.1%}, {seconds:.1f} s)"
        f"  {hand.cycles:>20,} ({hand_fits}, 2D {util[1]:.1%})  {change:+.2f}%"
    )


def main(argv: list[str]) -> None:
    budget = float(argv[argv.index("--budget") + 1]) if "--budget" in argv else 20.0
    quick = "--quick" in argv
    search = f"map-search{{{{arch={{arch}} objective=latency budget={budget:g}}}}}"
    lower = "lower-to-loopnest,lower-to-dataflow{{arch={arch}}}"
    print(f"{'':<22} {'map-search (cycles)':>20}{'':<30}  {'hand mapping':>20}")
    fusemax_points = [("BERT", 1024)] if quick else [
        (m, n) for m in ("BERT", "XLM") for n in (1024, 16384, 1 << 20)
    ]
    for model, tokens in fusemax_points:
        sizes = attention_sizes(MODELS[model], tokens)
        fuse = FUSE.format(key_tile=256)
        hand, _ = _cost(sizes, f"{fuse},map-fusemax{{arch=fusemax}},{lower.format(arch='fusemax')}",
                        "fusemax")
        pipeline = f"{fuse},{search.format(arch='fusemax')},{lower.format(arch='fusemax')}"
        searched, seconds = _cost(sizes, pipeline, "fusemax")
        print(_row(f"FuseMax {model} {format_length(tokens)}", searched, hand, seconds), flush=True)
    for tokens in (4096,) if quick else (4096, 65536):
        sizes = attention_sizes(MODELS["BERT"], tokens)
        hand, _ = _cost(sizes, f"map-flat{{arch=flat}},{lower.format(arch='flat')}", "flat")
        pipeline = f"{search.format(arch='flat')},{lower.format(arch='flat')}"
        searched, seconds = _cost(sizes, pipeline, "flat")
        print(_row(f"FLAT BERT {format_length(tokens)}", searched, hand, seconds), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
