"""The cost model's answer: `CostReport`, with JSON and fixed-width table renderings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class EinsumCost:
    """What one Einsum costs: busy cycles of its compute stages (summed over repetitions), the
    unit it runs on (empty when it only moves data), its energy (compute and the accesses of
    its nest) and the DRAM bytes its nest moves.

    Reads like a mapping as well: `cost["cycles"]`."""

    cycles: float
    unit: str
    energy_pj: float
    dram_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this entry."""
        return {
            "cycles": self.cycles,
            "unit": self.unit,
            "energy_pj": self.energy_pj,
            "dram_bytes": self.dram_bytes,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def keys(self) -> Iterator[str]:
        """The field names, as a mapping's keys."""
        return iter(self.to_dict())


@dataclass(frozen=True)
class LevelAccess:
    """One tensor at one storage level, per instance as Timeloop reports it: words read, filled
    and updated, the largest tile held (`utilized_capacity`) and the utilized instances."""

    reads: int | Fraction
    fills: int | Fraction
    updates: int | Fraction
    utilized_capacity: int
    instances: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (integers where the per-instance counts are whole)."""
        return {
            "reads": _number(self.reads),
            "fills": _number(self.fills),
            "updates": _number(self.updates),
            "utilized_capacity": self.utilized_capacity,
            "utilized_instances": self.instances,
        }


@dataclass(frozen=True)
class Overflow:
    """A storage level whose peak exceeds its capacity: the tensors it holds then."""

    level: str
    tensors: tuple[str, ...]
    peak_bytes: int
    capacity_bytes: int

    def describe(self) -> str:
        """One line naming the level and the tensors."""
        return (
            f"{self.level} holds {self.peak_bytes:,} bytes of {', '.join(self.tensors)} "
            f"but has {self.capacity_bytes:,}"
        )


def _count(value: int | Fraction) -> str:
    """A per-instance count for the table: whole numbers with separators."""
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{float(value):,.2f}"


def _number(value: int | Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


@dataclass(frozen=True)
class CostReport:
    """The cost of one or more dataflow programs on one architecture.

    - `cycles`: the latency in clock cycles (rounded up): `max(compute, every level)`;
    - `latency_s`: the same in seconds;
    - `compute_cycles`: the latency of the compute schedule (repeats, pipelines, sequences);
    - `level_cycles`: level -> cycles its traffic needs at its bandwidths; `memory_cycles` is
      the root's (DRAM's);
    - `computes`: index points computed (one per PE per invocation);
    - `energy_pj`, `energy_breakdown_pj` (`compute`, `registers` for the units' PE registers,
      then each storage level) and `energy_by_level` (level -> tensor -> pJ, `leakage` apart);
    - `dram_bytes`: the root level's traffic in bytes;
    - `utilization`: unit -> PE-cycles used / (PEs x latency);
    - `per_einsum`: Einsum -> `EinsumCost`;
    - `levels`: level -> tensor -> `LevelAccess` (per instance, Timeloop's meaning);
    - `buffer_peak_bytes`: level -> peak per instance; `buffer_capacity_bytes`: level ->
      capacity (None: unbounded); `buffer_overflow` and `overflows`: the levels that overflow;
    - `area_um2`: the area of every instance (None when the architecture gives none);
    - `accounting`: `physical`, or `artifact` (storage charged for one instance per level).
    """

    arch: str
    cycles: int
    latency_s: float
    compute_cycles: float
    memory_cycles: float
    energy_pj: float
    energy_breakdown_pj: Mapping[str, float]
    dram_bytes: int
    utilization: Mapping[str, float]
    per_einsum: Mapping[str, EinsumCost]
    buffer_peak_bytes: Mapping[str, int]
    buffer_capacity_bytes: Mapping[str, int | None] = field(default_factory=dict)
    buffer_overflow: bool = False
    programs: tuple[str, ...] = ()
    level_cycles: Mapping[str, float] = field(default_factory=dict)
    computes: int = 0
    energy_by_level: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    leakage_pj: float = 0.0
    levels: Mapping[str, Mapping[str, LevelAccess]] = field(default_factory=dict)
    overflows: tuple[Overflow, ...] = ()
    area_um2: float | None = None
    accounting: str = "physical"

    @property
    def bound(self) -> str:
        """`compute`, or the storage level whose bandwidth sets the latency."""
        slowest = max(self.level_cycles.items(), key=lambda kv: kv[1], default=("", 0.0))
        return slowest[0] if slowest[1] > self.compute_cycles else "compute"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (every field at the top level)."""
        data = {
            "arch": self.arch,
            "programs": list(self.programs),
            "cycles": self.cycles,
            "latency_s": self.latency_s,
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "level_cycles": dict(self.level_cycles),
            "bound": self.bound,
            "computes": self.computes,
            "energy_pj": self.energy_pj,
            "energy_breakdown_pj": dict(self.energy_breakdown_pj),
            "energy_by_level_pj": {k: dict(v) for k, v in self.energy_by_level.items()},
            "leakage_pj": self.leakage_pj,
            "accounting": self.accounting,
            "dram_bytes": self.dram_bytes,
            "utilization": dict(self.utilization),
            "per_einsum": {name: cost.to_dict() for name, cost in self.per_einsum.items()},
            "levels": {
                level: {tensor: a.to_dict() for tensor, a in tensors.items()}
                for level, tensors in self.levels.items()
            },
            "buffer_peak_bytes": dict(self.buffer_peak_bytes),
            "buffer_capacity_bytes": dict(self.buffer_capacity_bytes),
            "buffer_overflow": self.buffer_overflow,
            "overflows": [
                {
                    "level": o.level,
                    "tensors": list(o.tensors),
                    "peak_bytes": o.peak_bytes,
                    "capacity_bytes": o.capacity_bytes,
                }
                for o in self.overflows
            ],
        }
        if self.area_um2 is not None:
            data["area_um2"] = self.area_um2
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self) -> str:
        """A readable fixed-width text table."""
        lines: list[str] = []
        title = (
            f"cost of {', '.join('@' + p for p in self.programs) or 'the module'} on {self.arch}"
        )
        lines += [title, "=" * len(title)]

        def row(label: str, value: str) -> None:
            lines.append(f"{label:<22}{value:>24}")

        row("latency (cycles)", f"{self.cycles:,}")
        row("latency (s)", f"{self.latency_s:.6g}")
        row("compute (cycles)", f"{self.compute_cycles:,.0f}")
        for level, cycles in self.level_cycles.items():
            if cycles:
                row(f"{level} (cycles)", f"{cycles:,.0f}")
        row("bound", self.bound)
        row("DRAM traffic (bytes)", f"{self.dram_bytes:,}")
        row("energy (pJ)", f"{self.energy_pj:.6g}")
        row("energy accounting", self.accounting)
        if self.area_um2 is not None:
            row("area (um^2)", f"{self.area_um2:,.2f}")
        if self.computes:
            row("energy/compute (fJ)", f"{self.energy_pj * 1000 / self.computes:,.2f}")
        lines.append("")
        per_compute = f"{'fJ/compute':>12}" if self.computes else ""
        lines.append(f"{'energy component':<22}{'pJ':>16}{'share':>8}{per_compute}")
        for name, value in self.energy_breakdown_pj.items():
            share = value / self.energy_pj if self.energy_pj else 0.0
            fj = f"{value * 1000 / self.computes:>12,.2f}" if self.computes else ""
            lines.append(f"{name:<22}{value:>16.6g}{share:>8.1%}{fj}")
        lines.append("")
        lines.append(f"{'unit':<22}{'utilization':>16}")
        for unit, fraction in self.utilization.items():
            lines.append(f"{unit:<22}{fraction:>16.1%}")
        if self.levels:
            lines.append("")
            lines.append("per instance of each level:")
            rows: list[list[str]] = []
            for level, tensors in self.levels.items():
                energies = self.energy_by_level.get(level, {})
                for tensor, a in tensors.items():
                    rows.append(
                        [
                            level,
                            tensor,
                            _count(a.reads),
                            _count(a.fills),
                            _count(a.updates),
                            f"{a.utilized_capacity:,}",
                            f"{a.instances:,}",
                            f"{energies.get(tensor, 0.0):.6g}",
                        ]
                    )
                if energies.get("leakage"):
                    rows.append([level, "leakage", *[""] * 5, f"{energies['leakage']:.6g}"])
            header = ["level", "tensor", "reads", "fills", "updates", "capacity", "instances"]
            lines += _columns([*header, "energy (pJ)"], rows, left=2)
        if self.per_einsum:
            lines.append("")
            rows = [
                [
                    name,
                    cost.unit or "-",
                    f"{cost.cycles:,.0f}",
                    f"{cost.energy_pj:.6g}",
                    f"{cost.dram_bytes:,}",
                ]
                for name, cost in self.per_einsum.items()
            ]
            header = ["einsum", "unit", "busy cycles", "energy (pJ)", "DRAM bytes"]
            lines += _columns(header, rows, left=2)
        if self.buffer_peak_bytes:
            lines.append("")
            rows = []
            for level, peak in self.buffer_peak_bytes.items():
                capacity = self.buffer_capacity_bytes.get(level)
                flag = "OVERFLOW" if capacity is not None and peak > capacity else ""
                cap = "-" if capacity is None else f"{capacity:,}"
                rows.append([level, f"{peak:,}", cap, flag])
            lines += [
                line.rstrip()
                for line in _columns(["buffer", "peak bytes", "capacity", ""], rows, 1)
            ]
        for overflow in self.overflows:
            lines.append(f"overflow: {overflow.describe()}")
        return "\n".join(lines) + "\n"


def _columns(header: list[str], rows: list[list[str]], left: int) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell, two spaces apart; the
    first `left` columns are left-aligned (names), the others right-aligned (numbers)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        parts = [
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]
