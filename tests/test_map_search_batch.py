"""map-search's batch evaluation against its one-by-one evaluation: every row of a batch of
re-tilings (`batch_eval.retiling_batch`) must get exactly the outcome `Worker.one` gives its
genome (the same cost to the last bit, the same repaired genome), on the example cascades and
the held-out ones, on several architectures, on genomes the search builds and on random ones."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.hardware import load_architecture
from einsum_opt.transforms.map_search.batch_eval import OptionBatch, evaluate_batch, retiling_batch
from einsum_opt.transforms.map_search.candidates import Outcome, Problem, Worker, module_text
from einsum_opt.transforms.map_search.constraints import Constraints
from einsum_opt.transforms.map_search.genome import Genome

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HELD_OUT = ROOT / "tests" / "map_search"

CASES = [
    (
        EXAMPLES / "attention/mha.einsum",
        "pass-fusion{rank=M tile=256}",
        {"B": 4, "H": 2},
        "fusemax",
    ),
    (
        EXAMPLES / "attention/mha.einsum",
        "pass-fusion{rank=M tile=256}",
        {"B": 64, "H": 12, "M": 2**20, "P": 2**20},
        "fusemax",
    ),
    (EXAMPLES / "attention/3pass.einsum", "", {}, "flat"),
    (EXAMPLES / "attention/2pass.einsum", "", {"M": 512, "P": 256}, "fusemax"),
    (EXAMPLES / "layernorm.einsum", "pass-fusion", {}, "fusemax"),
    (EXAMPLES / "matmul_chain.einsum", "", {}, "edge"),
    (HELD_OUT / "masked.einsum", "pass-fusion{rank=M tile=64}", {}, "fusemax"),
    (HELD_OUT / "gqa.einsum", "pass-fusion", {}, "fusemax"),
    (HELD_OUT / "rmsnorm.einsum", "pass-fusion", {}, "flat"),
    (HELD_OUT / "sigmoid.einsum", "", {}, "fusemax"),
]


def _worker(path: Path, pipeline: str, sizes: dict[str, int], arch: str) -> Worker:
    return Worker(worker_problem(path, pipeline, sizes, arch))


def _bases(worker: Worker) -> list[Genome]:
    """Costed, repaired genomes: the search's starts and random ones, a few steps climbed."""
    rng = random.Random(3)
    starts = [*worker.space.initial_genomes()][:3]
    starts += [worker.space.random_genome(rng) for _ in range(6)]
    out = []
    for genome in starts:
        outcome = worker.one(genome, None)
        if outcome is not None:
            out.append(outcome.genome)
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0].stem}-{c[3]}")
def test_every_row_costs_as_one_by_one(case: tuple[Path, str, dict[str, int], str]) -> None:
    worker = _worker(*case)
    compared = 0
    for genome in _bases(worker):
        batch = retiling_batch(worker.space, genome, 400, random.Random(1))
        if batch is None:
            continue
        outcomes = evaluate_batch(worker, batch)
        assert len(outcomes) == batch.rows
        for row in random.Random(2).sample(range(batch.rows), min(batch.rows, 60)):
            expected = worker.one(batch.genome(row), None)
            got = outcomes[row]
            assert (expected is None) == (got is None), row
            if expected is not None and got is not None:
                assert got.cost == expected.cost, (row, got.cost, expected.cost)
                assert got.genome == expected.genome
                compared += 1
    assert compared > 0


def test_rows_are_costed_together_on_attention() -> None:
    """On the attention cascade the batch costs its rows together (none left to one-by-one
    evaluation) and its rows are distinct candidates."""
    worker = _worker(*CASES[0])
    batches = [retiling_batch(worker.space, g, 2000, random.Random(1)) for g in _bases(worker)]
    batch = max((b for b in batches if b is not None), key=lambda b: b.rows)
    genome = batch.base
    assert batch.rows > 100
    assert len({batch.genome(r) for r in range(batch.rows)}) == batch.rows
    assert genome not in {batch.genome(r) for r in range(batch.rows)}
    before = worker.evaluator.costed
    evaluate_batch(worker, batch)
    assert worker.evaluator.costed - before == batch.rows


def test_a_batch_of_one_option_per_einsum_is_the_base() -> None:
    worker = _worker(*CASES[0])
    batch = next(
        b for g in _bases(worker) if (b := retiling_batch(worker.space, g, 10, random.Random(1)))
    )
    genome = batch.base
    only_base = OptionBatch(genome, batch.options, np.zeros((1, len(batch.options)), np.int64))
    (outcome,) = evaluate_batch(worker, only_base)
    expected = worker.one(genome, None)
    assert outcome is not None and expected is not None and outcome.cost == expected.cost


def test_workers_and_clusters_cost_a_batch_alike() -> None:
    """A batch split over two local processes or a Dask cluster's workers gives the rows the
    outcomes one process gives them, in order."""
    distributed = pytest.importorskip("distributed")
    from einsum_opt.transforms.map_search.parallel import DaskCluster, InProcess, LocalPool

    path, pipeline, sizes, arch = CASES[0]
    worker = _worker(path, pipeline, sizes, arch)
    batch = max(
        (
            b
            for g in _bases(worker)
            if (b := retiling_batch(worker.space, g, 300, random.Random(1)))
        ),
        key=lambda b: b.rows,
    )
    expected, _ = InProcess(worker).map_batch(batch)
    pool = LocalPool(worker_problem(path, pipeline, sizes, arch), 2)
    try:
        pooled, _ = pool.map_batch(batch)
    finally:
        pool.close()
    assert _costs(pooled) == _costs(expected)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        dask = DaskCluster(
            worker_problem(path, pipeline, sizes, arch), cluster.scheduler_address, "t"
        )
        try:
            clustered, _ = dask.map_batch(batch)
        finally:
            dask.close()
    assert _costs(clustered) == _costs(expected)


def worker_problem(path: Path, pipeline: str, sizes: dict[str, int], arch: str) -> Problem:
    """The search problem `_worker` builds its worker from."""
    module: ModuleOp = api.load(path)
    if sizes:
        api.set_rank_sizes(module, sizes)
    if pipeline:
        api.apply(module, pipeline)
    return Problem(
        module_text(module), 0, load_architecture(arch).to_yaml(), Constraints(), "latency"
    )


def _costs(outcomes: list[Outcome | None]) -> list[object]:
    return [None if o is None else (o.genome, o.cost) for o in outcomes]
