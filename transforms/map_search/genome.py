"""The decisions map-search makes, and the plan they describe.

- The cascade is cut into **kernels** (consecutive Einsums in program order that run as one
  program; tensors between kernels go through the root level).
- Each kernel has a **skeleton**: loops (pieces of ranks, each at a storage level every unit of
  the kernel shares) that all its Einsums have outermost, in the same order, for the ranks they
  iterate. Its running values' iterative rank is one of them: the pieces before it repeat
  the pipeline, those after it are pipeline loops (interleaving: `M1, H, P1` runs the heads
  of one key tile back to back). What a skeleton rank has left (its size over the product of
  its pieces) is split the same way by every Einsum (the kernel's splits) into an outer piece
  in time and an inner piece in time or on an axis, so that the skeleton's loops have the same
  names, and the pieces the same trips, in every Einsum.
- Each Einsum has its **own mapping**: its unit, its loops after the skeleton's (pieces of any
  rank at any level, spatial ones on the array's axes), and the levels keeping each tensor
  where they differ from the default.
- Each tensor produced and consumed inside a kernel has a **home** level: chosen by a move,
  or, when a move leaves it open, the deepest level it may legally live at.

`realize` turns a genome into a `CascadeMap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from einsum_opt.transforms.map_search.chains import UnitChain
from einsum_opt.transforms.map_search.facts import CascadeFacts, EinsumFacts
from einsum_opt.transforms.map_search.hashing import CachedHash
from einsum_opt.transforms.map_search.plan import CascadeMap, EinsumMap, Loop


@dataclass(frozen=True)
class Piece(CachedHash):
    """A skeleton loop: `extent` trips of `rank` at storage level `level`."""

    __hash__ = CachedHash.__hash__

    rank: str
    extent: int
    level: str


@dataclass(frozen=True)
class KernelPlan(CachedHash):
    """A kernel: its computing Einsums (indices, in order), its skeleton and how the
    skeleton's ranks split what is left."""

    __hash__ = CachedHash.__hash__

    members: tuple[int, ...]
    skeleton: tuple[Piece, ...] = ()
    splits: tuple[tuple[str, int], ...] = ()
    """For each skeleton rank with trips left, the trips of its inner piece (the outer piece
    takes the rest): the same in every Einsum of the kernel, so that the pieces' loops agree
    wherever the lowering sees them as shared."""

    def remainder(self, rank: str, size: int) -> int:
        """What the skeleton leaves of `rank` (its size over its pieces' trips)."""
        return size // math.prod(p.extent for p in self.skeleton if p.rank == rank)

    def inner(self, rank: str) -> int:
        """The trips of `rank`'s inner piece (1 when it has none)."""
        return dict(self.splits).get(rank, 1)

    def skeleton_ranks(self) -> frozenset[str]:
        """The ranks the skeleton has pieces of."""
        return frozenset(p.rank for p in self.skeleton)


@dataclass(frozen=True)
class OwnPlan(CachedHash):
    """An Einsum's own mapping: its unit, its loops after the skeleton's, and the kept levels
    of the tensors whose chain differs from the default."""

    __hash__ = CachedHash.__hash__

    unit: str
    loops: tuple[Loop, ...]
    keeps: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Genome(CachedHash):
    """A complete set of decisions (see the module docstring). `own[i]` is None for a view."""

    __hash__ = CachedHash.__hash__

    kernels: tuple[KernelPlan, ...]
    own: tuple[OwnPlan | None, ...]
    homes: tuple[tuple[str, str], ...]

    def kernel_of(self, index: int) -> int:
        """The position of the kernel holding Einsum `index`."""
        for k, kernel in enumerate(self.kernels):
            if index in kernel.members:
                return k
        raise KeyError(index)

    def with_own(self, index: int, own: OwnPlan) -> Genome:
        """The genome with Einsum `index`'s own mapping replaced."""
        items = list(self.own)
        items[index] = own
        return Genome(self.kernels, tuple(items), self.homes)

    def with_home(self, tensor: str, level: str) -> Genome:
        """The genome with `tensor` homed at `level`."""
        homes = dict(self.homes)
        homes[tensor] = level
        return Genome(self.kernels, self.own, tuple(sorted(homes.items())))

    def without_homes(self, tensors: object) -> Genome:
        """The genome with the homes of `tensors` left to the search's repair (each goes to
        its deepest legal level)."""
        drop = set(tensors)  # type: ignore[call-overload]
        return Genome(self.kernels, self.own, tuple(h for h in self.homes if h[0] not in drop))

    def with_kernel(self, position: int, kernel: KernelPlan) -> Genome:
        """The genome with one kernel replaced."""
        items = list(self.kernels)
        items[position] = kernel
        return Genome(tuple(items), self.own, self.homes)


class Realizer:
    """Builds the plans of genomes for one cascade, reusing the plan object of an Einsum whose
    decisions did not change (the evaluator recognises a plan it has seen by identity)."""

    def __init__(
        self,
        facts: CascadeFacts,
        chains: Mapping[str, UnitChain],
        root: str,
        skeleton_of: Callable[[KernelPlan, int], tuple[Piece, ...]],
    ):
        self.facts = facts
        self.chains = chains
        self.root = root
        self.skeleton_of = skeleton_of
        self.cache: dict[tuple[object, ...], EinsumMap] = {}
        self._crossing: dict[tuple[KernelPlan, ...], frozenset[str]] = {}
        self._sources = {
            e.index: tuple(facts.source(t) for t in e.tensors) for e in facts.einsums
        }
        self._rooted = frozenset(facts.inputs) | frozenset(facts.outputs) | frozenset(facts.views)
        self._readers: dict[str, tuple[EinsumFacts, ...]] = {}

    def crossing(self, genome: Genome) -> frozenset[str]:
        """Tensors produced in one kernel and read in another (they go through the root)."""
        found = self._crossing.get(genome.kernels)
        if found is None:
            found = self._crossing[genome.kernels] = self._crossing_of(genome)
        return found

    def _crossing_of(self, genome: Genome) -> frozenset[str]:
        kernel_of = {i: k for k, kern in enumerate(genome.kernels) for i in kern.members}
        out = set()
        for e in self.facts.computing():
            for read in e.reads:
                source = self.facts.producer(self.facts.source(read.tensor))
                if source is None or source.view or source.index == e.index:
                    continue
                if kernel_of.get(source.index) != kernel_of.get(e.index):
                    out.add(source.name)
        return frozenset(out)

    def realize(self, genome: Genome) -> CascadeMap:
        """The plan of every Einsum (views read their source at the root)."""
        facts = self.facts
        crossing = self.crossing(genome)
        pinned = dict(genome.homes)
        multi = len(genome.kernels) > 1
        out: list[EinsumMap | None] = [None] * len(facts.einsums)
        for k, kernel in enumerate(genome.kernels):
            name = f"k{k}" if multi else ""
            for index in kernel.members:
                out[index] = self._einsum(genome, kernel, index, name, crossing, pinned)
        for e in facts.einsums:
            if e.view:
                out[e.index] = self._view(genome, e, out)
        result = tuple(m for m in out if m is not None)
        assert len(result) == len(facts.einsums)
        return result

    def _einsum(
        self,
        genome: Genome,
        kernel: KernelPlan,
        index: int,
        kernel_name: str,
        crossing: frozenset[str],
        pinned: Mapping[str, str],
    ) -> EinsumMap:
        e = self.facts.einsums[index]
        own = genome.own[index]
        assert own is not None
        root = self.root
        rooted = self._rooted
        homes = tuple(
            (t, root if s in rooted or s in crossing else pinned.get(s, root))
            for t, s in zip(e.tensors, self._sources[index], strict=True)
        )
        key = (index, kernel.skeleton, own, homes, kernel_name)
        found = self.cache.get(key)
        if found is not None:
            return found
        loops = tuple(
            Loop(p.rank, p.extent, None, p.level) for p in self.skeleton_of(kernel, index)
        ) + own.loops
        # A kept chain starts at its tensor's home; one left from an earlier home (the home
        # was repaired, or the tensor now crosses kernels and lives at the root) no longer
        # applies, and the default chain does.
        at = dict(homes)
        keeps = tuple((t, chain) for t, chain in own.keeps if at.get(t) == chain[0])
        plan = EinsumMap(own.unit, loops, homes, keeps, kernel_name)
        if len(self.cache) > 500_000:
            self.cache.clear()
        self.cache[key] = plan
        return plan

    def _view(
        self, genome: Genome, e: EinsumFacts, plans: list[EinsumMap | None]
    ) -> EinsumMap:
        """A view's plan: on the unit of a reader, every loop at the root."""
        readers = self._readers.get(e.name)
        if readers is None:
            readers = self._readers[e.name] = self.facts.readers(self.facts.source(e.name))
        unit = next(
            (p.unit for r in readers if (p := plans[r.index]) is not None),
            next(iter(self.chains)),
        )
        key = ("view", e.index, unit)
        found = self.cache.get(key)
        if found is not None:
            return found
        sizes = self.facts.sizes
        loops = tuple(Loop(r, sizes[r], None, self.root) for r in e.ranks)
        homes = tuple((t, self.root) for t in e.tensors)
        plan = EinsumMap(unit, loops, homes)
        self.cache[key] = plan
        return plan
