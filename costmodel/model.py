"""The cost model: an analytic interpreter of the dataflow dialect (see `docs/dataflow.md`).

```python
from einsum_opt.hardware import load_architecture
from einsum_opt.costmodel.model import evaluate, evaluate_module

report = evaluate(program, load_architecture("fusemax"))
report.cycles, report.utilization["pe2d"], report.levels["GLB"]["Q"]["reads"]
```

It never looks back at the einsum or loopnest IR, and never iterates over a count: repeats
multiply, pipelines are summarised by their initiation interval, so its running time depends on
the number of ops in the program only, not on sequence length.

Semantics (all latencies in clock cycles):

- a compute stage's latency per run is `times * arch.cycles(unit, ops)`, its busy cycles
  `runs * times * cycles`, its index points `runs * times * prod(extent)`: each point does
  `ops` on one PE, which gives its compute energy; a unit's utilisation counts the PEs its
  stages use (`prod(extent)` of the unit's PEs), as Timeloop's does;
- a pipeline of N iterations: `II = max(max_u busy_u / N, R)` (R: the recurrence bound, the
  largest mean per-run latency per carried edge around a cycle of `after` + `carried` edges),
  `CP` the longest chain of per-run latencies through `after`; latency
  `(N - 1) * II + max(CP, max_u busy_u / N)`;
  a serial pipeline (one iteration at a time) takes `N * CP'`, where in `CP'` an edge between
  two units also waits for the producer's unit to drain (`drain_cycles`: overlapped
  iterations hide it) and a stage that runs in R < N iterations counts R / N of its latency;
- a repeat of N: N times its body; a block (program, repeat, sequence): the sum of its children;
- accesses (`dataflow.access`): per storage level, the words read, filled and updated, summed
  over the level's utilized instances. Energy is block-granular as Timeloop's: per instance,
  `ceil(count / block)` accesses of each action at the level's per-access energy, times the
  utilized instances (`accounting="artifact"`: times one instance, as the FuseMax artifact
  charges its PE registers), plus leakage per instance and cycle;
- a program: `max(compute, every level's bandwidth cycles)`, a level's cycles being its
  per-instance traffic over its read, write and shared bandwidths; a module of several
  programs runs them one after another (latencies add);
- buffers (`dataflow.buffer`): the peak each level holds per instance, against its capacity;
  an overflow is reported with the level and the tensors it holds, never ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from xdsl.ir import Block, Operation

from einsum_opt.costmodel.level_costs import access_energy
from einsum_opt.costmodel.report import CostReport, EinsumCost, LevelAccess, Overflow
from einsum_opt.dialects.dataflow import (
    AccessOp,
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    programs_in,
)
from einsum_opt.hardware import REGISTERS, Architecture, StorageLevel, load_architecture

ACCOUNTINGS = ("physical", "artifact")
"""How storage energy is charged: every utilized instance (`physical`, the default), or one
instance per level (`artifact`: the FuseMax artifact's accounting, see
reference/fusemax-energy.md §1)."""


class CostModelError(ValueError):
    """A dataflow program the architecture cannot run (an unknown unit or level, an extent
    larger than the unit's shape)."""


@dataclass
class _EinsumAcc:
    cycles: int = 0
    unit: str = ""
    energy_pj: float = 0.0
    dram_bytes: int = 0


@dataclass
class _LevelAcc:
    reads: int = 0
    fills: int = 0
    updates: int = 0
    instances: int = 1
    tensors: dict[str, list[int]] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=dict)


@dataclass
class _Acc:
    """What evaluating one program accumulates."""

    busy: dict[str, int] = field(default_factory=dict)
    pe_busy: dict[str, int] = field(default_factory=dict)  # PE-cycles
    points: int = 0
    compute_pj: float = 0.0
    einsums: dict[str, _EinsumAcc] = field(default_factory=dict)
    levels: dict[str, _LevelAcc] = field(default_factory=dict)
    buffers: list[BufferOp] = field(default_factory=list)

    def einsum(self, name: str) -> _EinsumAcc:
        return self.einsums.setdefault(name, _EinsumAcc())


@dataclass(frozen=True)
class _ProgramCost:
    compute: int | Fraction
    level_cycles: dict[str, float]
    acc: _Acc
    leakage: dict[str, float]

    @property
    def latency(self) -> float:
        return max(float(self.compute), *self.level_cycles.values(), 0.0)


def level_of(arch: Architecture, label: str) -> StorageLevel:
    """The storage level a report label names (`GLB`, or `pe2d.PE` for a unit's registers)."""
    if label in arch.storage:
        return arch.storage[label]
    unit, _, rest = label.rpartition(".")
    if rest == REGISTERS and unit in arch.units and arch.units[unit].registers is not None:
        registers = arch.units[unit].registers
        assert registers is not None
        return registers
    known = [*arch.storage] + [f"{u}.{REGISTERS}" for u, x in arch.units.items() if x.registers]
    raise CostModelError(
        f"no storage level {label!r} in {arch.name} (the levels are {', '.join(known)})"
    )


@dataclass(frozen=True)
class _LevelFacts:
    """What costing an access at one level needs, read once from the architecture."""

    level: StorageLevel
    energies: tuple[float | None, float | None, float | None]
    block: int
    word_bytes: int


class _ArchFacts:
    """Per-architecture values the evaluator looks up for every op, computed on first use
    (an `Architecture` is immutable, so they stay valid)."""

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.levels: dict[str, _LevelFacts] = {}
        self.invocations: dict[tuple[str, tuple[tuple[str, int], ...]], tuple[int, float]] = {}
        self.shapes: set[tuple[str, tuple[int, ...]]] = set()
        self.root = arch.root

    def level(self, label: str) -> _LevelFacts:
        found = self.levels.get(label)
        if found is None:
            level = level_of(self.arch, label)
            word_bytes = self.arch.word_bytes
            found = _LevelFacts(
                level,
                (level.read_pj, level.write_pj, level.update_energy_pj),
                level.block_words(word_bytes),
                level.word_bits_of(word_bytes) // 8,
            )
            self.levels[label] = found
        return found


_FACTS: dict[int, _ArchFacts] = {}


def _facts(arch: Architecture) -> _ArchFacts:
    """The facts of `arch`, kept for the last few architectures costed (keyed by identity;
    the entry holds the architecture, so its id cannot be reused while it is cached)."""
    found = _FACTS.get(id(arch))
    if found is None or found.arch is not arch:
        if len(_FACTS) >= 16:
            _FACTS.clear()
        found = _FACTS[id(arch)] = _ArchFacts(arch)
    return found


def _mean(total: int, instances: int) -> int | Fraction:
    """`total / instances`, an int when it divides (cheaper than a Fraction)."""
    return total // instances if total % instances == 0 else Fraction(total, instances)


def storage_energy(
    arch: Architecture,
    label: str,
    counts: tuple[int, int, int],
    instances: int,
    accounting: str = "physical",
    tensor: str = "",
) -> float:
    """pJ of (reads, fills, updates) summed over `instances` utilized instances of the level
    `label`: Timeloop's block-granular energy per instance (`level_costs.access_energy`), times
    the instances (`artifact` accounting: times one). Uneven counts are spread evenly: the mean
    per instance, exact in words, in whole vectors rounded up."""
    return _storage_pj(_facts(arch).level(label), counts, instances, accounting, label, tensor)


def _storage_pj(
    facts: _LevelFacts,
    counts: tuple[int, int, int],
    instances: int,
    accounting: str,
    label: str,
    tensor: str,
) -> float:
    per_instance = (
        _mean(counts[0], instances),
        _mean(counts[1], instances),
        _mean(counts[2], instances),
    )
    level = facts.level
    _, pj = access_energy(
        per_instance,
        facts.energies,
        facts.block,
        instances,
        max(instances, level.instances),
        level.cluster_size,
        label,
        tensor,
    )
    return pj if accounting == "artifact" else pj * instances


def level_cycles(
    level: StorageLevel,
    counts: tuple[int, int, int],
    instances: int,
    arch: Architecture,
) -> float:
    """Cycles one instance of a level needs for its traffic at its bandwidths: the most,
    over its read, write, shared and byte bandwidths, of words moved / words per cycle (0 when
    it has none). A level whose need exceeds `compute` slows the program down to it, which is
    Timeloop's throttling: its slowdown is min(1, bandwidth / demand per compute cycle)."""
    reads, fills, updates = (c / instances for c in counts)
    need = 0.0
    if level.read_bandwidth is not None:
        need = max(need, reads / level.read_bandwidth)
    if level.write_bandwidth is not None:
        need = max(need, (fills + updates) / level.write_bandwidth)
    if level.shared_bandwidth is not None:
        need = max(need, (reads + fills + updates) / level.shared_bandwidth)
    if level.bandwidth_bytes_per_s is not None:
        words = (
            level.bandwidth_bytes_per_s / arch.clock_hz / (level.word_bits_of(arch.word_bytes) / 8)
        )
        need = max(need, (reads + fills + updates) / words)
    return need


class _Evaluator:
    """Interprets one program on one architecture."""

    def __init__(self, arch: Architecture, accounting: str):
        if accounting not in ACCOUNTINGS:
            raise CostModelError(
                f"unknown accounting {accounting!r} (expected {' or '.join(ACCOUNTINGS)})"
            )
        self.arch = arch
        self.accounting = accounting
        self.acc = _Acc()
        self.facts = _facts(arch)

    # -- compute ------------------------------------------------------------------------------

    def _invocation(self, op: ComputeOp) -> tuple[int, float]:
        """(cycles, pJ per PE) of one invocation of a stage, computed once per kind of stage
        (unit and operation counts)."""
        counts = op.op_counts()
        key = (op.unit_name, tuple(sorted(counts.items())))
        invocations = self.facts.invocations
        found = invocations.get(key)
        if found is None:
            found = (
                self.arch.cycles(op.unit_name, counts),
                self.arch.op_energy_pj(op.unit_name, counts),
            )
            invocations[key] = found
        return found

    def stage_latency(self, op: ComputeOp) -> int:
        """Cycles of one run of a stage (`times` invocations)."""
        return op.times_value * self._invocation(op)[0]

    def account(self, op: ComputeOp, mult: int) -> None:
        """Busy cycles and energy of a stage executed `mult` times over (enclosing repeats)."""
        unit_name = op.unit_name
        extent = op.extent_list()
        if (unit_name, tuple(extent)) not in self.facts.shapes:
            self._check_shape(op, unit_name, extent)
        pes_used = math.prod(extent)
        cycles, pj = self._invocation(op)
        runs = mult * op.runs_value * op.times_value
        busy = runs * cycles
        points = runs * pes_used
        compute_pj = points * pj
        acc = self.acc
        acc.busy[unit_name] = acc.busy.get(unit_name, 0) + busy
        acc.pe_busy[unit_name] = acc.pe_busy.get(unit_name, 0) + busy * pes_used
        acc.points += points
        acc.compute_pj += compute_pj
        entry = acc.einsum(op.einsum_name)
        entry.cycles += busy
        entry.unit = entry.unit or unit_name
        entry.energy_pj += compute_pj

    def _check_shape(self, op: ComputeOp, unit_name: str, extent: list[int]) -> None:
        """CostModelError unless the stage's unit exists and its extent fits the array."""
        arch = self.arch
        if unit_name not in arch.units:
            raise CostModelError(
                f"compute @{op.einsum_name}: no unit {unit_name!r} in {arch.name} "
                f"(the units are {', '.join(arch.units)})"
            )
        unit = arch.unit(unit_name)
        if len(extent) > len(unit.shape) or any(
            e > side for e, side in zip(extent, unit.shape, strict=False)
        ):
            raise CostModelError(
                f"compute @{op.einsum_name}: extent {extent} exceeds unit {unit_name}'s shape "
                f"{list(unit.shape)} in {arch.name}"
            )
        self.facts.shapes.add((unit_name, tuple(extent)))

    # -- structure ----------------------------------------------------------------------------

    def block(self, block: Block, mult: int) -> Fraction | int:
        """Latency of one execution of a block run sequentially; totals are scaled by `mult`."""
        latency: Fraction | int = 0
        for op in block.ops:
            latency += self.op(op, mult)
        return latency

    def op(self, op: Operation, mult: int) -> Fraction | int:
        """Latency of one op; its busy cycles, counts and energy are accumulated `mult`
        times. Compared by exact type first: the ABC checks of `isinstance` are slow."""
        if type(op) is AccessOp:
            self.access(op)
            return 0
        if type(op) is ComputeOp:
            self.account(op, mult)
            return op.runs_value * self.stage_latency(op)
        if isinstance(op, RepeatOp):
            count = op.count_value
            return count * self.block(op.body.block, mult * count)
        if isinstance(op, PipelineOp):
            return self.pipeline(op, mult)
        if isinstance(op, ComputeOp):
            self.account(op, mult)
            return op.runs_value * self.stage_latency(op)
        if isinstance(op, AccessOp):
            self.access(op)
            return 0
        if isinstance(op, BufferOp):
            self.acc.buffers.append(op)
            return 0
        raise CostModelError(f"the cost model does not know {op.name}")

    def pipeline(self, op: PipelineOp, mult: int) -> Fraction | int:
        """`(N - 1) * II + CP` of a pipeline of N iterations."""
        count = op.count_value
        stages: dict[str, ComputeOp] = {}
        for child in op.body.block.ops:
            if isinstance(child, ComputeOp):
                stages[child.einsum_name] = child
            else:
                self.op(child, mult)
        latency = {name: self.stage_latency(stage) for name, stage in stages.items()}
        busy: dict[str, int] = {}
        for name, stage in stages.items():
            self.account(stage, mult)
            busy[stage.unit_name] = busy.get(stage.unit_name, 0) + stage.runs_value * latency[name]
        if op.is_serial:
            # One tile at a time: each waits for the previous one's results to leave the arrays.
            # A stage that runs in fewer iterations (AV, once per query block) counts only
            # in its share of them.
            drains = {name: unit.drain_cycles for name, unit in self.arch.units.items()}
            share = {n: Fraction(latency[n] * s.runs_value, count) for n, s in stages.items()}
            return count * critical_path(stages.values(), share, drains)
        resource = Fraction(max(busy.values(), default=0), count)
        interval = max(resource, recurrence_bound(stages.values(), latency))
        # The last iteration ends after its critical path, and no sooner than its units can
        # do their share of the work (stages on one unit that no `after` chain links).
        last = max(critical_path(stages.values(), latency), resource)
        return (count - 1) * interval + last

    # -- storage ------------------------------------------------------------------------------

    def access(self, op: AccessOp) -> None:
        """Counts and energy (`storage_energy`) of one access op."""
        label = op.level_name
        tensor_name = op.tensor_name
        facts = self.facts.level(label)
        counts = op.counts()
        instances = op.instances_value
        pj = _storage_pj(facts, counts, instances, self.accounting, label, tensor_name)
        entry = self.acc.levels.get(label)
        if entry is None:
            entry = self.acc.levels[label] = _LevelAcc()
        entry.reads += counts[0]
        entry.fills += counts[1]
        entry.updates += counts[2]
        entry.instances = max(entry.instances, instances)
        tensor = entry.tensors.get(tensor_name)
        if tensor is None:
            tensor = entry.tensors[tensor_name] = [0, 0, 0, 0, instances]
        tensor[0] += counts[0]
        tensor[1] += counts[1]
        tensor[2] += counts[2]
        tensor[3] = max(tensor[3], op.capacity_value)
        tensor[4] = max(tensor[4], instances)
        entry.energy[tensor_name] = entry.energy.get(tensor_name, 0.0) + pj
        einsum = self.acc.einsum(op.einsum_name)
        einsum.energy_pj += pj
        if label == self.facts.root:
            einsum.dram_bytes += sum(counts) * facts.word_bytes

    def program(self, program: ProgramOp) -> _ProgramCost:
        compute = self.block(program.body.block, 1)
        cycles: dict[str, float] = {}
        for label, entry in self.acc.levels.items():
            level = level_of(self.arch, label)
            counts = (entry.reads, entry.fills, entry.updates)
            cycles[label] = level_cycles(level, counts, entry.instances, self.arch)
        latency = max(float(compute), *cycles.values(), 0.0)
        # Every level on the way to the units the program uses leaks for the whole run (one
        # instance at least, as Timeloop charges a level that holds nothing).
        leakage: dict[str, float] = {}
        for unit in self.acc.busy:
            for chained in self.arch.chain(unit):
                level = chained.level
                if not level.leak_pj_per_cycle or chained.label in leakage:
                    continue
                accessed = self.acc.levels.get(chained.label)
                used = accessed.instances if accessed is not None else 1
                charged = 1 if self.accounting == "artifact" else used
                leakage[chained.label] = level.leak_pj_per_cycle * latency * charged
        return _ProgramCost(compute, cycles, self.acc, leakage)


def critical_path(
    stages: Iterable[ComputeOp],
    latency: Mapping[str, int] | Mapping[str, Fraction],
    drains: Mapping[str, int] | None = None,
) -> int | Fraction:
    """The longest chain of per-run latencies through `after` edges (one iteration); an edge
    from a stage on one unit to a stage on another also waits for the producer's unit to drain
    (`drains`: unit -> cycles)."""
    by_name = {s.einsum_name: s for s in stages}
    finish: dict[str, int | Fraction] = {}

    def wait(dep: str, name: str) -> int:
        unit = by_name[dep].unit_name
        if drains is None or unit == by_name[name].unit_name:
            return 0
        return drains.get(unit, 0)

    def end(name: str) -> int | Fraction:
        if name not in finish:
            deps = [d for d in by_name[name].after_names() if d in by_name]
            finish[name] = latency[name] + max(
                (end(d) + wait(d, name) for d in deps), default=0
            )
        return finish[name]

    return max((end(name) for name in by_name), default=0)


def recurrence_bound(stages: Iterable[ComputeOp], latency: dict[str, int]) -> Fraction:
    """The recurrence bound R of a pipeline: over the cycles made of `after` edges and
    `carried` edges (which cross one iteration), the largest total per-run latency per carried
    edge (with one carried edge per cycle, as usual: the cycle's total latency). 0 without
    carried edges.

    Each carried edge `A -> B` (B waits for A of the previous iteration) closes the segments
    `B ->after* A'`; the bound is the maximum mean cycle (Karp) of the graph whose edges are
    those segments, weighted by their longest latency."""
    by_name = {s.einsum_name: s for s in stages}
    names = list(by_name)
    # longest[x][y]: the longest after-chain from x (first) to y (last), latencies inclusive.
    successors: dict[str, list[str]] = {n: [] for n in names}
    for name, stage in by_name.items():
        for dep in stage.after_names():
            if dep in by_name:
                successors[dep].append(name)
    longest: dict[str, dict[str, int]] = {}
    for start in names:
        best: dict[str, int] = {}

        def walk(node: str, total: int, best: dict[str, int] = best) -> None:
            if best.get(node, -1) >= total:
                return
            best[node] = total
            for nxt in successors[node]:
                walk(nxt, total + latency[nxt], best)

        walk(start, latency[start])
        longest[start] = best
    # Segment graph: edge b -> b2 (weight longest[b][a]) for every carried edge a -> b2.
    edges: list[tuple[str, str, int]] = []
    for target, stage in by_name.items():
        for source in stage.carried_names():
            if source not in by_name:
                continue
            for begin in names:
                if source in longest[begin]:
                    edges.append((begin, target, longest[begin][source]))
    if not edges:
        return Fraction(0)
    return _max_mean_cycle(names, edges)


def _max_mean_cycle(nodes: list[str], edges: list[tuple[str, str, int]]) -> Fraction:
    """Karp's maximum mean cycle (0 when the graph has no cycle). Only nodes on some edge can
    be on a cycle, so the others are left out; means are compared as (total, length) pairs
    and made a Fraction once."""
    on_edges = {u for u, _, _ in edges} | {v for _, v, _ in edges}
    nodes = [v for v in nodes if v in on_edges]
    index = {v: i for i, v in enumerate(nodes)}
    arcs = [(index[u], index[v], w) for u, v, w in edges]
    n = len(nodes)
    table: list[list[int | None]] = [[0] * n]
    for _ in range(n):
        previous = table[-1]
        current: list[int | None] = [None] * n
        for u, v, w in arcs:
            pu = previous[u]
            if pu is None:
                continue
            cv = current[v]
            if cv is None or pu + w > cv:
                current[v] = pu + w
        table.append(current)
    best = (0, 1)  # the mean of no cycle
    for v in range(n):
        final = table[n][v]
        if final is None:
            continue
        worst: tuple[int, int] | None = None
        for k in range(n):
            dk = table[k][v]
            if dk is None:
                continue
            mean = (final - dk, n - k)
            if worst is None or mean[0] * worst[1] < worst[0] * mean[1]:
                worst = mean
        if worst is not None and worst[0] * best[1] > best[0] * worst[1]:
            best = worst
    return Fraction(*best)


# -- entry points -----------------------------------------------------------------------------


def _area(arch: Architecture) -> float | None:
    """Total area of every instance of every level and PE (None when nothing gives one)."""
    total = 0.0
    given = False
    for name in arch.storage:
        level = arch.storage[name]
        if level.area_um2:
            given = True
            total += level.area_um2 * level.instances
    for unit in arch.units.values():
        if unit.area_um2:
            given = True
            total += unit.area_um2 * unit.pes
        if unit.registers is not None and unit.registers.area_um2:
            given = True
            total += unit.registers.area_um2 * unit.pes
    return total if given else None


def _report(
    arch: Architecture, costs: list[tuple[str, _ProgramCost]], accounting: str
) -> CostReport:
    compute = sum((c.compute for _, c in costs), Fraction(0))
    latency = sum(c.latency for _, c in costs)
    busy: dict[str, Fraction] = dict.fromkeys(arch.units, Fraction(0))
    einsums: dict[str, _EinsumAcc] = {}
    levels: dict[str, dict[str, list[int]]] = {}
    energy_by_level: dict[str, dict[str, float]] = {}
    level_cycles_total: dict[str, float] = {}
    peaks: dict[str, int] = {}
    capacities: dict[str, int | None] = {}
    overflows: list[Overflow] = []
    compute_pj = 0.0
    leakage = 0.0
    points = 0
    for _, cost in costs:
        for unit, pe_cycles in cost.acc.pe_busy.items():
            busy[unit] = busy.get(unit, Fraction(0)) + Fraction(pe_cycles, arch.units[unit].pes)
        compute_pj += cost.acc.compute_pj
        points += cost.acc.points
        for name, entry in cost.acc.einsums.items():
            total = einsums.setdefault(name, _EinsumAcc())
            total.cycles += entry.cycles
            total.unit = total.unit or entry.unit
            total.energy_pj += entry.energy_pj
            total.dram_bytes += entry.dram_bytes
        for label, level_acc in cost.acc.levels.items():
            tensors = levels.setdefault(label, {})
            for tensor, values in level_acc.tensors.items():
                into = tensors.setdefault(tensor, [0, 0, 0, 0, 1])
                for i in range(3):
                    into[i] += values[i]
                into[3] = max(into[3], values[3])
                into[4] = max(into[4], values[4])
            by_tensor = energy_by_level.setdefault(label, {})
            for tensor, pj in level_acc.energy.items():
                by_tensor[tensor] = by_tensor.get(tensor, 0.0) + pj
        for label, needed in cost.level_cycles.items():
            level_cycles_total[label] = level_cycles_total.get(label, 0.0) + needed
        for label, pj in cost.leakage.items():
            leakage += pj
            by_tensor = energy_by_level.setdefault(label, {})
            by_tensor["leakage"] = by_tensor.get("leakage", 0.0) + pj
        for buffer in cost.acc.buffers:
            label = buffer.level_name
            level = level_of(arch, label)
            peak = buffer.bytes_value
            capacity = level.capacity_in_bytes(arch.word_bytes)
            peaks[label] = max(peaks.get(label, 0), peak)
            capacities[label] = capacity
            if capacity is not None and peak > capacity:
                overflows.append(Overflow(label, tuple(buffer.holds_map()), peak, capacity))
    root = arch.root
    root_level = arch.storage[root]
    word = root_level.word_bits_of(arch.word_bytes) // 8
    root_counts = levels.get(root, {})
    dram_bytes = sum(sum(v[:3]) for v in root_counts.values()) * word
    breakdown = energy_breakdown(arch, compute_pj, energy_by_level)
    access = {
        label: {
            tensor: LevelAccess(_mean(v[0], v[4]), _mean(v[1], v[4]), _mean(v[2], v[4]), v[3], v[4])
            for tensor, v in tensors.items()
        }
        for label, tensors in levels.items()
    }
    memory = level_cycles_total.get(root, 0.0)
    return CostReport(
        arch=arch.name,
        cycles=math.ceil(latency),
        latency_s=arch.seconds(latency),
        compute_cycles=float(compute),
        memory_cycles=memory,
        level_cycles=level_cycles_total,
        computes=points,
        energy_pj=sum(breakdown.values()),
        energy_breakdown_pj=breakdown,
        energy_by_level=energy_by_level,
        leakage_pj=leakage,
        dram_bytes=dram_bytes,
        utilization={unit: (float(b) / latency if latency else 0.0) for unit, b in busy.items()},
        per_einsum={
            name: EinsumCost(e.cycles, e.unit, e.energy_pj, e.dram_bytes)
            for name, e in einsums.items()
        },
        levels=access,
        buffer_peak_bytes=peaks,
        buffer_capacity_bytes=capacities,
        buffer_overflow=bool(overflows),
        overflows=tuple(overflows),
        area_um2=_area(arch),
        accounting=accounting,
        programs=tuple(name for name, _ in costs),
    )


def energy_breakdown(
    arch: Architecture, compute_pj: float, energy_by_level: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """pJ by component, as the report lists them: compute, the units' registers, then every
    storage level of `arch` (each level's energy summed over its tensors, in their order)."""
    breakdown: dict[str, float] = {"compute": compute_pj, "registers": 0.0}
    for label in arch.storage:
        breakdown[label] = 0.0
    for label, by_tensor in energy_by_level.items():
        key = "registers" if label not in arch.storage else label
        breakdown[key] += sum(by_tensor.values())
    return breakdown


def _as_architecture(arch: Architecture | str) -> Architecture:
    return arch if isinstance(arch, Architecture) else load_architecture(arch)


def evaluate(
    program: ProgramOp, arch: Architecture | str, accounting: str = "physical"
) -> CostReport:
    """The cost of one dataflow program on `arch` (an `Architecture` or a name/path for
    `load_architecture`)."""
    architecture = _as_architecture(arch)
    cost = _Evaluator(architecture, accounting).program(program)
    return _report(architecture, [(program.program_name, cost)], accounting)


def evaluate_module(
    root: Operation, arch: Architecture | str, accounting: str = "physical"
) -> CostReport:
    """The cost of every dataflow program under `root` (a module), run one after another.
    Raises `CostModelError` when there is none."""
    programs = programs_in(root)
    if not programs:
        raise CostModelError(
            "no dataflow.program in the module: run lower-to-dataflow first "
            "(e.g. -p ...,lower-to-dataflow)"
        )
    architecture = _as_architecture(arch)
    return _report(
        architecture,
        [(p.program_name, _Evaluator(architecture, accounting).program(p)) for p in programs],
        accounting,
    )
