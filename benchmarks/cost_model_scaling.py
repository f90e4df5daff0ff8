"""Does the cost model's running time grow with sequence length? It must not (costs are
analytic: repetition is a count). Times compiling multi-head attention through the whole
pipeline and costing it at 1K and at 1M tokens, and prints the ratio of the two (measured in one
run, best of several repetitions).

Run: `.venv/bin/python benchmarks/cost_model_scaling.py`
"""

from __future__ import annotations

import time
from pathlib import Path

from einsum_opt import api

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "attention" / "mha.einsum"
PIPELINE = "pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest,lower-to-dataflow"


def compile_and_cost(tokens: int) -> float:
    """Seconds to compile and cost BERT-shaped attention (batch 64, 12 heads) at `tokens`."""
    start = time.perf_counter()
    module = api.load(EXAMPLE)
    api.set_rank_sizes(module, {"B": 64, "H": 12, "M": tokens, "P": tokens})
    api.apply(module, PIPELINE)
    api.cost(module, "fusemax")
    return time.perf_counter() - start


def best_of(tokens: int, repeats: int = 5) -> float:
    """The fastest of several runs (the least disturbed by the machine)."""
    return min(compile_and_cost(tokens) for _ in range(repeats))


def main() -> None:
    """Print the times at 1K and 1M tokens and their ratio."""
    compile_and_cost(1024)  # warm-up: imports and caches
    short, long = best_of(1024), best_of(1 << 20)
    print(
        f"1K tokens: {short * 1e3:.1f} ms   1M tokens: {long * 1e3:.1f} ms   "
        f"ratio 1M/1K: {long / short:.2f} (1.00 = independent of sequence length)"
    )


if __name__ == "__main__":
    main()
