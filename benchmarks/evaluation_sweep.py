"""How the evaluation sweep's time splits: per configuration, the time to compile and cost one
point, relative to the fastest configuration, and the 1M/1K ratio of the whole sweep over one
model (1.00: independent of sequence length, as an analytic model should be). All measured in
one run, best of several repetitions.

Run: `.venv/bin/python benchmarks/evaluation_sweep.py`
"""

from __future__ import annotations

import time

from einsum_opt.evaluation import sweep
from einsum_opt.evaluation.workloads import CONFIGS, MODELS


def seconds(configs: tuple[str, ...], tokens: int, repeats: int = 3) -> float:
    """The fastest of `repeats` runs of BERT's attention and end-to-end points at `tokens`."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        sweep.run_sweep([MODELS["BERT"]], [tokens], configs)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Print each configuration's share and the 1M/1K ratio."""
    seconds(CONFIGS, 1024, repeats=1)  # warm-up: imports and caches
    per_config = {c: seconds((c,), 1024) for c in CONFIGS}
    fastest = min(per_config.values())
    for config, t in per_config.items():
        print(f"{config:<14}{t / fastest:6.2f} x the fastest configuration")
    short, long = seconds(CONFIGS, 1024), seconds(CONFIGS, 1 << 20)
    print(f"all configurations, ratio 1M/1K: {long / short:.2f} (1.00 = independent of length)")


if __name__ == "__main__":
    main()
