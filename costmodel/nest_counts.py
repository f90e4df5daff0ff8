"""The output of the per-nest analysis: per level and tensor, Timeloop's per-instance counts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TensorCounts:
    """One tensor at one level, per instance of the level (Timeloop's "per-instance" stats).

    - `reads`: words the level sends inward (to its child's fills, to the compute units'
      operands, or partial sums back to the child), multicasts counted once;
    - `fills`: words delivered into the level from its parent (0 at a tensor's outermost keeper);
    - `updates`: partial-sum writes arriving from inside (read-write tensors; a spatial
      reduction counts once);
    - `utilized_capacity`: the tile the level holds (0 when it bypasses the tensor);
    - `utilized_instances`: the level's instances the mapping uses;
    - `partition_size`: the part of the tensor one instance is responsible for (Timeloop's
      partition size; the first touch of each of its words is a write only);
    - `distinct_destinations`: how many different deltas the level's spatial fan-out sends
      per step (its multicast groups; 1 without fan-out), so that `reads / distinct` words go
      to each group;
    - `link_transfers`: words the child instances passed to their neighbours instead of
      reading them from this level (Timeloop's link transfers; counted in the child's reads
      and fills as peer accesses)."""

    reads: int
    fills: int
    updates: int
    utilized_capacity: int
    utilized_instances: int
    kept: bool
    partition_size: int
    distinct_destinations: int = 1
    link_transfers: int = 0

    read_write: bool = False

    @property
    def accesses(self) -> int:
        """reads + fills + updates."""
        return self.reads + self.fills + self.updates

    @property
    def temporal_reductions(self) -> int:
        """Partial sums added into the level (read-write tensors: one per read)."""
        return self.reads if self.read_write else 0

    @property
    def address_generations(self) -> int:
        """Addresses the level generates: its writes and fills for a read-write tensor, its
        reads and fills otherwise (Timeloop's count; its energy is 0 by default)."""
        return (self.updates if self.read_write else self.reads) + self.fills


@dataclass(frozen=True)
class LevelCounts:
    """One storage level: its instances and the counts of every tensor (`counts["A"]`)."""

    name: str
    instances: int
    utilized_instances: int
    tensors: Mapping[str, TensorCounts]

    def __getitem__(self, tensor: str) -> TensorCounts:
        return self.tensors[tensor]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    @property
    def utilized_capacity(self) -> int:
        """Words held per instance, summed over the tensors kept."""
        return sum(t.utilized_capacity for t in self.tensors.values())


@dataclass(frozen=True)
class NestCounts:
    """Counts of a whole nest: total computes, compute cycles (temporal iterations per
    arithmetic instance), the arithmetic instances used, and every level by name
    (outermost first)."""

    computes: int
    compute_cycles: int
    utilized_compute_instances: int
    compute_instances: int
    levels: Mapping[str, LevelCounts]

    def __getitem__(self, level: str) -> LevelCounts:
        return self.levels[level]
