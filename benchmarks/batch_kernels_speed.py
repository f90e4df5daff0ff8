"""How much faster are the batch kernels than a loop over their scalar twins? For N = 1000
candidates of one kernel of the 1-pass attention cascade (examples/attention/1pass.einsum:
QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV, one nest each, the running values
RM, RD and RNV carried from one iteration to the next), differing only in their tile extents
(P, M0, E and F tiles, powers of two), it times each batch kernel on the N rows against the
scalar function called row by row, checks they agree, and prints rows per second and the
ratio, measured in one run (best of several repetitions):

- `occupancy_totals` against `sum(nest_occupancy(...).values())` (the cascade's touches of
  one level, words per tile);
- `PipelineGraph.critical_paths` and `recurrence_bounds` against `critical_path` and
  `recurrence_bound` (per-stage latencies of the nests);
- `storage_energies` against `storage_energy` (FuseMax's GLB, 4096-bit blocks, and its PE
  registers; counts that do not always divide the instances);
- `level_cycles_batch` against `level_cycles` (FuseMax's DRAM, its byte bandwidth).

Run: `.venv/bin/python benchmarks/batch_kernels_speed.py`
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import numpy as np

from einsum_opt.costmodel.batch_levels import level_cycles_batch, storage_energies
from einsum_opt.costmodel.model import level_cycles, storage_energy
from einsum_opt.hardware import load_architecture
from einsum_opt.lowering.buffers import Touch, nest_occupancy
from einsum_opt.lowering.buffers_batch import occupancy_totals
from einsum_opt.transforms.map_search.pipeline_bounds import PipelineGraph

ROWS = 1000

# (output, its ranks, accumulates, [(operand, its ranks)]) per Einsum of the 1-pass cascade.
CASCADE: list[tuple[str, str, bool, list[tuple[str, str]]]] = [
    ("QK", "MP", True, [("Q", "EP"), ("BK", "EM")]),
    ("LM", "P", True, [("QK", "MP")]),
    ("RM", "P", True, [("RM", "P"), ("LM", "P")]),
    ("SLN", "MP", False, [("QK", "MP"), ("RM", "P")]),
    ("PRM", "P", False, [("RM", "P")]),
    ("SPD", "P", False, [("PRM", "P"), ("RD", "P")]),
    ("SLD", "P", True, [("SLN", "MP")]),
    ("RD", "P", True, [("SPD", "P"), ("SLD", "P")]),
    ("SPNV", "FP", False, [("PRM", "P"), ("RNV", "FP")]),
    ("SLNV", "FP", True, [("SLN", "MP"), ("BV", "FM")]),
    ("RNV", "FP", True, [("SPNV", "FP"), ("SLNV", "FP")]),
    ("AV", "FP", False, [("RNV", "FP"), ("RD", "P")]),
]
RUNNING = frozenset({"RM", "RD", "RNV"})
STAGES = [output for output, _, _, _ in CASCADE]


def touch_structure() -> tuple[list[list[Touch]], list[str]]:
    """The cascade's touches of one level, nest by nest (words 0), and each touch's ranks."""
    groups, ranks = [], []
    for output, out_ranks, accumulates, operands in CASCADE:
        group = [Touch(0, name, False, 0) for name, _ in operands]
        group.append(Touch(0, output, True, 0, accumulates))
        groups.append(group)
        ranks += [r for _, r in operands] + [out_ranks]
    return groups, ranks


def pipeline() -> PipelineGraph:
    """The cascade's nests as one pipeline: after edges from producers in the same iteration,
    carried edges from the running values' producers of the previous one."""
    index = {name: i for i, name in enumerate(STAGES)}
    after = [
        sorted({index[n] for n, _ in ops if n in index and index[n] < i})
        for i, (_, _, _, ops) in enumerate(CASCADE)
    ]
    carried = [
        sorted({index[n] for n, _ in ops if n in RUNNING and index[n] >= i})
        for i, (_, _, _, ops) in enumerate(CASCADE)
    ]
    return PipelineGraph.build(after, carried)


def tiles(rng: random.Random) -> dict[str, int]:
    """One candidate's tile extents."""
    return {rank: 2 ** rng.randrange(0, 9) for rank in "PMEF"}


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """The fastest of `repeats` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def compare(name: str, batch: Callable[[], object], scalar: Callable[[], object]) -> None:
    """Times both (after checking they agree) and prints rows/s and the ratio."""
    b, s = best_of(7, batch), best_of(3, scalar)
    print(f"{name:24s} batch {ROWS / b:>12,.0f} rows/s   scalar {ROWS / s:>10,.0f} rows/s   "
          f"x{s / b:,.1f}")


def main() -> None:
    rng = random.Random(13)
    candidates = [tiles(rng) for _ in range(ROWS)]

    groups, ranks = touch_structure()
    words = np.array([[int(np.prod([c[r] for r in rs])) for rs in ranks] for c in candidates])
    filled = [
        [
            [Touch(0, t.tensor, t.writes, w, t.accumulates) for t, w in zip(g, ws, strict=True)]
            for g, ws in zip(groups, _split(row, groups), strict=True)
        ]
        for row in words.tolist()
    ]
    expected = [sum(nest_occupancy(f, RUNNING).values()) for f in filled]
    assert occupancy_totals(groups, words, RUNNING).tolist() == expected
    compare(
        "occupancy_totals",
        lambda: occupancy_totals(groups, words, RUNNING),
        lambda: [sum(nest_occupancy(f, RUNNING).values()) for f in filled],
    )

    graph = pipeline()
    out_ranks = [r for _, r, _, _ in CASCADE]
    latency = np.array([[int(np.prod([c[r] for r in rs])) for rs in out_ranks] for c in candidates])
    rows = latency.tolist()
    assert graph.critical_paths(latency).tolist() == [graph.critical_path(r) for r in rows]
    numerators, denominators = graph.recurrence_bounds(latency)
    bounds = [graph.recurrence_bound(r) for r in rows]
    assert numerators.tolist() == [b.numerator for b in bounds]
    assert denominators.tolist() == [b.denominator for b in bounds]
    compare(
        "critical_paths",
        lambda: graph.critical_paths(latency),
        lambda: [graph.critical_path(r) for r in rows],
    )
    compare(
        "recurrence_bounds",
        lambda: graph.recurrence_bounds(latency),
        lambda: [graph.recurrence_bound(r) for r in rows],
    )

    arch = load_architecture("fusemax")
    reads = np.array([rng.randrange(0, 10**9) for _ in range(ROWS)])
    fills = np.array([rng.randrange(0, 10**7) for _ in range(ROWS)])
    updates = np.array([rng.choice([0, rng.randrange(0, 10**7)]) for _ in range(ROWS)])
    instances = np.array([rng.choice([1, 16, 256, 3 * 256]) for _ in range(ROWS)])
    counts = list(zip(reads.tolist(), fills.tolist(), updates.tolist(), strict=True))
    per_row = instances.tolist()
    for label in ("GLB", "pe2d.PE"):
        want = [storage_energy(arch, label, c, i) for c, i in zip(counts, per_row, strict=True)]
        got = storage_energies(arch, label, reads, fills, updates, instances)
        assert got.tolist() == want
        compare(
            f"storage_energies {label}",
            lambda label=label: storage_energies(arch, label, reads, fills, updates, instances),
            lambda label=label: [
                storage_energy(arch, label, c, i) for c, i in zip(counts, per_row, strict=True)
            ],
        )

    dram = arch.storage["DRAM"]
    want = [level_cycles(dram, c, i, arch) for c, i in zip(counts, per_row, strict=True)]
    assert level_cycles_batch(dram, reads, fills, updates, instances, arch).tolist() == want
    compare(
        "level_cycles_batch",
        lambda: level_cycles_batch(dram, reads, fills, updates, instances, arch),
        lambda: [level_cycles(dram, c, i, arch) for c, i in zip(counts, per_row, strict=True)],
    )


def _split(row: list[int], groups: list[list[Touch]]) -> list[list[int]]:
    """A row of words, one list per group."""
    out, start = [], 0
    for g in groups:
        out.append(row[start : start + len(g)])
        start += len(g)
    return out


if __name__ == "__main__":
    main()
