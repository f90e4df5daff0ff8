"""How many candidate mappings does map-search cost per second on the attention cascade?
Measured in CPU seconds of one process (per core), in one run:

- during a search (the 1-pass cascade of BERT at 4K tokens on FuseMax, 20 s, one worker):
  candidates costed exactly (and how many of them were re-tilings costed together),
  candidates pruned by the compute bound, and nests analysed;
- re-tilings of the search's best costed together (`batch_eval`: every combination of its
  Einsums' re-tilings, up to 20,000), their new nests' analysis included;
- candidates whose nests were analysed before (re-combinations of the search's own plans, as
  a search's later rounds see them): kernel programs, legality and costs only;
- candidates that change one decision of a genome the search had not seen (about one new
  nest each): the per-nest analysis included.

`--long` also runs the BERT-64K search with a 60 s budget on two workers and a ten times
longer one, and prints both latencies.

Run: `.venv/bin/python benchmarks/map_search_speed.py [--long]`
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.hardware import load_architecture
from einsum_opt.transforms.map_search.batch_eval import evaluate_batch, retiling_batch
from einsum_opt.transforms.map_search.candidates import Problem, Worker, module_text
from einsum_opt.transforms.map_search.constraints import Constraints
from einsum_opt.transforms.map_search.genome import Genome
from einsum_opt.transforms.map_search.map_search_pass import MapSearchPass, map_search
from einsum_opt.transforms.map_search.moves import neighbours
from einsum_opt.transforms.map_search.parallel import InProcess
from einsum_opt.transforms.map_search.search import Search

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "attention" / "mha.einsum"


def attention(tokens: int) -> ModuleOp:
    """The 1-pass cascade of BERT-shaped attention (batch 64, 12 heads) at `tokens`."""
    module = api.load(EXAMPLE)
    api.set_rank_sizes(module, {"B": 64, "H": 12, "M": tokens, "P": tokens})
    api.apply(module, "pass-fusion{rank=M tile=256}")
    return module


def rate(count: int, seconds: float) -> str:
    """`count` per second, readable."""
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


def costed(worker: Worker, what: str, genomes: list[Genome]) -> None:
    """Cost `genomes` (one batch, as a search round does) and print the rate."""
    before = worker.evaluator.nests.analysed
    start = time.process_time()
    worker.evaluate(genomes, None)
    spent = time.process_time() - start
    new = worker.evaluator.nests.analysed - before
    print(
        f"{what}: {len(genomes):,} in {spent:.2f} s, {rate(len(genomes), spent)} per core "
        f"({new} new nests)"
    )


def main() -> None:
    """Print the rates (see the module docstring)."""
    module = attention(4096)
    arch = load_architecture("fusemax")
    problem = Problem(module_text(module), 0, arch.to_yaml(), Constraints(), "latency")
    worker = Worker(problem, cascades_in(module)[0])
    search = Search(worker.space, InProcess(worker), "latency", 20, 0, keep_points=True)
    start = time.process_time()
    result = search.run()
    spent = time.process_time() - start
    assert result is not None
    stats = result.stats
    print(
        f"search (BERT 4K, 20 s, one worker): {stats.candidates:,} candidates costed "
        f"({rate(stats.candidates, spent)} per core; {stats.batched:,} of them re-tilings costed "
        f"together), {stats.pruned:,} pruned by the compute "
        f"bound, {stats.analysed:,} nests analysed ({rate(stats.analysed, spent)})"
    )
    best = result.genome
    batch = retiling_batch(worker.space, best, 20_000, random.Random(0))
    if batch is not None:
        start = time.process_time()
        costed_together = sum(o is not None for o in evaluate_batch(worker, batch, alone=False))
        spent = time.process_time() - start
        print(
            f"re-tilings costed together: {batch.rows:,} in {spent:.2f} s, "
            f"{rate(batch.rows, spent)} per core ({costed_together:,} together)"
        )
    rng = random.Random(0)
    pools: list[list[object]] = [[] for _ in best.own]
    for _, genome in result.points:
        if genome.kernels == best.kernels:
            for i, own in enumerate(genome.own):
                if own is not None and own not in pools[i]:
                    pools[i].append(own)
    known = []
    for _ in range(5000):
        own = list(best.own)
        for i, pool in enumerate(pools):
            if pool and rng.random() < 0.15:
                own[i] = rng.choice(pool)  # type: ignore[assignment]
        known.append(Genome(best.kernels, tuple(own), best.homes))
    costed(worker, "re-combined candidates (nests analysed before)", known)
    # Neighbours of a random genome the search did not see: most change one Einsum.
    start_genome = worker.space.random_genome(random.Random(1))
    fresh = [g for g in neighbours(worker.space, start_genome) if g not in search.seen][:300]
    costed(worker, "neighbours of an unseen genome (new nests)", fresh)
    if "--long" in sys.argv:
        for budget in (60, 600):
            mapped = attention(65536)
            wall = time.monotonic()
            map_search(mapped, MapSearchPass(arch="fusemax", budget=budget, workers=2))
            wall = time.monotonic() - wall
            api.apply(mapped, "lower-to-loopnest,lower-to-dataflow")
            cycles = api.cost(mapped, "fusemax").cycles
            print(f"BERT 64K, budget {budget} s, 2 workers: {cycles:,} cycles in {wall:.1f} s")


if __name__ == "__main__":
    main()
