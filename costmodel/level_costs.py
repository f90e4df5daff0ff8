"""Energy, cycles, utilisation and area of a nest from its counts, as timeloop-model computes
them (reference/timeloop.md §C).

- Energy of a tensor at a level: per instance `⌈reads/block⌉·read + ⌈fills/block⌉·write +
  ⌈updates/block⌉·update` pJ (spread over the utilised instances of a cluster), times the
  utilised instances; leakage `leak × total cycles × utilised instances` per level; compute
  `computes × compute`.
- Cycles: per level the words per cycle per instance it must read (reads) and write (fills +
  updates) over the compute cycles; against the read, write and shared bandwidth specified
  this gives a slowdown ≤ 1 and `⌈compute cycles / slowdown⌉`; the nest takes the largest of
  the compute cycles and every level's cycles.
- Utilisation: computes / (arithmetic instances × cycles).
- Capacity: a level overflows when the words it holds exceed `⌊size / multiple_buffering⌋`.

Bandwidth and cycle arithmetic is done in floating point in Timeloop's order, so that a ceiling
falls where Timeloop's does."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from einsum_opt.costmodel.nest_counts import LevelCounts, NestCounts
from einsum_opt.support.errors import UserError


class LevelCostError(UserError):
    """Hardware facts that do not fit the counts (a level or action without an energy)."""


@dataclass(frozen=True)
class LevelHardware:
    """Per-instance facts of a storage level. Energies are pJ per vector access of
    `block_size` words (None: unspecified, an error if the level is accessed); bandwidths are
    words per cycle per instance (None: unlimited); `size_words` None is unbounded."""

    name: str
    block_size: int = 1
    read_pj: float | None = None
    write_pj: float | None = None
    update_pj: float | None = None
    leak_pj_per_cycle: float = 0.0
    read_bandwidth: float | None = None
    write_bandwidth: float | None = None
    shared_bandwidth: float | None = None
    area_um2: float | None = None
    multiple_buffering: float = 1.0
    size_words: int | None = None
    cluster_size: int = 1
    instances: int | None = None
    """The level's instances; None to take them from the counts."""


@dataclass(frozen=True)
class ComputeHardware:
    """The arithmetic units: pJ per compute, leakage per cycle per utilised instance (0 in
    timeloop-model, which adds none), µm² per instance and how many instances there are."""

    compute_pj: float | None
    leak_pj_per_cycle: float = 0.0
    area_um2: float | None = None
    instances: int = 1
    name: str = "compute"


@dataclass(frozen=True)
class TensorCost:
    """One tensor at one level: vector accesses per instance and energy over all instances."""

    read_vectors: int
    fill_vectors: int
    update_vectors: int
    energy_per_instance_pj: float
    energy_pj: float


@dataclass(frozen=True)
class LevelCost:
    """One storage level's energy, bandwidth demand and cycles, capacity and area."""

    name: str
    tensors: Mapping[str, TensorCost]
    access_energy_pj: float
    leakage_pj: float
    energy_pj: float
    fj_per_compute: float
    read_demand: float
    """Words per cycle per instance read from the level at the compute rate."""
    write_demand: float
    """Words per cycle per instance written into the level (fills and updates)."""
    slowdown: float
    """Bandwidth throttling: 1 when the bandwidths keep up with compute, else below 1."""
    cycles: int
    utilized_capacity: int
    capacity: int | None
    """Words per instance available to tiles (`⌊size / multiple_buffering⌋`), None unbounded."""
    area_um2: float | None
    """All instances."""

    @property
    def overflow(self) -> bool:
        """Whether the tiles held exceed the capacity."""
        return self.capacity is not None and self.utilized_capacity > self.capacity


@dataclass(frozen=True)
class ComputeCost:
    """The arithmetic units' share."""

    name: str
    computes: int
    cycles: int
    utilized_instances: int
    energy_pj: float
    fj_per_compute: float
    area_um2: float | None


@dataclass(frozen=True)
class NestCost:
    """The whole nest: cycles, utilisation, energy (pJ), area (µm², None without areas)."""

    cycles: int
    compute_cycles: int
    computes: int
    utilization: float
    energy_pj: float
    fj_per_compute: float
    area_um2: float | None
    compute: ComputeCost
    levels: Mapping[str, LevelCost]

    @property
    def overflows(self) -> tuple[str, ...]:
        """One message per overflowing level, naming it and the tensors it holds."""
        return tuple(
            f"level {c.name}: tiles of {c.utilized_capacity} words exceed its capacity "
            f"of {c.capacity}"
            for c in self.levels.values()
            if c.overflow
        )


def _vectors(count: int | Fraction, block: int) -> int | Fraction:
    """Whole vectors of `block` words; a mean count over uneven instances (a Fraction) is
    kept exact when vectors are single words."""
    if block == 1:
        return count
    return -(-count // block)


def access_energy(
    counts: tuple[int | Fraction, int | Fraction, int | Fraction],
    energies: tuple[float | None, float | None, float | None],
    block: int,
    used: int,
    instances: int,
    cluster_size: int = 1,
    level: str = "",
    tensor: str = "",
) -> tuple[tuple[int | Fraction, int | Fraction, int | Fraction], float]:
    """Timeloop's energy of one tensor at one level: the per-instance (reads, fills, updates)
    in whole vectors of `block` words at the (read, write, update) energies, spread over the
    utilized instances of a cluster. Returns the vector counts and the per-instance pJ."""
    vectors = (
        _vectors(counts[0], block),
        _vectors(counts[1], block),
        _vectors(counts[2], block),
    )
    per_cluster = 0.0
    for action, n, pj in zip(("read", "write", "update"), vectors, energies, strict=True):
        if n == 0:
            continue
        if pj is None:
            raise LevelCostError(f"level {level}: no {action} energy for tensor {tensor}")
        per_cluster += n * pj
    if used <= 0:
        return vectors, 0.0
    clusters = min(used, instances // cluster_size)
    return vectors, per_cluster / (used / clusters)


def _energy(level: LevelCounts, hardware: LevelHardware, instances: int) -> dict[str, TensorCost]:
    tensors: dict[str, TensorCost] = {}
    for name, counts in level.tensors.items():
        used = counts.utilized_instances
        vectors, per_instance = access_energy(
            (counts.reads, counts.fills, counts.updates),
            (hardware.read_pj, hardware.write_pj, hardware.update_pj),
            hardware.block_size,
            used,
            instances,
            hardware.cluster_size,
            level.name,
            name,
        )
        reads, fills, updates = (int(v) for v in vectors)  # Timeloop's counts: whole words
        tensors[name] = TensorCost(reads, fills, updates, per_instance, per_instance * used)
    return tensors


def _slowdown(
    level: LevelCounts, hardware: LevelHardware, compute_cycles: int
) -> tuple[float, float, float]:
    """(read demand, write demand, slowdown) as Timeloop's ComputePerformance."""
    read = write = 0.0
    for counts in level.tensors.values():
        read += float(counts.reads) / compute_cycles
        write += float(counts.fills + counts.updates) / compute_cycles
    slowdown = 1.0
    if hardware.read_bandwidth is not None and hardware.read_bandwidth < read:
        slowdown = min(slowdown, hardware.read_bandwidth / read)
    if hardware.write_bandwidth is not None and hardware.write_bandwidth < write:
        slowdown = min(slowdown, hardware.write_bandwidth / write)
    if hardware.shared_bandwidth is not None and hardware.shared_bandwidth < write + read:
        slowdown = min(slowdown, hardware.shared_bandwidth / (write + read))
    return read, write, slowdown


def level_costs(
    counts: NestCounts, levels: Sequence[LevelHardware], compute: ComputeHardware
) -> NestCost:
    """Energy, cycles, utilisation and area of `counts` on the hardware `levels` (one per
    level of the nest, matched by name) and `compute`."""
    by_name = {h.name: h for h in levels}
    missing = [name for name in counts.levels if name not in by_name]
    if missing:
        raise LevelCostError(f"level {missing[0]}: no hardware facts given")
    compute_cycles = max(counts.compute_cycles, 1)
    partial: dict[str, tuple[LevelHardware, dict[str, TensorCost], float, float, float, int]] = {}
    total_cycles = compute_cycles
    for name, level in counts.levels.items():
        hardware = by_name[name]
        instances = hardware.instances if hardware.instances is not None else level.instances
        tensors = _energy(level, hardware, instances)
        read, write, slowdown = _slowdown(level, hardware, compute_cycles)
        cycles = math.ceil(compute_cycles / slowdown)
        total_cycles = max(total_cycles, cycles)
        partial[name] = (hardware, tensors, read, write, slowdown, cycles)
    computes = counts.computes
    results: dict[str, LevelCost] = {}
    total_energy = 0.0
    areas: list[float | None] = []
    for name, (hardware, tensors, read, write, slowdown, cycles) in partial.items():
        level = counts.levels[name]
        instances = hardware.instances if hardware.instances is not None else level.instances
        access = sum(t.energy_pj for t in tensors.values())
        leaking = max([1] + [t.utilized_instances for t in level.tensors.values()])
        leakage = hardware.leak_pj_per_cycle * total_cycles * leaking
        energy = access + leakage
        total_energy += energy
        area = None if hardware.area_um2 is None else hardware.area_um2 * instances
        areas.append(area)
        capacity = None
        if hardware.size_words is not None:
            capacity = math.floor(hardware.size_words / hardware.multiple_buffering)
        results[name] = LevelCost(
            name=name,
            tensors=tensors,
            access_energy_pj=access,
            leakage_pj=leakage,
            energy_pj=energy,
            fj_per_compute=energy * 1000 / computes if computes else 0.0,
            read_demand=read,
            write_demand=write,
            slowdown=slowdown,
            cycles=cycles,
            utilized_capacity=level.utilized_capacity,
            capacity=capacity,
            area_um2=area,
        )
    if compute.compute_pj is None:
        raise LevelCostError(f"{compute.name}: no compute energy")
    compute_energy = computes * compute.compute_pj
    compute_energy += compute.leak_pj_per_cycle * total_cycles * counts.utilized_compute_instances
    total_energy += compute_energy
    compute_area = None if compute.area_um2 is None else compute.area_um2 * compute.instances
    areas.append(compute_area)
    ideal = computes / compute.instances
    return NestCost(
        cycles=total_cycles,
        compute_cycles=counts.compute_cycles,
        computes=computes,
        utilization=ideal / total_cycles if total_cycles else 0.0,
        energy_pj=total_energy,
        fj_per_compute=total_energy * 1000 / computes if computes else 0.0,
        area_um2=None if all(a is None for a in areas) else sum(a or 0.0 for a in areas),
        compute=ComputeCost(
            name=compute.name,
            computes=computes,
            cycles=counts.compute_cycles,
            utilized_instances=counts.utilized_compute_instances,
            energy_pj=compute_energy,
            fj_per_compute=compute_energy * 1000 / computes if computes else 0.0,
            area_um2=compute_area,
        ),
        levels=results,
    )
