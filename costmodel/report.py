"""The cost model's answer: `CostReport`, with JSON and fixed-width table renderings."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

ENERGY_COMPONENTS: tuple[str, ...] = ("compute", "registers", "DRAM", "GLB", "RF")
"""The components of `CostReport.energy_breakdown_pj`, always all present."""


@dataclass(frozen=True)
class EinsumCost:
    """What one Einsum costs: busy cycles of its compute stages (summed over repetitions), the
    unit it runs on (empty when it only moves data), its energy (compute, registers and the
    traffic attributed to it) and the DRAM bytes attributed to it.

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
class CostReport:
    """The cost of one or more dataflow programs on one architecture.

    - `cycles`: the latency in clock cycles (rounded up), `max(compute_cycles, memory_cycles)`;
    - `latency_s`: the same in seconds;
    - `compute_cycles`: the latency of the compute schedule (repeats, pipelines, sequences);
    - `memory_cycles`: DRAM bytes / DRAM bytes per cycle;
    - `energy_pj` and `energy_breakdown_pj` (component -> pJ, `ENERGY_COMPONENTS`);
    - `dram_bytes`: DRAM traffic including spills;
    - `utilization`: unit -> busy cycles / latency;
    - `per_einsum`: Einsum -> `EinsumCost`;
    - `buffer_peak_bytes`: level -> peak footprint; `buffer_capacity_bytes`: level -> capacity
      (None: unbounded); `buffer_overflow`: whether any level overflows;
    - `spill_bytes`: level -> spill traffic its overflow causes (written out and read back
      once per repetition), included in `dram_bytes`.
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
    spill_bytes: Mapping[str, int] = field(default_factory=dict)
    programs: tuple[str, ...] = ()

    @property
    def bound(self) -> str:
        """`compute` or `memory`: which side sets the latency."""
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (every field at the top level)."""
        return {
            "arch": self.arch,
            "programs": list(self.programs),
            "cycles": self.cycles,
            "latency_s": self.latency_s,
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "bound": self.bound,
            "energy_pj": self.energy_pj,
            "energy_breakdown_pj": dict(self.energy_breakdown_pj),
            "dram_bytes": self.dram_bytes,
            "utilization": dict(self.utilization),
            "per_einsum": {name: cost.to_dict() for name, cost in self.per_einsum.items()},
            "buffer_peak_bytes": dict(self.buffer_peak_bytes),
            "buffer_capacity_bytes": dict(self.buffer_capacity_bytes),
            "buffer_overflow": self.buffer_overflow,
            "spill_bytes": dict(self.spill_bytes),
        }

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
        row("memory (cycles)", f"{self.memory_cycles:,.0f}")
        row("bound", self.bound)
        row("DRAM traffic (bytes)", f"{self.dram_bytes:,}")
        row("energy (pJ)", f"{self.energy_pj:.6g}")
        lines.append("")
        lines.append(f"{'energy component':<22}{'pJ':>16}{'share':>8}")
        for name, value in self.energy_breakdown_pj.items():
            share = value / self.energy_pj if self.energy_pj else 0.0
            lines.append(f"{name:<22}{value:>16.6g}{share:>8.1%}")
        lines.append("")
        lines.append(f"{'unit':<22}{'utilization':>16}")
        for unit, fraction in self.utilization.items():
            lines.append(f"{unit:<22}{fraction:>16.1%}")
        if self.per_einsum:
            lines.append("")
            lines.append(
                f"{'einsum':<12}{'unit':<8}{'busy cycles':>18}{'energy (pJ)':>16}{'DRAM bytes':>18}"
            )
            for name, cost in self.per_einsum.items():
                lines.append(
                    f"{name:<12}{cost.unit or '-':<8}{cost.cycles:>18,.0f}"
                    f"{cost.energy_pj:>16.6g}{cost.dram_bytes:>18,}"
                )
        if self.buffer_peak_bytes:
            lines.append("")
            lines.append(f"{'buffer':<12}{'peak bytes':>16}{'capacity':>16}{'spill bytes':>18}")
            for level, peak in self.buffer_peak_bytes.items():
                capacity = self.buffer_capacity_bytes.get(level)
                cap = "-" if capacity is None else f"{capacity:,}"
                spill = self.spill_bytes.get(level, 0)
                flag = "  OVERFLOW" if capacity is not None and peak > capacity else ""
                lines.append(f"{level:<12}{peak:>16,}{cap:>16}{spill:>18,}{flag}")
        return "\n".join(lines) + "\n"
