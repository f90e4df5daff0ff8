"""Where candidates are evaluated: in this process, in local worker processes, or on a Dask
cluster. Every executor evaluates the same candidates with the same bound and returns their
outcomes in order, so the search's result does not depend on which one runs it or on how many
workers it has; workers keep their own analyses between rounds.

Dask is optional (`pip install 'einsum-opt[cluster]'`); `cluster=tcp://host:port` names the
scheduler of a running cluster.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol

from xdsl.utils.exceptions import PassFailedException

from einsum_opt.transforms.map_search.batch_eval import OptionBatch, evaluate_batch
from einsum_opt.transforms.map_search.candidates import Outcome, Problem, Worker
from einsum_opt.transforms.map_search.genome import Genome

_WORKERS: dict[int, Worker] = {}
"""This process's worker for each problem it has seen (by the problem's hash)."""


def _worker(problem: Problem) -> Worker:
    key = hash(problem)
    found = _WORKERS.get(key)
    if found is None:
        _WORKERS.clear()
        found = _WORKERS[key] = Worker(problem)
    return found


def _prepare(problem: Problem) -> None:
    """Build this process's worker for `problem` (so that the first round does not)."""
    _worker(problem)


def evaluate_chunk(
    problem: Problem, genomes: Sequence[Genome], bound: float | None
) -> tuple[list[Outcome | None], int]:
    """Evaluate a chunk in this process (a pool or a Dask worker): the outcomes and how many
    nests were analysed for them."""
    worker = _worker(problem)
    before = worker.evaluator.nests.analysed
    outcomes = worker.evaluate(genomes, bound)
    return outcomes, worker.evaluator.nests.analysed - before


def evaluate_batch_chunk(problem: Problem, batch: OptionBatch) -> tuple[list[Outcome | None], int]:
    """Evaluate a batch's rows in this process (see `evaluate_chunk`)."""
    worker = _worker(problem)
    before = worker.evaluator.nests.analysed
    outcomes = evaluate_batch(worker, batch, alone=False)
    return outcomes, worker.evaluator.nests.analysed - before


class Executor(Protocol):
    """Evaluates chunks of candidates of one problem."""

    workers: int

    def map(
        self, genomes: Sequence[Genome], bound: float | None
    ) -> tuple[list[Outcome | None], int]:
        """The outcome of every genome, in order, and the nests analysed."""
        ...

    def map_batch(self, batch: OptionBatch) -> tuple[list[Outcome | None], int]:
        """Evaluate a batch's rows: their outcomes in row order (None for a row not costed: one
        the batch cannot cost together is skipped) and how many nests were analysed."""
        ...

    def close(self) -> None:
        """Release the workers."""
        ...


def _chunks(items: Sequence[Genome], parts: int) -> list[list[Genome]]:
    """`items` in `parts` consecutive chunks (neighbours share most nests: keeping them
    together keeps a worker's analyses useful)."""
    size = max(1, -(-len(items) // parts))
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


class InProcess:
    """Evaluates in this process."""

    workers = 1

    def __init__(self, worker: Worker):
        self.worker = worker

    def map(
        self, genomes: Sequence[Genome], bound: float | None
    ) -> tuple[list[Outcome | None], int]:
        before = self.worker.evaluator.nests.analysed
        outcomes = self.worker.evaluate(genomes, bound)
        return outcomes, self.worker.evaluator.nests.analysed - before

    def map_batch(self, batch: OptionBatch) -> tuple[list[Outcome | None], int]:
        before = self.worker.evaluator.nests.analysed
        outcomes = evaluate_batch(self.worker, batch, alone=False)
        return outcomes, self.worker.evaluator.nests.analysed - before

    def close(self) -> None:
        pass


class LocalPool:
    """Evaluates on `workers` local processes."""

    def __init__(self, problem: Problem, workers: int):
        self.problem = problem
        self.workers = workers
        # Forking is fast, but only safe while this process runs no other thread (a progress
        # bar's, say): the workers are started now, before the search shows one.
        methods = multiprocessing.get_all_start_methods()
        fork = "fork" in methods and threading.active_count() == 1
        context = multiprocessing.get_context("fork" if fork else "spawn")
        self.pool = ProcessPoolExecutor(workers, mp_context=context)
        for future in [self.pool.submit(_prepare, problem) for _ in range(workers)]:
            future.result()

    def map(
        self, genomes: Sequence[Genome], bound: float | None
    ) -> tuple[list[Outcome | None], int]:
        chunks = _chunks(genomes, self.workers * 2)
        futures = [self.pool.submit(evaluate_chunk, self.problem, c, bound) for c in chunks]
        outcomes: list[Outcome | None] = []
        analysed = 0
        for future in futures:
            got, count = future.result()
            outcomes += got
            analysed += count
        return outcomes, analysed

    def map_batch(self, batch: OptionBatch) -> tuple[list[Outcome | None], int]:
        futures = [
            self.pool.submit(evaluate_batch_chunk, self.problem, part)
            for part in batch.parts(self.workers)
        ]
        return _joined(f.result() for f in futures)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class DaskCluster:
    """Evaluates on the workers of a Dask cluster (`address`: its scheduler)."""

    def __init__(self, problem: Problem, address: str, pass_name: str):
        try:
            from distributed import Client
        except ImportError:
            raise PassFailedException(
                f"{pass_name}: cluster={address} needs Dask: pip install 'einsum-opt[cluster]'"
            ) from None
        try:
            self.client: Any = Client(address, timeout=10)
        except Exception as error:  # OSError, TimeoutError: no scheduler there
            raise PassFailedException(
                f"{pass_name}: cannot reach the Dask scheduler at {address}: {error}"
            ) from None
        self.problem = problem
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.remote = self.client.scatter(problem, broadcast=True)

    def map(
        self, genomes: Sequence[Genome], bound: float | None
    ) -> tuple[list[Outcome | None], int]:
        chunks = _chunks(genomes, self.workers * 2)
        futures = [
            self.client.submit(evaluate_chunk, self.remote, c, bound, pure=False) for c in chunks
        ]
        outcomes: list[Outcome | None] = []
        analysed = 0
        for got, count in self.client.gather(futures):
            outcomes += got
            analysed += count
        return outcomes, analysed

    def map_batch(self, batch: OptionBatch) -> tuple[list[Outcome | None], int]:
        futures = [
            self.client.submit(evaluate_batch_chunk, self.remote, part, pure=False)
            for part in batch.parts(self.workers)
        ]
        return _joined(self.client.gather(futures))

    def close(self) -> None:
        self.client.close()


def _joined(
    results: Iterable[tuple[list[Outcome | None], int]],
) -> tuple[list[Outcome | None], int]:
    """Chunks' outcomes in order, and the nests they analysed."""
    outcomes: list[Outcome | None] = []
    analysed = 0
    for got, count in results:
        outcomes += got
        analysed += count
    return outcomes, analysed
