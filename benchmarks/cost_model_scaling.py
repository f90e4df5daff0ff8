"""Does the cost model's running time grow with sequence length? It must not (costs are
analytic: repetition is a count). Times compiling multi-head attention through the whole
pipeline and costing it at 1K and at 1M tokens, and costing the lowered program alone (one
evaluation of the cost model, in process), and prints the times and the 1M/1K ratios
(measured in one run, best of several repetitions).

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


def evaluation_only(tokens: int, repeats: int = 200) -> float:
    """Seconds of one cost-model evaluation of the lowered program at `tokens` (the fastest
    of `repeats`)."""
    module = api.load(EXAMPLE)
    api.set_rank_sizes(module, {"B": 64, "H": 12, "M": tokens, "P": tokens})
    api.apply(module, PIPELINE)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        api.cost(module)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print the times at 1K and 1M tokens and their ratios."""
    compile_and_cost(1024)  # warm-up: imports and caches
    short, long = best_of(1024), best_of(1 << 20)
    print(
        f"compile and cost: 1K tokens {short * 1e3:.1f} ms, 1M tokens {long * 1e3:.1f} ms, "
        f"ratio 1M/1K {long / short:.2f} (1.00 = independent of sequence length)"
    )
    short, long = evaluation_only(1024), evaluation_only(1 << 20)
    print(
        f"one evaluation of the lowered program: 1K tokens {short * 1e3:.3f} ms, "
        f"1M tokens {long * 1e3:.3f} ms, ratio 1M/1K {long / short:.2f}"
    )


if __name__ == "__main__":
    main()
