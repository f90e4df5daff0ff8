"""One Einsum's nest under one candidate mapping, analysed exactly as `lower-to-dataflow`
analyses it: lowered to a `loopnest.nest` (`lower_einsum`), its data spaces, its placement on
the unit's chain, the per-nest analysis and the access ops and tiles it emits are all the
lowering's own functions. Results are kept per (Einsum, mapping), so a candidate that changes
one Einsum's mapping analyses only that Einsum again.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from xdsl.utils.exceptions import PassFailedException

from einsum_opt.costmodel.model import storage_energy
from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_spec import NestSpecError
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.hardware import Architecture, ArchitectureError
from einsum_opt.lowering.accesses import (
    ResidentTensor,
    nest_access_counts,
    resident_tensors,
    still_resident,
)
from einsum_opt.lowering.buffers import Touch
from einsum_opt.lowering.data_spaces import data_spaces
from einsum_opt.lowering.placement import PlacedNest, place_nest
from einsum_opt.transforms.map_search.facts import CascadeFacts
from einsum_opt.transforms.map_search.light_nest import EinsumShape, LightNest, as_nest, as_nests
from einsum_opt.transforms.map_search.plan import CascadeMap, EinsumMap, clashes

PLAN_CACHE = 200_000
"""How many plans are remembered by identity before that shortcut starts over."""


class IllegalMapping(Exception):
    """A candidate the lowering or the analysis rejects; the message says why."""


@dataclass(frozen=True)
class Access:
    """One `dataflow.access` of a nest with its storage energy (physical accounting)."""

    tensor: str
    label: str
    reads: int
    fills: int
    updates: int
    capacity: int
    instances: int
    energy_pj: float


@dataclass(frozen=True)
class NestResult:
    """A nest's exact analysis: the lowered nest itself (for the kernel's loop structure), its
    cycles and compute energy per invocation on its unit, its accesses, and its tiles per
    level (touches, as the nest at position 0 of its kernel). `levels` sums the accesses per
    level (label, reads, fills, updates, instances) and `energies` lists (label, tensor, pJ)
    in access order, as the cost model accumulates them."""

    nest: LightNest
    unit: str
    cycles: int
    point_pj: float
    accesses: tuple[Access, ...]
    touches: tuple[tuple[str, tuple[Touch, ...]], ...]
    levels: tuple[tuple[str, int, int, int, int], ...] = ()
    energies: tuple[tuple[str, str, float], ...] = ()
    storage_pj: float = 0.0
    placed: PlacedNest | None = None
    """The placed nest (None for a view), for what earlier nests of its kernel leave resident."""
    resident: tuple[ResidentTensor, ...] = ()
    """`resident_tensors(placed)`, kept with the result."""

    @staticmethod
    def of(
        nest: LightNest,
        unit: str,
        cycles: int,
        point_pj: float,
        accesses: tuple[Access, ...],
        touches: tuple[tuple[str, tuple[Touch, ...]], ...],
        placed: PlacedNest | None = None,
    ) -> NestResult:
        """A result with its per-level sums and energies derived from `accesses`."""
        sums: dict[str, list[int]] = {}
        for a in accesses:
            entry = sums.setdefault(a.label, [0, 0, 0, 1])
            entry[0] += a.reads
            entry[1] += a.fills
            entry[2] += a.updates
            entry[3] = max(entry[3], a.instances)
        return NestResult(
            nest,
            unit,
            cycles,
            point_pj,
            accesses,
            touches,
            tuple((label, *c) for label, c in sums.items()),  # type: ignore[misc]
            tuple((a.label, a.tensor, a.energy_pj) for a in accesses),
            sum(a.energy_pj for a in accesses),
            placed,
            () if placed is None else resident_tensors(placed),
        )


class NestEvaluator:
    """Analyses the nests of one cascade on one architecture, keeping every result."""

    def __init__(self, cascade: CascadeOp, facts: CascadeFacts, arch: Architecture):
        self.cascade = cascade.clone()
        self.facts = facts
        self.arch = arch
        self.ops: list[EinsumOp] = self.cascade.einsums()
        self.sizes = self.cascade.rank_sizes()
        self.in_memory = set(facts.inputs) | set(facts.outputs)
        self.running = dict(facts.positions)
        self.views = {v: (src, arch.root) for v, src in facts.views.items()}
        self.memo: dict[Hashable, NestResult | IllegalMapping] = {}
        self.by_plan: dict[tuple[int, int], tuple[EinsumMap, NestResult | IllegalMapping]] = {}
        self.lowered: dict[Hashable, LightNest | IllegalMapping] = {}
        self.shapes = [EinsumShape.of(op) for op in self.ops]
        self.resident_memo: dict[Hashable, NestResult | IllegalMapping] = {}
        self.analysed = 0

    def lower(self, index: int, plan: EinsumMap) -> LightNest:
        """The loop nest of Einsum `index` under `plan` (kept); IllegalMapping when the
        mapping does not fit the Einsum."""
        key = (index, plan)
        found = self.lowered.get(key)
        if found is None:
            try:
                found = self._lower(index, plan)
            except IllegalMapping as error:
                found = error
            if len(self.lowered) > PLAN_CACHE:
                self.lowered.clear()
            self.lowered[key] = found
        if isinstance(found, IllegalMapping):
            raise found
        return found

    def _lower(self, index: int, plan: EinsumMap) -> LightNest:
        e = self.facts.einsums[index]
        sizes = self.sizes
        for rank in e.ranks:
            trips = math.prod(lp.extent for lp in plan.loops if lp.rank == rank)
            if trips != sizes[rank] or not plan.pieces(rank):
                raise IllegalMapping(f"einsum {e.name}: the loops over {rank} do not cover it")
        if len(plan.loops) != len({(lp.rank, i) for i, lp in enumerate(plan.loops)}) or any(
            lp.rank not in e.ranks for lp in plan.loops
        ):
            raise IllegalMapping(f"einsum {e.name}: a loop over a rank it does not iterate")
        if clashes(plan.loops, self.facts.declared):
            raise IllegalMapping(f"einsum {e.name}: a partition loop clashes with a declared rank")
        return LightNest(self.shapes[index], plan)

    def result(self, index: int, plan: EinsumMap) -> NestResult:
        """The analysis of Einsum `index` under `plan`; IllegalMapping when it has none."""
        # Candidates share the plans of the Einsums they leave unchanged: look those up by
        # identity first (the plan is kept alive with its result).
        kept = self.by_plan.get((index, id(plan)))
        if kept is not None and kept[0] is plan:
            found = kept[1]
        else:
            if len(self.by_plan) > PLAN_CACHE:
                self.by_plan.clear()
            key = (index, plan)
            memo = self.memo.get(key)
            if memo is None:
                memo = self._analyse(index, plan)
                self.memo[key] = memo
            found = memo
            self.by_plan[(index, id(plan))] = (plan, found)
        if isinstance(found, IllegalMapping):
            raise found
        return found

    def _analyse(self, index: int, plan: EinsumMap) -> NestResult | IllegalMapping:
        self.analysed += 1
        arch = self.arch
        try:
            nest = self.lower(index, plan)
        except IllegalMapping as error:
            return error
        facts = self.facts.einsums[index]
        if facts.view:
            return NestResult.of(nest, plan.unit, 0, 0.0, (), ())
        try:
            spaces = data_spaces(as_nest(nest), self.views, self.running, self.sizes)
            placed = place_nest(arch, as_nest(nest), spaces, self.in_memory, {})
            cycles = arch.cycles(plan.unit, facts.ops)
            point_pj = arch.op_energy_pj(plan.unit, facts.ops)
            return self._analysed(nest, plan, placed, cycles, point_pj)
        except (PassFailedException, NestSpecError, ArchitectureError) as error:
            return IllegalMapping(str(error))

    def _analysed(
        self, nest: LightNest, plan: EinsumMap, placed: PlacedNest, cycles: int, point_pj: float
    ) -> NestResult:
        """The result of a placed nest: its analysis, access ops and their energies."""
        arch = self.arch
        counts = analyze(placed.spec)
        entries, touches = nest_access_counts(as_nest(nest), placed, counts)
        accesses = []
        for a in entries:
            counts3 = (a.reads, a.fills, a.updates)
            accesses.append(
                Access(
                    a.tensor,
                    a.level,
                    *counts3,
                    a.capacity,
                    a.instances,
                    storage_energy(arch, a.level, counts3, a.instances),
                )
            )
        return NestResult.of(
            nest,
            plan.unit,
            cycles,
            point_pj,
            tuple(accesses),
            tuple((label, tuple(ts)) for label, ts in touches.items()),
            placed,
        )

    def in_kernel(
        self, members: Sequence[int], plan: CascadeMap, results: Sequence[NestResult]
    ) -> list[NestResult]:
        """The results of a kernel's nests (`members`, in program order) as `kernel_accesses`
        gives them: a nest reading a tile an earlier nest of the kernel left at a level does
        not fetch it again (`still_resident`); such a nest is analysed again, kept."""
        nests = as_nests([r.nest for r in results])
        resident: dict[tuple[str, str], tuple[tuple[object, ...], int]] = {}
        out = []
        for position, (index, result) in enumerate(zip(members, results, strict=True)):
            placed = result.placed
            adjusted = placed and still_resident(
                placed, resident, nests, position, result.resident
            )
            if adjusted is None or adjusted is placed:
                out.append(result)
                continue
            found = self.resident_result(index, plan[index], result, adjusted)
            out.append(found)
        return out

    def resident_result(
        self, index: int, plan: EinsumMap, result: NestResult, adjusted: PlacedNest
    ) -> NestResult:
        """The result of Einsum `index`'s nest (`result`) placed as `adjusted` (what earlier
        nests leave resident no longer kept above), kept; IllegalMapping when the analysis
        rejects it."""
        keeps = tuple(level.keep for level in adjusted.spec.levels)
        key = (index, plan, keeps)
        found = self.resident_memo.get(key)
        if found is None:
            if len(self.resident_memo) > PLAN_CACHE:
                self.resident_memo.clear()
            try:
                found = self._analysed(
                    result.nest, plan, adjusted, result.cycles, result.point_pj
                )
            except NestSpecError as error:
                found = IllegalMapping(str(error))
            self.resident_memo[key] = found
        if isinstance(found, IllegalMapping):
            raise found
        return found
