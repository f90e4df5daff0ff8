"""Many candidates costed at once: an `OptionBatch` is a genome and, for some of its Einsums, a
few other own mappings of the same loop structure (the same pieces at the same levels and
axes, other trips: `own_loops.retilings`); each row picks one option per Einsum. The options'
nests are analysed once each, and the rows are then costed together with numpy
(`batch_rows`, `batch_cost`): every row gets exactly the cost `Worker.one` gives its genome.

What a row decides from its numbers (which tiles stay resident between nests, whether its
homes stay legal, whether its kernels keep their loops) is decided for every row at once; a
row whose decisions differ from what the batch can cost together (an illegal home to repair,
a kernel whose shared loops change, numbers beyond int64) is costed by `Worker.one`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from einsum_opt.lowering.accesses import left_resident
from einsum_opt.transforms.map_search.batch_cost import KernelRows, kernel_rows, result_shape
from einsum_opt.transforms.map_search.batch_rows import (
    FusedLoops,
    NestOptions,
    distinct_rows,
    residency,
)
from einsum_opt.transforms.map_search.candidates import Outcome, Worker
from einsum_opt.transforms.map_search.compose import Cost, KernelLoops, kernel_loops
from einsum_opt.transforms.map_search.genome import Genome, OwnPlan
from einsum_opt.transforms.map_search.light_nest import LightNest, as_nest, as_nests
from einsum_opt.transforms.map_search.nest_eval import IllegalMapping, NestResult
from einsum_opt.transforms.map_search.own_loops import retilings, table_of
from einsum_opt.transforms.map_search.plan import EinsumMap
from einsum_opt.transforms.map_search.space import Space

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class OptionBatch:
    """Candidates around `base` (a costed, repaired genome): `options[j]` is an Einsum index
    and the own mappings it may take (the first is the base's), `choice[r, j]` row r's pick."""

    base: Genome
    options: tuple[tuple[int, tuple[OwnPlan, ...]], ...]
    choice: Ints

    @property
    def rows(self) -> int:
        """How many candidates the batch holds."""
        return int(self.choice.shape[0])

    def parts(self, count: int) -> list[OptionBatch]:
        """The batch cut into at most `count` batches of consecutive rows (none empty)."""
        bounds = np.linspace(0, self.rows, count + 1).astype(int)
        return [
            OptionBatch(self.base, self.options, self.choice[a:b])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]

    def genome(self, row: int) -> Genome:
        """Row `row`'s genome."""
        return self._genome(self.choice[row].tolist())

    def genomes(self) -> list[Genome]:
        """Every row's genome, in order."""
        return [self._genome(picks) for picks in self.choice.tolist()]

    def _genome(self, picks: Sequence[int]) -> Genome:
        own = list(self.base.own)
        for (index, plans), pick in zip(self.options, picks, strict=True):
            own[index] = plans[pick]
        return Genome(self.base.kernels, tuple(own), self.base.homes)


def retiling_batch(
    space: Space, genome: Genome, limit: int, rng: random.Random
) -> OptionBatch | None:
    """The candidates that re-tile any of `genome`'s Einsums (`own_loops.retilings`, as the
    constraints allow), every combination of them when there are at most `limit`, else
    `limit` combinations drawn with `rng`; `genome` itself is left out. None when no Einsum
    can be re-tiled."""
    options: list[tuple[int, tuple[OwnPlan, ...]]] = []
    for kernel in genome.kernels:
        for index in kernel.members:
            own = genome.own[index]
            assert own is not None
            ctx = space.context(kernel, index, own.unit)
            tables = [
                t
                for t in retilings(ctx, table_of(ctx, own.loops))
                if space.constraints.allows(ctx, t)
            ]
            if tables:
                plans = [OwnPlan(own.unit, t.loops(ctx.chain), own.keeps) for t in tables]
                options.append((index, (own, *plans)))
    if not options:
        return None
    sizes = [len(plans) for _, plans in options]
    total = math.prod(sizes)
    picks = range(1, total) if total - 1 <= limit else sorted(rng.sample(range(1, total), limit))
    # Row number -> one option per Einsum, the last Einsum's fastest (mixed radix).
    numbers = np.array(picks, dtype=object if total >= 2**62 else np.int64)
    choice = np.zeros((len(picks), len(sizes)), dtype=np.int64)
    for j in range(len(sizes) - 1, -1, -1):
        choice[:, j] = numbers % sizes[j]
        numbers = numbers // sizes[j]
    return OptionBatch(genome, tuple(options), choice)


def evaluate_batch(worker: Worker, batch: OptionBatch, alone: bool = True) -> list[Outcome | None]:
    """Each row's outcome, as `worker.one(batch.genome(row), None)` gives it. `alone=False`:
    the rows the batch cannot cost together are not costed (None) rather than costed one by
    one (a search skips them instead of spending a candidate's full time on each)."""
    return _BatchCoster(worker, batch, alone).run()


class _BatchCoster:
    """One batch's evaluation (see the module docstring)."""

    def __init__(self, worker: Worker, batch: OptionBatch, alone: bool):
        self.worker = worker
        self.one_by_one = alone
        self.batch = batch
        self.rows = batch.rows
        self.evaluator = worker.evaluator
        self.facts = worker.facts
        self.realizer = worker.space.realizer
        self.base_plan = self.realizer.realize(batch.base)
        self.column = {index: j for j, (index, _) in enumerate(batch.options)}
        # Rows the batch cannot cost together; they are costed one by one.
        self.alone = np.zeros(self.rows, dtype=np.bool_)

    def run(self) -> list[Outcome | None]:
        plans = self._option_plans()
        latency = np.zeros(self.rows, dtype=np.float64)
        compute_pj = np.zeros(self.rows, dtype=np.float64)
        storage_pj = np.zeros(self.rows, dtype=np.float64)
        peaks: dict[str, Ints] = {}
        for kernel_plan in self.batch.base.kernels:
            members = list(kernel_plan.members)
            found = self._kernel(members, plans)
            if found is None:
                return [self._alone(r) for r in range(self.rows)]
            # Kernel by kernel in the scalar's order: latency, compute, then storage terms.
            latency = latency + found.latency
            compute_pj = compute_pj + found.compute_pj
            for term in found.storage_pj:
                storage_pj = storage_pj + term
            for label, total in found.peaks.items():
                peaks[label] = np.maximum(peaks.get(label, 0), total)
            self.alone |= ~found.exact
        energy = compute_pj + storage_pj
        coster = self.evaluator.coster
        overflow = np.zeros(self.rows, dtype=np.int64)
        for label, peak in peaks.items():
            capacity = coster.capacity[label]
            if capacity is not None:
                overflow = overflow + np.maximum(peak - capacity, 0)
        if coster.buffer_label is not None:
            buffer = peaks.get(coster.buffer_label, np.zeros(self.rows, dtype=np.int64))
        else:
            buffer = sum(peaks.values(), np.zeros(self.rows, dtype=np.int64))
        out: list[Outcome | None] = []
        columns = zip(
            self.batch.genomes(),
            self.alone.tolist(),
            latency.tolist(),
            energy.tolist(),
            buffer.tolist(),
            overflow.tolist(),
            strict=True,
        )
        for r, (genome, alone, value, pj, held, over) in enumerate(columns):
            if alone:
                out.append(self._alone(r))
                continue
            out.append(Outcome(genome, Cost(value, math.ceil(value), pj, held, over)))
        self.evaluator.costed += int((~self.alone).sum())
        return out

    def _alone(self, row: int) -> Outcome | None:
        """A row the batch cannot cost together: costed one by one, or skipped."""
        return self.worker.one(self.batch.genome(row), None) if self.one_by_one else None

    # -- options ---------------------------------------------------------------------------

    def _option_plans(self) -> dict[int, list[EinsumMap]]:
        """Einsum index -> the plan of each of its options (the base's first)."""
        out: dict[int, list[EinsumMap]] = {}
        for index, owns in self.batch.options:
            out[index] = [self.base_plan[index]] + [
                self.realizer.realize(self.batch.base.with_own(index, own))[index]
                for own in owns[1:]
            ]
        return out

    def _picks(self, index: int) -> Ints:
        """Each row's option index of Einsum `index` (0 for one without options)."""
        j = self.column.get(index)
        if j is None:
            return np.zeros(self.rows, dtype=np.int64)
        return self.batch.choice[:, j].astype(np.int64)

    # -- one kernel ------------------------------------------------------------------------

    def _kernel(self, members: list[int], plans: dict[int, list[EinsumMap]]) -> KernelRows | None:
        """The kernel's cost per row (rows it cannot cost marked alone); None when the base's
        own kernel cannot be costed together at all."""
        nests_ev = self.evaluator.nests
        option_plans = [plans.get(i, [self.base_plan[i]]) for i in members]
        choice = np.stack([self._picks(i) for i in members], axis=1)
        results: list[list[NestResult | None]] = []
        lights = []
        for i, plans_here in zip(members, option_plans, strict=True):
            col: list[NestResult | None] = []
            for plan in plans_here:
                try:
                    col.append(nests_ev.result(i, plan))
                except IllegalMapping:
                    col.append(None)
            results.append(col)
            if col[0] is None:
                return None
            # An option without a result is never costed together (its rows go alone).
            base_light = nests_ev.lower(i, plans_here[0])
            lights.append(
                [
                    base_light if r is None else nests_ev.lower(i, p)
                    for r, p in zip(col, plans_here, strict=True)
                ]
            )
        for k, col in enumerate(results):
            bad = [o for o, r in enumerate(col) if r is None]
            if bad:
                self.alone |= np.isin(choice[:, k], bad)
        base_nests = [col[0] for col in lights]
        try:
            loops = kernel_loops(
                as_nests(base_nests), self.evaluator.coster.running, self.evaluator.coster.views
            )
        except IllegalMapping:
            return None
        options = [NestOptions.of(col) for col in lights]
        self._check_loops(loops, options, choice)
        times, points, runs = self._stages(loops, lights, choice)
        self._check_homes(members, plans, choice)
        tables, rids = self._resident(members, option_plans, results, options, choice)
        return self._costed(loops, tables, rids, times, points, runs)

    def _check_loops(
        self, loops: KernelLoops, options: Sequence[NestOptions], choice: Ints
    ) -> None:
        """Mark the rows whose kernel would not have the base's loops: another trip of a
        shared loop, or (without a running value) other loops shared."""
        for k, opts in enumerate(options):
            fits = np.array([loops.trips_fit([as_nest(n)]) for n in opts.nests], dtype=np.bool_)
            self.alone |= ~fits[choice[:, k]]
        if loops.iterative is None and len(options) > 1:
            # The base's nests share `loops.pipeline`, so a row shares the same loops when it
            # shares as many.
            length = FusedLoops(options, choice).length(0, len(options) - 1)
            self.alone |= length != len(loops.pipeline)

    def _stages(
        self, loops: KernelLoops, lights: Sequence[Sequence[LightNest]], choice: Ints
    ) -> tuple[Ints, Ints, Ints]:
        """Each row's stage times, PEs and runs per position (`shaped`, option by option)."""
        arch = self.evaluator.arch
        columns = []
        for k, options in enumerate(lights):
            table = [loops.stage(k, as_nest(light), arch) for light in options]
            columns.append(np.array(table, dtype=np.int64)[choice[:, k]])
        stacked = np.stack(columns, axis=1)
        return stacked[:, :, 0], stacked[:, :, 1], stacked[:, :, 2]

    def _check_homes(
        self, members: list[int], plans: dict[int, list[EinsumMap]], choice: Ints
    ) -> None:
        """Mark the rows where a home the base pins is illegal (the scalar repairs it)."""
        worker = self.worker
        base = self.batch.base
        facts = self.facts
        structure = next(s for m, s in self.evaluator.structures(self.base_plan) if m == members)
        pinned = dict(base.homes)
        wanted = set(worker.space.intermediates(base))
        for index in members:
            tensor = facts.einsums[index].name
            home = pinned.get(tensor)
            if tensor not in wanted or home is None or home == worker.space.root:
                continue
            touching = [i for i in members if tensor in facts.einsums[i].tensors and i in plans]
            if not touching:
                continue
            keys = np.stack([self._picks(i) for i in touching], axis=1)
            distinct, inverse = distinct_rows(keys)
            legal = np.zeros(len(distinct), dtype=np.bool_)
            for d, combo in enumerate(distinct.tolist()):
                plan = list(self.base_plan)
                for i, pick in zip(touching, combo, strict=True):
                    plan[i] = plans[i][pick]
                homes = worker._legal_homes(base, tuple(plan), members, structure, tensor)
                legal[d] = home in homes
            self.alone |= ~legal[inverse]

    def _resident(
        self,
        members: list[int],
        option_plans: Sequence[Sequence[EinsumMap]],
        results: Sequence[Sequence[NestResult | None]],
        options: Sequence[NestOptions],
        choice: Ints,
    ) -> tuple[list[list[NestResult]], list[Ints]]:
        """Per position, the distinct results rows take (what earlier nests leave resident
        applied) and each row's index into them."""
        nests_ev = self.evaluator.nests
        usable = [[r if r is not None else col[0] for r in col] for col in results]
        tensors = [[r.resident for r in col] for col in usable]  # type: ignore[union-attr]
        names = [[lv.name for lv in col[0].placed.spec.levels] for col in usable]  # type: ignore[union-attr]
        found = residency(tensors, options, choice, names)
        tables: list[list[NestResult]] = []
        rids: list[Ints] = []
        for k, index in enumerate(members):
            per_tensor = found.found[k]
            if not per_tensor:
                tables.append(list(usable[k]))  # type: ignore[arg-type]
                rids.append(choice[:, k])
                continue
            keys = np.stack([choice[:, k], *per_tensor], axis=1)
            distinct, inverse = distinct_rows(keys)
            table: list[NestResult] = []
            for combo in distinct.tolist():
                option, picks = combo[0], combo[1:]
                result = usable[k][option]
                assert result is not None and result.placed is not None
                chosen = [
                    (tensor, level)
                    for tensor, level in zip(result.resident, picks, strict=True)
                    if level >= 0
                ]
                if not chosen:
                    table.append(result)
                    continue
                adjusted = left_resident(result.placed, chosen)
                try:
                    table.append(
                        nests_ev.resident_result(index, option_plans[k][option], result, adjusted)
                    )
                except IllegalMapping:
                    table.append(result)
                    self.alone |= inverse.reshape(-1) == len(table) - 1
            tables.append(table)
            rids.append(inverse.astype(np.int64))
        return tables, rids

    def _costed(
        self,
        loops: KernelLoops,
        tables: Sequence[Sequence[NestResult]],
        rids: Sequence[Ints],
        times: Ints,
        points: Ints,
        runs: Ints,
    ) -> KernelRows:
        """The kernel's cost per row, rows grouped by the shapes of their results."""
        shape_ids = []
        for table, rid in zip(tables, rids, strict=True):
            seen: dict[object, int] = {}
            ids = np.array([seen.setdefault(result_shape(r), len(seen)) for r in table])
            shape_ids.append(ids[rid])
        groups, inverse = distinct_rows(np.stack(shape_ids, axis=1))
        out: KernelRows | None = None
        for g in range(len(groups)):
            rows = np.flatnonzero(inverse == g)
            part = kernel_rows(
                self.evaluator.coster,
                loops,
                [(table, rid[rows]) for table, rid in zip(tables, rids, strict=True)],
                times[rows],
                points[rows],
                runs[rows],
            )
            out = _placed(out, part, rows, self.rows)
        assert out is not None
        return out


def _placed(out: KernelRows | None, part: KernelRows, rows: Ints, total: int) -> KernelRows:
    """`part` (the rows `rows` of a kernel) written into `out` (all rows)."""
    if out is None:
        zeros = np.zeros(total, dtype=np.float64)
        out = KernelRows(
            zeros.copy(),
            zeros.copy(),
            [zeros.copy() for _ in part.storage_pj],
            {},
            np.ones(total, dtype=np.bool_),
        )
    if len(out.storage_pj) != len(part.storage_pj):
        # Groups with other leaking levels: rows of this group are costed one by one.
        out.exact[rows] = False
        return out
    out.latency[rows] = part.latency
    out.compute_pj[rows] = part.compute_pj
    for into, term in zip(out.storage_pj, part.storage_pj, strict=True):
        into[rows] = term
    for label, peak in part.peaks.items():
        into_peak = out.peaks.setdefault(label, np.zeros(total, dtype=np.int64))
        into_peak[rows] = peak
    out.exact[rows] = part.exact
    return out
