"""The exact cost of a candidate cascade mapping, from its nests' analyses, without lowering
or costing the cascade again.

A kernel's program is built as `lower_kernel` builds it (the same `find_loops`,
`fused_loops`, `dependencies` and `stage_shape` on the candidate's own nests: stages before a
repeat, a repeat around a pipeline, stages after), and costed as the cost model costs it
(`costmodel.model`): stage latencies, the pipeline's `(N - 1) * II + last` with its
recurrence bound and critical path (`pipeline_bounds`, closed form over a fixed graph),
repeats, every level's bandwidth cycles (`level_cycles`), block-granular storage energy
(`storage_energy`, in the nests' results), compute energy, leakage, and what each level holds
at its peak (`occupancy`). Energies are summed in the cost report's order, so the numbers
agree with `lower-to-dataflow` followed by the cost model to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from xdsl.utils.exceptions import PassFailedException

from einsum_opt.costmodel.model import energy_breakdown, level_cycles, level_of
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import REGISTERS, Architecture
from einsum_opt.lowering.buffers import Touch, nest_occupancy
from einsum_opt.lowering.data_spaces import view_source
from einsum_opt.lowering.loopnest_to_dataflow import (
    dependencies,
    find_loops,
    fused_loops,
    stage_shape,
)
from einsum_opt.transforms.map_search.light_nest import LightNest, as_nests
from einsum_opt.transforms.map_search.nest_eval import IllegalMapping, NestResult
from einsum_opt.transforms.map_search.pipeline_bounds import PipelineGraph

BEFORE, REPEAT_BEFORE, PIPELINE, REPEAT_AFTER, AFTER = range(5)
"""Where a nest's stage sits in its kernel's program."""


@dataclass(frozen=True)
class Cost:
    """What a candidate costs: latency in cycles (`cycles` rounded up, as reports give it),
    energy in pJ, the peak bytes of the global buffer, and the bytes by which levels overflow
    (0: everything fits)."""

    latency: float
    cycles: int
    energy_pj: float
    buffer_bytes: int
    overflow_bytes: int

    @property
    def feasible(self) -> bool:
        """Whether every level holds its tiles."""
        return self.overflow_bytes == 0

    @property
    def edp(self) -> float:
        """Energy (J) x delay (cycles), Timeloop's EDP."""
        return self.energy_pj * 1e-12 * self.cycles


@dataclass(frozen=True)
class KernelStructure:
    """The program shape of one kernel: each nest's place, runs, times and PE extent, the
    pipeline's graph and count, the repeat count, and the running values that live through
    the whole kernel."""

    roles: tuple[int, ...]
    runs: tuple[int, ...]
    times: tuple[int, ...]
    points: tuple[int, ...]
    """PEs used per invocation (the product of the stage's extent)."""
    pipeline: tuple[int, ...]
    """The nests that are pipeline stages, in order."""
    graph: PipelineGraph | None
    pipeline_count: int
    repeat_count: int
    has_repeat: bool
    persistent: frozenset[str]
    accounting_order: tuple[int, ...]
    """The nests in the order the cost model accounts their stages (program order)."""
    iterative: str | None
    repeat_loops: tuple[str, ...]
    pipeline_loops: tuple[str, ...]
    """The kernel's iterative loop, its repeat loops and its pipeline loops (or, without a
    running value, the loops its nests share as a pipeline)."""


def kernel_structure(
    nests: Sequence[NestOp],
    arch: Architecture,
    running: frozenset[str],
    views: Mapping[str, tuple[str, str]],
) -> KernelStructure:
    """The structure `lower_kernel` gives a kernel of these nests (see the module docstring);
    IllegalMapping when the program would not verify, or when nests sharing a repeat or
    pipeline loop give it different trips (a shared loop has one trip count)."""
    return shaped(kernel_loops(nests, running, views), nests, arch)


@dataclass(frozen=True)
class KernelLoops:
    """What a kernel's structure takes from its nests' loop names alone, and from the trips of
    its repeat and pipeline loops (`trips`): everything but each nest's stage shape and runs.
    Nests whose loops have the same names, axes and levels share it as long as those trips
    agree (`fits`)."""

    iterative: str | None
    repeat: tuple[str, ...]
    pipeline: tuple[str, ...]
    roles: tuple[int, ...]
    skips: tuple[tuple[str, ...], ...]
    """Per nest, the loops its stage shape leaves out (the repeat, and the pipeline loops for a
    pipeline stage)."""
    members: tuple[int, ...]
    graph: PipelineGraph | None
    trips: tuple[tuple[str, int], ...]
    has_repeat: bool
    persistent: frozenset[str]
    accounting_order: tuple[int, ...]

    def fits(self, nests: Sequence[NestOp]) -> bool:
        """Whether nests of the same loop names give the same structure: their repeat and
        pipeline loops have these trips (and, without a running value, they share the same
        loops)."""
        if not self.trips_fit(nests):
            return False
        return self.iterative is not None or fused_loops(nests) == self.pipeline

    def stage(self, k: int, nest: NestOp, arch: Architecture) -> tuple[int, int, int]:
        """(times, PEs, runs) of the stage of `nest` at position k."""
        times, extent = stage_shape(nest, arch, self.skips[k])
        runs = 1
        if self.roles[k] == PIPELINE:
            ext = nest.extents()
            runs = math.prod(ext[v] for v in self.pipeline if v in ext)
        return times, math.prod(extent), runs

    def trips_fit(self, nests: Sequence[NestOp]) -> bool:
        """Whether the repeat and pipeline loops of `nests` have these trips."""
        for var, trip in self.trips:
            for nest in nests:
                found = nest.extents().get(var)
                if found is not None and found != trip:
                    return False
        return True


def kernel_loops(
    nests: Sequence[NestOp], running: frozenset[str], views: Mapping[str, tuple[str, str]]
) -> KernelLoops:
    """The `KernelLoops` of a kernel of these nests; IllegalMapping as `kernel_structure`."""
    try:
        it, repeat, pipeline = find_loops(nests)
    except PassFailedException as error:
        raise IllegalMapping(str(error)) from None
    if it is None:
        pipeline = fused_loops(nests)
    extents = [n.extents() for n in nests]
    trips: dict[str, int] = {}
    for var in (*repeat, *pipeline):
        found = {ext[var] for ext in extents if var in ext}
        if len(found) > 1:
            raise IllegalMapping(f"the shared loop {var} has different trips {sorted(found)}")
        trips[var] = next(iter(found))
    staged = {
        n.tensor_name: n
        for n, ext in zip(nests, extents, strict=True)
        if pipeline and any(v in ext for v in pipeline) and all(v in ext for v in repeat)
    }
    roles, skips = [], []
    started_pipeline = started_any = False
    stage_index: dict[str, int] = {}
    for nest, ext in zip(nests, extents, strict=True):
        in_repeat = it is not None and all(v in ext for v in repeat)
        name = nest.tensor_name
        if name in staged:
            skips.append((*repeat, *pipeline))
            roles.append(PIPELINE)
            stage_index[name] = len(stage_index)
            started_pipeline = started_any = True
        else:
            skips.append(repeat if in_repeat else ())
            if in_repeat:
                roles.append(REPEAT_AFTER if started_pipeline else REPEAT_BEFORE)
                started_any = True
            else:
                roles.append(AFTER if started_any else BEFORE)
    members = [i for i, r in enumerate(roles) if r == PIPELINE]
    graph = None
    if members:
        after, carried = [], []
        for i in members:
            a, c = dependencies(nests[i], staged, it)
            after.append([stage_index[x] for x in a if x in stage_index])
            carried.append([stage_index[x] for x in c if x in stage_index])
        try:
            graph = PipelineGraph.build(after, carried)
        except ValueError as error:
            raise IllegalMapping(str(error)) from None
    inner = any(r in (REPEAT_BEFORE, PIPELINE, REPEAT_AFTER) for r in roles)
    names = {n.tensor_name for n in nests} | {
        n.access_name(v) for n in nests for v, _ in n.accesses() if v is not None
    }
    names |= {view_source(views, name, "")[0] for name in names}
    # As `kernel_accesses`: a pipeline of running values keeps everything it touches.
    iterative = any(n.iterative_rank() is not None for n in nests)
    return KernelLoops(
        it,
        tuple(repeat),
        tuple(pipeline),
        tuple(roles),
        tuple(skips),
        tuple(members),
        graph,
        tuple(trips.items()),
        bool(repeat) and inner,
        frozenset(names) if iterative else running & names,
        tuple(
            i
            for order in (BEFORE, REPEAT_BEFORE, PIPELINE, REPEAT_AFTER, AFTER)
            for i, r in enumerate(roles)
            if r == order
        ),
    )


def shaped(loops: KernelLoops, nests: Sequence[NestOp], arch: Architecture) -> KernelStructure:
    """The structure of a kernel of `nests` with these loops: each stage's shape and runs."""
    stages = [loops.stage(k, nest, arch) for k, nest in enumerate(nests)]
    pipeline = loops.pipeline
    trips = dict(loops.trips)
    return KernelStructure(
        loops.roles,
        tuple(runs for _, _, runs in stages),
        tuple(times for times, _, _ in stages),
        tuple(points for _, points, _ in stages),
        loops.members,
        loops.graph,
        math.prod(trips[v] for v in pipeline) if loops.members else 1,
        math.prod(trips[v] for v in loops.repeat),
        loops.has_repeat,
        loops.persistent,
        loops.accounting_order,
        loops.iterative,
        loops.repeat,
        pipeline,
    )


def _compute(results: Sequence[NestResult], structure: KernelStructure) -> Fraction:
    """The compute latency of a kernel's program: plain stages, the repeat around the
    pipeline and the stages beside it, as the cost model's blocks add them."""
    latency = [t * r.cycles for t, r in zip(structure.times, results, strict=True)]
    compute = 0
    inner = 0
    for i, role in enumerate(structure.roles):
        if role in (BEFORE, AFTER):
            compute += latency[i]
        elif role != PIPELINE:
            inner += latency[i]
    total = Fraction(inner)
    if structure.graph is not None:
        total += _pipeline_latency(structure, latency, results)
    if structure.has_repeat:
        total *= structure.repeat_count
    return total + compute


def _compute_pj(results: Sequence[NestResult], structure: KernelStructure) -> float:
    """The compute energy of a kernel, accumulated stage by stage in program order."""
    mult = structure.repeat_count if structure.has_repeat else 1
    roles = structure.roles
    total = 0.0
    for i in structure.accounting_order:
        times = 1 if roles[i] in (BEFORE, AFTER) else mult
        points = times * structure.runs[i] * structure.times[i] * structure.points[i]
        total += points * results[i].point_pj
    return total


def _pipeline_latency(
    structure: KernelStructure, latency: Sequence[int], results: Sequence[NestResult]
) -> Fraction:
    """`(N - 1) * II + last` of the kernel's pipeline."""
    graph = structure.graph
    assert graph is not None
    count = structure.pipeline_count
    stage_latency = [latency[i] for i in structure.pipeline]
    busy: dict[str, int] = {}
    runs = structure.runs
    for i in structure.pipeline:
        unit = results[i].unit
        busy[unit] = busy.get(unit, 0) + runs[i] * latency[i]
    most = max(busy.values(), default=0)
    # interval = max(most / count, R) and last = max(CP, most / count), in integers.
    bound = graph.recurrence_bound(stage_latency)
    if bound.numerator * count > most * bound.denominator:
        interval = bound
    else:
        interval = Fraction(most, count)
    path = graph.critical_path(stage_latency)
    last = Fraction(path) if path * count >= most else Fraction(most, count)
    return (count - 1) * interval + last


def _level_sums(
    results: Sequence[NestResult], labels: frozenset[str] | None
) -> dict[str, list[int]]:
    """label -> [reads, fills, updates, instances] over a kernel's accesses (only `labels`
    unless None), in order of first access."""
    sums: dict[str, list[int]] = {}
    for result in results:
        for label, reads, fills, updates, instances in result.levels:
            if labels is not None and label not in labels:
                continue
            entry = sums.get(label)
            if entry is None:
                sums[label] = [reads, fills, updates, instances]
            else:
                entry[0] += reads
                entry[1] += fills
                entry[2] += updates
                if instances > entry[3]:
                    entry[3] = instances
    return sums


def _touches(results: Sequence[NestResult]) -> dict[str, list[Sequence[Touch]]]:
    """Each level's tiles in a kernel, nest by nest in program order."""
    out: dict[str, list[Sequence[Touch]]] = {}
    for result in results:
        for label, ts in result.touches:
            out.setdefault(label, []).append(ts)
    return out


class CascadeCoster:
    """Costs candidate mappings of one cascade from their nests' results, keeping the
    structure and the peak footprints of every kernel it has seen."""

    def __init__(
        self, arch: Architecture, running: frozenset[str], views: Mapping[str, str]
    ) -> None:
        self.arch = arch
        self.running = running
        self.views = {view: (source, arch.root) for view, source in views.items()}
        self.structures: dict[tuple[object, ...], KernelStructure] = {}
        self.loops: dict[tuple[object, ...], KernelLoops] = {}
        self.peak_memo: dict[tuple[int, ...], dict[str, int]] = {}
        self.cycle_memo: dict[tuple[object, ...], float] = {}
        buffer = arch.buffer_level()
        self.buffer_label = buffer if buffer != arch.root else None
        self.limited = frozenset(_labels_with_bandwidth(arch))
        self.leaking = frozenset(_labels_leaking(arch))
        self.needed = self.limited | self.leaking
        self.capacity = _label_capacities(arch)

    def structure(
        self,
        nests: Sequence[LightNest],
        key: tuple[object, ...] | None = None,
        names: tuple[object, ...] | None = None,
    ) -> KernelStructure:
        """The structure of a kernel of these nests, kept by `key` (what it depends on: each
        nest's unit and loops; by default the nests' identities, as the evaluator keeps every
        nest it lowers). `names`: what the nests' loop names depend on (each nest's Einsum,
        unit, and its loops' ranks, axes, levels and which have one trip), to share the
        `KernelLoops` of nests that differ only in trips."""
        if key is None:
            key = tuple(id(n) for n in nests)
        found = self.structures.get(key)
        if found is None:
            if len(self.structures) > STRUCTURE_CACHE:
                self.structures.clear()
            lowered = as_nests(nests)
            loops = self.loops.get(names) if names is not None else None
            if loops is None or not loops.fits(lowered):
                loops = kernel_loops(lowered, self.running, self.views)
                if names is not None:
                    if len(self.loops) > STRUCTURE_CACHE:
                        self.loops.clear()
                    self.loops[names] = loops
            found = shaped(loops, lowered, self.arch)
            self.structures[key] = found
        return found

    def cost(
        self,
        kernels: Sequence[tuple[Sequence[NestResult], KernelStructure]],
        exact: bool = True,
    ) -> Cost:
        """The cost of a cascade made of these kernels (run one after another) as the cost
        model reports the lowered cascade. `exact=False` sums the storage energy nest by nest
        instead of in the report's order (the same value up to rounding in the last bits),
        which is faster."""
        arch = self.arch
        latency = 0.0
        compute_pj = 0.0
        storage_pj = 0.0
        by_level: dict[str, dict[str, float]] = {}
        peaks: dict[str, int] = {}
        for results, structure in kernels:
            compute = _compute(results, structure)
            compute_pj += _compute_pj(results, structure)
            sums = _level_sums(results, None if exact else self.needed)
            cycles = [
                self._level_cycles(label, c) for label, c in sums.items() if label in self.limited
            ]
            program_latency = max(float(compute), *cycles, 0.0)
            latency += program_latency
            if exact:
                for result in results:
                    for label, tensor, pj in result.energies:
                        into = by_level.setdefault(label, {})
                        into[tensor] = into.get(tensor, 0.0) + pj
            else:
                storage_pj += sum(r.storage_pj for r in results)
            for label, instances in self._leaking_instances(results, sums).items():
                leak = level_of(arch, label).leak_pj_per_cycle * program_latency * instances
                if exact:
                    into = by_level.setdefault(label, {})
                    into["leakage"] = into.get("leakage", 0.0) + leak
                else:
                    storage_pj += leak
            for label, total in self._peaks(results, structure.persistent).items():
                if total > peaks.get(label, 0):
                    peaks[label] = total
        if exact:
            energy = sum(energy_breakdown(arch, compute_pj, by_level).values())
        else:
            energy = compute_pj + storage_pj
        overflow = 0
        for label, peak in peaks.items():
            capacity = self.capacity[label]
            if capacity is not None and peak > capacity:
                overflow += peak - capacity
        if self.buffer_label is not None:
            buffer_bytes = peaks.get(self.buffer_label, 0)
        else:
            buffer_bytes = sum(peaks.values())
        return Cost(latency, math.ceil(latency), energy, buffer_bytes, overflow)

    def _leaking_instances(
        self, results: Sequence[NestResult], sums: Mapping[str, list[int]]
    ) -> dict[str, int]:
        """label -> instances charged leakage in a kernel, as the cost model charges them:
        every leaking level on the chains of the kernel's units, its utilised instances, one
        when the kernel holds nothing there (bypassed by every tensor)."""
        charged: dict[str, int] = {}
        for label, entry in sums.items():
            if label in self.leaking:
                charged[label] = entry[3]
        for unit in dict.fromkeys(r.unit for r in results):
            for chained in self.arch.chain(unit):
                if chained.label in self.leaking and chained.label not in charged:
                    charged[chained.label] = 1
        return charged

    def _level_cycles(self, label: str, sums: list[int]) -> float:
        """`level_cycles` of one level's traffic (kept: the same sums recur)."""
        key = (label, *sums)
        found = self.cycle_memo.get(key)
        if found is None:
            if len(self.cycle_memo) > STRUCTURE_CACHE:
                self.cycle_memo.clear()
            level = level_of(self.arch, label)
            found = level_cycles(level, (sums[0], sums[1], sums[2]), sums[3], self.arch)
            self.cycle_memo[key] = found
        return found

    def _peaks(self, results: Sequence[NestResult], persistent: frozenset[str]) -> dict[str, int]:
        """Label -> the bytes one instance holds at its peak, for the levels with a capacity
        that hold anything (kept per kernel: the nests' results in order)."""
        key = tuple(id(r) for r in results)
        found = self.peak_memo.get(key)
        if found is not None:
            return found
        out: dict[str, int] = {}
        word = self.arch.word_bytes
        for label, touches in _touches(results).items():
            if self.capacity.get(label) is None:
                continue
            holds = nest_occupancy(touches, persistent)
            if any(holds.values()):
                out[label] = sum(v * word for v in holds.values())
        if len(self.peak_memo) > STRUCTURE_CACHE:
            self.peak_memo.clear()
        self.peak_memo[key] = out
        return out


STRUCTURE_CACHE = 100_000
"""How many kernels' structures and peaks are remembered before starting over."""


def _labels_with_bandwidth(arch: Architecture) -> list[str]:
    """The report labels of the levels that have any bandwidth (the others take 0 cycles)."""
    out = []
    for label in _labels(arch):
        level = level_of(arch, label)
        if any(
            x is not None
            for x in (
                level.read_bandwidth,
                level.write_bandwidth,
                level.shared_bandwidth,
                level.bandwidth_bytes_per_s,
            )
        ):
            out.append(label)
    return out


def _labels_leaking(arch: Architecture) -> list[str]:
    return [label for label in _labels(arch) if level_of(arch, label).leak_pj_per_cycle]


def _label_capacities(arch: Architecture) -> dict[str, int | None]:
    return {
        label: level_of(arch, label).capacity_in_bytes(arch.word_bytes) for label in _labels(arch)
    }


def _labels(arch: Architecture) -> list[str]:
    """Every level's report label (`GLB`, `pe2d.PE` for a unit's registers)."""
    labels = list(arch.storage)
    for name, unit in arch.units.items():
        if unit.registers is not None:
            labels.append(f"{name}.{REGISTERS}")
    return labels
