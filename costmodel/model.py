"""The cost model: an analytic interpreter of the dataflow dialect (see `docs/dataflow.md`).

```python
from einsum_opt.hardware.architecture import load_architecture
from einsum_opt.costmodel.model import evaluate, evaluate_module

report = evaluate(program, load_architecture("fusemax"))
report.cycles, report.utilization["pe2d"], report.energy_breakdown_pj["DRAM"]
```

It never looks back at the einsum or loopnest IR, and never iterates over a count: repeats
multiply, pipelines are summarised by their initiation interval, so its running time depends on
the number of ops in the program only, not on sequence length.

Semantics (all latencies in clock cycles):

- a compute stage's latency per run is `times * arch.cycles(unit, ops)`, its busy cycles
  `runs * times * cycles`, its operations `runs * times * prod(extent) * ops`;
- a pipeline of N iterations: `II = max(max_u busy_u / N, R)` (R: the recurrence bound, the
  largest mean per-run latency per carried edge around a cycle of `after` + `carried` edges),
  `CP` the longest chain of per-run latencies through `after`; latency
  `(N - 1) * II + max(CP, max_u busy_u / N)`;
  a serial pipeline (one iteration at a time) takes `N * CP'`, where in `CP'` an edge between
  two units also waits for the producer's unit to drain (`drain_cycles`: overlapped
  iterations hide it) and a stage that runs in R < N iterations counts R / N of its latency;
- a repeat of N: N times its body; a block (program, repeat, sequence): the sum of its children;
- a program: `max(compute, DRAM bytes / (DRAM bytes per cycle))`; a module of several programs
  runs them one after another (latencies add);
- energy: compute ops x the unit's per-op energies; PE registers per operation (one read per
  operand: 2 for mac/mul/add/max/div, 1 for exp/sqrt/log; one write); transfers: DRAM bytes x
  pJ/byte, values written into / read out of GLB and RF x their per-value energies;
- buffers: the peak per level against its capacity; the excess of an overflowing level is
  written to the next level out (RF -> GLB -> DRAM) and read back once per repetition of the
  enclosing repeats (for a buffer at program level: of the program's outermost repeats; for a
  buffer inside a pipeline: of its iterations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from xdsl.ir import Block, Operation

from einsum_opt.costmodel.report import ENERGY_COMPONENTS, CostReport, EinsumCost
from einsum_opt.dialects.dataflow import (
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    TransferOp,
    programs_in,
)
from einsum_opt.hardware.architecture import STORAGE_LEVELS, Architecture, load_architecture

OPERANDS: dict[str, int] = {
    "mac": 2,
    "mul": 2,
    "add": 2,
    "max": 2,
    "div": 2,
    "exp": 1,
    "sqrt": 1,
    "log": 1,
}
"""Register reads per operation of each kind (each operation also writes one register)."""

REGISTERS_LEVEL = "PE"
"""A transfer level meaning a unit's PE registers (charged per operation, not per transfer)."""


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
class _Acc:
    """What evaluating one program accumulates."""

    busy: dict[str, int] = field(default_factory=dict)
    energy: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ENERGY_COMPONENTS, 0.0))
    einsums: dict[str, _EinsumAcc] = field(default_factory=dict)
    dram_bytes: int = 0
    buffers: list[tuple[BufferOp, int]] = field(default_factory=list)

    def einsum(self, name: str) -> _EinsumAcc:
        return self.einsums.setdefault(name, _EinsumAcc())


@dataclass(frozen=True)
class _ProgramCost:
    compute: Fraction
    memory: float
    acc: _Acc
    peaks: dict[str, int]
    capacities: dict[str, int | None]
    spills: dict[str, int]

    @property
    def latency(self) -> float:
        return max(float(self.compute), self.memory)


class _Evaluator:
    """Interprets one program on one architecture."""

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.acc = _Acc()

    # -- compute ------------------------------------------------------------------------------

    def stage_latency(self, op: ComputeOp) -> int:
        """Cycles of one run of a stage (`times` invocations)."""
        return op.times_value * self.arch.cycles(op.unit_name, op.op_counts())

    def account(self, op: ComputeOp, mult: int) -> None:
        """Busy cycles and energy of a stage executed `mult` times over (enclosing repeats)."""
        arch = self.arch
        unit_name = op.unit_name
        if unit_name not in arch.units:
            raise CostModelError(
                f"compute @{op.einsum_name}: no unit {unit_name!r} in {arch.name} "
                f"(the units are {', '.join(arch.units)})"
            )
        unit = arch.unit(unit_name)
        extent = op.extent_list()
        if len(extent) > len(unit.shape) or any(
            e > side for e, side in zip(extent, unit.shape, strict=False)
        ):
            raise CostModelError(
                f"compute @{op.einsum_name}: extent {extent} exceeds unit {unit_name}'s shape "
                f"{list(unit.shape)} in {arch.name}"
            )
        ops = op.op_counts()
        busy = mult * op.runs_value * self.stage_latency(op)
        invocations = mult * op.runs_value * op.times_value * math.prod(extent)
        compute_pj = invocations * arch.op_energy_pj(unit_name, ops)
        registers_pj = 0.0
        if unit.registers is not None:
            read = arch.read_pj_per_value(REGISTERS_LEVEL, unit_name)
            write = arch.write_pj_per_value(REGISTERS_LEVEL, unit_name)
            per_invocation = sum(n * (OPERANDS[k] * read + write) for k, n in ops.items())
            registers_pj = invocations * per_invocation
        acc = self.acc
        acc.busy[unit_name] = acc.busy.get(unit_name, 0) + busy
        acc.energy["compute"] += compute_pj
        acc.energy["registers"] += registers_pj
        entry = acc.einsum(op.einsum_name)
        entry.cycles += busy
        entry.unit = entry.unit or unit_name
        entry.energy_pj += compute_pj + registers_pj

    # -- structure ----------------------------------------------------------------------------

    def block(self, block: Block, mult: int) -> Fraction:
        """Latency of one execution of a block run sequentially; totals are scaled by `mult`."""
        latency = Fraction(0)
        for op in block.ops:
            latency += self.op(op, mult)
        return latency

    def op(self, op: Operation, mult: int) -> Fraction:
        if isinstance(op, RepeatOp):
            count = op.count_value
            return count * self.block(op.body.block, mult * count)
        if isinstance(op, PipelineOp):
            return self.pipeline(op, mult)
        if isinstance(op, ComputeOp):
            self.account(op, mult)
            return Fraction(op.runs_value * self.stage_latency(op))
        if isinstance(op, TransferOp):
            self.transfer(op)
            return Fraction(0)
        if isinstance(op, BufferOp):
            self.acc.buffers.append((op, mult))
            return Fraction(0)
        raise CostModelError(f"the cost model does not know {op.name}")

    def pipeline(self, op: PipelineOp, mult: int) -> Fraction:
        """`(N - 1) * II + CP` of a pipeline of N iterations."""
        count = op.count_value
        stages: dict[str, ComputeOp] = {}
        for child in op.body.block.ops:
            if isinstance(child, ComputeOp):
                stages[child.einsum_name] = child
            elif isinstance(child, BufferOp):
                # A buffer inside a pipeline is what one iteration keeps.
                self.acc.buffers.append((child, mult * count))
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
        resource = max((Fraction(b, count) for b in busy.values()), default=Fraction(0))
        interval = max(resource, recurrence_bound(stages.values(), latency))
        # The last iteration ends after its critical path, and no sooner than its units can
        # do their share of the work (stages on one unit that no `after` chain links).
        last = max(critical_path(stages.values(), latency), resource)
        return (count - 1) * interval + last

    # -- traffic ------------------------------------------------------------------------------

    def transfer(self, op: TransferOp) -> None:
        arch = self.arch
        amount = op.bytes_value
        values = amount / arch.word_bytes
        energy = 0.0
        for level, reading in ((op.source_level, True), (op.dest_level, False)):
            if level == REGISTERS_LEVEL:
                continue
            self.check_level(level, f'transfer @{op.einsum_name} "{op.tensor_name}"')
            if level == "DRAM":
                per_byte = (
                    arch.read_pj_per_byte(level) if reading else arch.write_pj_per_byte(level)
                )
                part = amount * per_byte
            else:
                per_value = (
                    arch.read_pj_per_value(level) if reading else arch.write_pj_per_value(level)
                )
                part = values * per_value
            self.acc.energy[level] += part
            energy += part
        entry = self.acc.einsum(op.einsum_name)
        entry.energy_pj += energy
        if "DRAM" in (op.source_level, op.dest_level):
            self.acc.dram_bytes += amount
            entry.dram_bytes += amount

    def check_level(self, level: str, what: str) -> None:
        if level not in self.arch.storage:
            known = ", ".join([*self.arch.storage, REGISTERS_LEVEL])
            raise CostModelError(
                f"{what}: no storage level {level!r} in {self.arch.name} (the levels are {known})"
            )

    def buffers(
        self, program_reps: int
    ) -> tuple[dict[str, int], dict[str, int | None], dict[str, int]]:
        """Peak bytes and capacity per level, and the spill traffic of overflowing levels
        (charged to the accumulators)."""
        arch = self.arch
        peaks: dict[str, int] = {}
        capacities: dict[str, int | None] = {}
        spills: dict[str, int] = {}
        for op, mult in self.acc.buffers:
            level = op.level_name
            self.check_level(level, f"buffer {level}")
            size = op.bytes_value
            peaks[level] = max(peaks.get(level, 0), size)
            capacity = arch.capacity_bytes(level)
            capacities[level] = capacity
            if capacity is None or size <= capacity:
                continue
            reps = program_reps if isinstance(op.parent_op(), ProgramOp) else mult
            excess = (size - capacity) * reps
            spills[level] = spills.get(level, 0) + 2 * excess
            outer = _outer_level(arch, level)
            # Written out and read back: read + write at both levels.
            values = excess / arch.word_bytes
            self.acc.energy[level] += values * (
                arch.read_pj_per_value(level) + arch.write_pj_per_value(level)
            )
            if outer == "DRAM":
                self.acc.dram_bytes += 2 * excess
                self.acc.energy["DRAM"] += excess * (
                    arch.read_pj_per_byte("DRAM") + arch.write_pj_per_byte("DRAM")
                )
            else:
                self.acc.energy[outer] += values * (
                    arch.read_pj_per_value(outer) + arch.write_pj_per_value(outer)
                )
        return peaks, capacities, spills

    def program(self, program: ProgramOp) -> _ProgramCost:
        compute = self.block(program.body.block, 1)
        peaks, capacities, spills = self.buffers(_repetitions(program.body.block))
        memory = self.acc.dram_bytes / self.arch.bytes_per_cycle("DRAM")
        return _ProgramCost(compute, memory, self.acc, peaks, capacities, spills)


def _outer_level(arch: Architecture, level: str) -> str:
    """The next storage level out from `level` that the architecture has."""
    index = STORAGE_LEVELS.index(level)
    for outer in reversed(STORAGE_LEVELS[:index]):
        if outer in arch.storage:
            return outer
    return "DRAM"


def _repetitions(block: Block) -> int:
    """How many times the outermost repeats of a block run their innermost bodies."""
    best = 1
    for op in block.ops:
        if isinstance(op, RepeatOp):
            best = max(best, op.count_value * _repetitions(op.body.block))
    return best


def critical_path(
    stages: Iterable[ComputeOp],
    latency: Mapping[str, int] | Mapping[str, Fraction],
    drains: Mapping[str, int] | None = None,
) -> Fraction:
    """The longest chain of per-run latencies through `after` edges (one iteration); an edge
    from a stage on one unit to a stage on another also waits for the producer's unit to drain
    (`drains`: unit -> cycles)."""
    by_name = {s.einsum_name: s for s in stages}
    finish: dict[str, Fraction] = {}

    def wait(dep: str, name: str) -> int:
        unit = by_name[dep].unit_name
        if drains is None or unit == by_name[name].unit_name:
            return 0
        return drains.get(unit, 0)

    def end(name: str) -> Fraction:
        if name not in finish:
            deps = [d for d in by_name[name].after_names() if d in by_name]
            finish[name] = latency[name] + max(
                (end(d) + wait(d, name) for d in deps), default=Fraction(0)
            )
        return finish[name]

    return max((end(name) for name in by_name), default=Fraction(0))


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
    """Karp's maximum mean cycle (0 when the graph has no cycle)."""
    n = len(nodes)
    neg: Fraction | None = None
    table: list[dict[str, Fraction | None]] = [dict.fromkeys(nodes, Fraction(0))]
    for _ in range(n):
        previous = table[-1]
        current: dict[str, Fraction | None] = dict.fromkeys(nodes, neg)
        for u, v, w in edges:
            pu = previous[u]
            if pu is None:
                continue
            cv = current[v]
            if cv is None or pu + w > cv:
                current[v] = pu + w
        table.append(current)
    best: Fraction | None = None
    for v in nodes:
        final = table[n][v]
        if final is None:
            continue
        worst: Fraction | None = None
        for k in range(n):
            dk = table[k][v]
            if dk is None:
                continue
            mean = (final - dk) / (n - k)
            if worst is None or mean < worst:
                worst = mean
        if worst is not None and (best is None or worst > best):
            best = worst
    return max(best, Fraction(0)) if best is not None else Fraction(0)


# -- entry points -----------------------------------------------------------------------------


def _report(arch: Architecture, costs: list[tuple[str, _ProgramCost]]) -> CostReport:
    compute = sum((c.compute for _, c in costs), Fraction(0))
    memory = sum(c.memory for _, c in costs)
    latency = sum(c.latency for _, c in costs)
    busy: dict[str, int] = dict.fromkeys(arch.units, 0)
    energy: dict[str, float] = dict.fromkeys(ENERGY_COMPONENTS, 0.0)
    einsums: dict[str, _EinsumAcc] = {}
    peaks: dict[str, int] = {}
    capacities: dict[str, int | None] = {}
    spills: dict[str, int] = {}
    dram = 0
    for _, cost in costs:
        for unit, cycles in cost.acc.busy.items():
            busy[unit] = busy.get(unit, 0) + cycles
        for component, pj in cost.acc.energy.items():
            energy[component] += pj
        for name, entry in cost.acc.einsums.items():
            total = einsums.setdefault(name, _EinsumAcc())
            total.cycles += entry.cycles
            total.unit = total.unit or entry.unit
            total.energy_pj += entry.energy_pj
            total.dram_bytes += entry.dram_bytes
        for level, peak in cost.peaks.items():
            peaks[level] = max(peaks.get(level, 0), peak)
        capacities.update(cost.capacities)
        for level, spill in cost.spills.items():
            spills[level] = spills.get(level, 0) + spill
        dram += cost.acc.dram_bytes
    overflow = any(
        capacities.get(level) is not None and peak > (capacities[level] or 0)
        for level, peak in peaks.items()
    )
    return CostReport(
        arch=arch.name,
        cycles=math.ceil(latency),
        latency_s=arch.seconds(latency),
        compute_cycles=float(compute),
        memory_cycles=memory,
        energy_pj=sum(energy.values()),
        energy_breakdown_pj=energy,
        dram_bytes=dram,
        utilization={unit: (b / latency if latency else 0.0) for unit, b in busy.items()},
        per_einsum={
            name: EinsumCost(e.cycles, e.unit, e.energy_pj, e.dram_bytes)
            for name, e in einsums.items()
        },
        buffer_peak_bytes=peaks,
        buffer_capacity_bytes=capacities,
        buffer_overflow=overflow,
        spill_bytes=spills,
        programs=tuple(name for name, _ in costs),
    )


def _as_architecture(arch: Architecture | str) -> Architecture:
    return arch if isinstance(arch, Architecture) else load_architecture(arch)


def evaluate(program: ProgramOp, arch: Architecture | str) -> CostReport:
    """The cost of one dataflow program on `arch` (an `Architecture` or a name/path for
    `load_architecture`)."""
    architecture = _as_architecture(arch)
    return _report(
        architecture, [(program.program_name, _Evaluator(architecture).program(program))]
    )


def evaluate_module(root: Operation, arch: Architecture | str) -> CostReport:
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
        [(p.program_name, _Evaluator(architecture).program(p)) for p in programs],
    )
