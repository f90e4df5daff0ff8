"""The mapping space of one cascade on one architecture: how its Einsums may be cut into
kernels, which skeletons a kernel may have, what constrains an Einsum's own loops on a unit,
where a tensor may be homed, and the genomes the search starts from.

Kernels are runs of consecutive Einsums. Two Einsums must share a kernel when one reads a
running value of the other step by step (its current or previous value) or reads ahead of its
definition; a kernel has at most one iterative rank, and an Einsum reading the final value of
its kernel's running values must not iterate their rank as the pipeline does (it splits it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from einsum_opt.hardware import Architecture
from einsum_opt.transforms.map_search.chains import UnitChain, unit_chains
from einsum_opt.transforms.map_search.constraints import Constraints
from einsum_opt.transforms.map_search.facts import CURRENT, FINAL, PREVIOUS, CascadeFacts
from einsum_opt.transforms.map_search.genome import Genome, KernelPlan, OwnPlan, Piece, Realizer
from einsum_opt.transforms.map_search.own_loops import (
    Assignment,
    OwnContext,
    build_table,
    divisors,
    random_table,
    spatial_assignments,
)
from einsum_opt.transforms.map_search.plan import partition_names


@dataclass(frozen=True)
class KernelFacts:
    """What a kernel's members imply: its iterative rank (None without running values), the
    ranks its skeleton may have pieces of before and after the iterative one, and the
    members that read its running values' final values."""

    iterative: str | None
    before: tuple[str, ...]
    after: tuple[str, ...]
    final_readers: frozenset[int]


class Space:
    """The mapping space (see the module docstring)."""

    def __init__(self, facts: CascadeFacts, arch: Architecture, constraints: Constraints):
        self.facts = facts
        self.arch = arch
        self.constraints = constraints
        self.chains: dict[str, UnitChain] = unit_chains(arch)
        self.root = arch.root
        self.buffer = arch.buffer_level()
        self.realizer = Realizer(facts, self.chains, self.root, self.pieces_of)
        self.computing = [e.index for e in facts.computing()]
        self._joins = self._must_join()
        self._contexts: dict[tuple[object, ...], OwnContext] = {}
        self._assignments: dict[OwnContext, list[Assignment]] = {}
        self._kernel_facts: dict[tuple[int, ...], KernelFacts | None] = {}

    # -- kernels --------------------------------------------------------------------------

    def _must_join(self) -> set[int]:
        """Positions k (between computing Einsums k and k+1 of `computing`) that no kernel
        boundary may fall on."""
        position = {index: k for k, index in enumerate(self.computing)}
        blocked: set[int] = set()
        for e in self.facts.computing():
            for read in e.reads:
                source = self.facts.producer(self.facts.source(read.tensor))
                if source is None or source.view or source.index == e.index:
                    continue
                join = read.kind in (CURRENT, PREVIOUS) or source.index > e.index
                if join:
                    a, b = sorted((position[source.index], position[e.index]))
                    blocked.update(range(a, b))
        return blocked

    def kernel_facts(self, members: Sequence[int]) -> KernelFacts | None:
        """The facts of a kernel of `members`, or None when they cannot form one (kept)."""
        key = tuple(members)
        if key not in self._kernel_facts:
            self._kernel_facts[key] = self._kernel_facts_of(key)
        return self._kernel_facts[key]

    def _kernel_facts_of(self, members: Sequence[int]) -> KernelFacts | None:
        facts = self.facts
        ranks = {facts.einsums[i].iterative for i in members} - {None}
        if len(ranks) > 1:
            return None
        it = next(iter(ranks), None)
        running = [facts.einsums[i] for i in members if facts.einsums[i].iterative is not None]
        final = frozenset(
            i
            for i in members
            if any(
                r.kind == FINAL
                and r.producer is not None
                and r.producer in members
                for r in facts.einsums[i].reads
            )
        )
        if it is None:
            common = self._common(members, lambda i: facts.einsums[i].ranks)
            blocked = self._blocked(members)
            return KernelFacts(None, tuple(r for r in common if r not in blocked), (), final)
        for i in final:
            e = facts.einsums[i]
            if it in e.ranks and (
                any(n in facts.declared for n in partition_names(it, 1))
            ):
                return None
        before = self._common(
            [e.index for e in running], lambda i: tuple(facts.einsums[i].tensor_ranks(
                facts.einsums[i].name))
        )
        members_with_it = [
            i for i in members if it in facts.einsums[i].ranks and i not in final
        ]
        after = self._common(members_with_it, lambda i: facts.einsums[i].ranks)
        return KernelFacts(
            it,
            tuple(r for r in before if r != it),
            tuple(r for r in after if r != it),
            final,
        )

    def _common(self, members: Sequence[int], ranks_of: object) -> tuple[str, ...]:
        """The ranks every one of `members` has, in the first member's order."""
        assert callable(ranks_of)
        lists = [tuple(ranks_of(i)) for i in members]
        if not lists:
            return ()
        first = [r for r in self.facts.einsums[members[0]].ranks if r in lists[0]]
        return tuple(r for r in first if all(r in other for other in lists))

    def _blocked(self, members: Sequence[int]) -> set[str]:
        """Ranks a member reduces whose result another member reads: no shared loop over
        them can pipeline the kernel."""
        produced = {self.facts.einsums[i].name: i for i in members}
        out: set[str] = set()
        for i in members:
            e = self.facts.einsums[i]
            for read in e.reads:
                source = produced.get(self.facts.source(read.tensor))
                if source is not None and source != i:
                    out |= self.facts.einsums[source].reduced
        return out

    def partitions(self, cuts: frozenset[int]) -> list[tuple[int, ...]] | None:
        """The kernels (member tuples) cutting `computing` after each position in `cuts`, or
        None when a cut is forbidden or a kernel cannot be formed."""
        if cuts & self._joins:
            return None
        kernels: list[tuple[int, ...]] = []
        current: list[int] = []
        for k, index in enumerate(self.computing):
            current.append(index)
            if k in cuts or k == len(self.computing) - 1:
                kernels.append(tuple(current))
                current = []
        if any(self.kernel_facts(members) is None for members in kernels):
            return None
        return kernels

    def fused_cuts(self) -> frozenset[int]:
        """The fewest cuts: a new kernel only where one cannot hold the next Einsum."""
        cuts: set[int] = set()
        start = 0
        for k in range(len(self.computing)):
            members = self.computing[start : k + 1]
            if self.kernel_facts(members) is None:
                cut = k - 1
                while cut >= start and cut in self._joins:
                    cut -= 1
                if cut < start:
                    cut = k - 1
                cuts.add(cut)
                start = cut + 1
        return frozenset(cuts)

    def cut_positions(self) -> list[int]:
        """Every position a kernel boundary may fall on."""
        return [k for k in range(len(self.computing) - 1) if k not in self._joins]

    # -- skeletons ------------------------------------------------------------------------

    def units_of(self, members: Sequence[int], genome: Genome | None = None) -> set[str]:
        """The units a kernel's members use (all their capable units without a genome)."""
        if genome is None:
            return {u for i in members for u in self.facts.einsums[i].units}
        return {own.unit for i in members if (own := genome.own[i]) is not None}

    def shared_levels(self, units: set[str]) -> list[str]:
        """The levels every unit of a kernel reaches, outermost first."""
        chains = [self.chains[u].names() for u in units]
        if not chains:
            chains = [next(iter(self.chains.values())).names()]
        return [n for n in chains[0] if all(n in c for c in chains)]

    def side(self, units: set[str]) -> int:
        """The smallest fan-out along X over the units (rows of a tile)."""
        sides = []
        for u in units:
            chain = self.chains[u]
            sides.append(max((lv.fanout[0] for lv in chain.levels), default=1))
        return min(sides, default=1)

    def initial_skeletons(self, members: Sequence[int]) -> list[tuple[Piece, ...]]:
        """Skeletons to start from: the row rank (the largest rank the skeleton may have)
        split into a row tile of the arrays' side and blocks of it (one block, or all of them
        in the pipeline), the other ranks outermost whole; the iterative rank after them."""
        if len(members) < 2:
            return [()]
        kf = self.kernel_facts(members)
        assert kf is not None
        sizes = self.facts.sizes
        units = self.units_of(members)
        levels = self.shared_levels(units)
        inner_level = self.buffer if self.buffer in levels else levels[0]
        candidates = [r for r in kf.before if kf.iterative is None or r in kf.after] or list(
            kf.before
        )
        if not candidates:
            if kf.iterative is None:
                return [()]
            return [(Piece(kf.iterative, sizes[kf.iterative], self.root),)]
        row = max(candidates, key=lambda r: (sizes[r], -candidates.index(r)))
        tile = max(d for d in divisors(sizes[row]) if d <= max(1, self.side(units)))
        blocks = sizes[row] // tile
        outer = [Piece(r, sizes[r], self.root) for r in kf.before if r != row and sizes[r] > 1]
        it = [] if kf.iterative is None else [Piece(kf.iterative, sizes[kf.iterative], self.root)]
        if kf.iterative is None:
            # Row blocks of one tile streamed, or whole rows (the row rank left to the
            # Einsums' own loops).
            blocked = [*outer, Piece(row, blocks, self.root)] if blocks > 1 else outer
            return list(dict.fromkeys([tuple(blocked), tuple(outer)]))
        out = []
        for pipelined in sorted({1, blocks}):
            rest = blocks // pipelined
            pieces = list(outer)
            if rest > 1:
                pieces.append(Piece(row, rest, self.root))
            pieces += it
            if pipelined > 1:
                pieces.append(Piece(row, pipelined, inner_level))
            out.append(tuple(pieces))
        return out

    # -- own loops ------------------------------------------------------------------------

    def context(self, kernel: KernelPlan, index: int, unit: str) -> OwnContext:
        """What Einsum `index`'s own loops must cover on `unit` in `kernel`."""
        key = (kernel, index, unit)
        found = self._contexts.get(key)
        if found is not None:
            return found
        facts = self.facts
        e = facts.einsums[index]
        chain = self.chains[unit]
        kf = self.kernel_facts(kernel.members)
        assert kf is not None
        skeleton = self.skeleton_of(kernel, index, kf)
        start = max((chain.index(p.level) for p in skeleton), default=0)
        sizes = facts.sizes
        extents: dict[str, int] = {}
        standard = set()
        for r in e.ranks:
            pieces = [p for p in skeleton if p.rank == r]
            left = sizes[r] // math.prod(p.extent for p in pieces)
            if pieces and left == 1:
                continue
            extents[r] = left
            if pieces:
                standard.add(r)
        no_spatial = set()
        for read in e.reads:
            producer = facts.einsums[read.producer] if read.producer is not None else None
            running = producer is not None and producer.iterative is not None
            if running and read.kind in (CURRENT, PREVIOUS):
                assert producer is not None and producer.iterative is not None
                no_spatial.add(producer.iterative)
        single = set()
        if e.iterative is not None and e.iterative in extents:
            single.add(e.iterative)
        split = set()
        if kf.iterative is not None and index in kf.final_readers and kf.iterative in e.ranks:
            split.add(kf.iterative)
        preference = self._spatial_preference(kernel, extents)
        ordered = tuple(sorted(extents, key=preference.index))
        found = OwnContext(
            ordered,
            tuple(extents[r] for r in ordered),
            chain,
            start,
            frozenset(standard),
            tuple((r, kernel.inner(r)) for r in sorted(standard)),
            frozenset(split),
            frozenset(single),
            frozenset(no_spatial | single),
        )
        self._contexts[key] = found
        return found

    def _spatial_preference(self, kernel: KernelPlan, extents: Mapping[str, int]) -> list[str]:
        """Ranks in the order spatial assignments try them: the skeleton's ranks (in its
        order), then the others, largest first, so that Einsums sharing tensors split them
        alike."""
        sizes = self.facts.sizes
        skeleton = list(dict.fromkeys(p.rank for p in kernel.skeleton))
        others = sorted((r for r in extents if r not in skeleton), key=lambda r: (-sizes[r], r))
        return [r for r in reversed(skeleton) if r in extents] + others

    def pieces_of(self, kernel: KernelPlan, index: int) -> tuple[Piece, ...]:
        """The skeleton pieces Einsum `index` has in `kernel`."""
        kf = self.kernel_facts(kernel.members)
        assert kf is not None
        return self.skeleton_of(kernel, index, kf)

    def skeleton_of(self, kernel: KernelPlan, index: int, kf: KernelFacts) -> tuple[Piece, ...]:
        """The skeleton pieces Einsum `index` has (a final-value reader skips the iterative
        rank's piece)."""
        e = self.facts.einsums[index]
        skip = kf.iterative if index in kf.final_readers else None
        return tuple(p for p in kernel.skeleton if p.rank in e.ranks and p.rank != skip)

    def spatial_options(self, ctx: OwnContext) -> list[Assignment]:
        """The spatial assignments of a context, best first (kept per context)."""
        found = self._assignments.get(ctx)
        if found is None:
            permits = partial(self.constraints.permits, ctx)
            found = [
                a
                for a in spatial_assignments(ctx, permits=permits)
                if self.constraints.allows_spatial(ctx, a)
            ]
            if not found:
                found = [()]
            self._assignments[ctx] = found
        return found

    def default_own(self, kernel: KernelPlan, index: int, unit: str, variant: int = 0) -> OwnPlan:
        """An Einsum's own loops on `unit`: the `variant`-th best spatial assignment, every
        other trip in time at the skeleton's deepest level."""
        ctx = self.context(kernel, index, unit)
        options = self.spatial_options(ctx)
        assignment = options[min(variant, len(options) - 1)]
        level = ctx.start
        # Einsums fused in one kernel iterate their own ranks over tiles of the global
        # buffer (one Einsum alone starts from the root and moves its loops in).
        names = ctx.chain.names()
        fanouts = [i for i in ctx.chain.fanout_levels() if i >= ctx.start]
        if len(kernel.members) > 1 and self.buffer in names:
            at = names.index(self.buffer)
            if at >= ctx.start and (not fanouts or at <= fanouts[0]):
                level = at
        table = build_table(ctx, assignment, dict.fromkeys(ctx.ranks, level))
        table = self.constraints.adjust(ctx, table)
        return OwnPlan(unit, table.loops(ctx.chain), self.constrained_keeps(kernel, index, unit))

    def constrained_keeps(
        self, kernel: KernelPlan, index: int, unit: str
    ) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The kept chains the constraints impose on Einsum `index`'s tensors homed at the
        root (cascade inputs and outputs), where they differ from the default."""
        if not self.constraints.mapspace.levels:
            return ()
        del kernel
        facts = self.facts
        names = self.chains[unit].names()
        out = []
        for tensor in facts.einsums[index].tensors:
            if tensor not in facts.inputs and tensor not in facts.outputs:
                continue
            default = self.default_chain(unit, self.root)
            chain = self.constraints.kept(tensor, default, names)
            if chain != default:
                out.append((tensor, chain))
        return tuple(out)

    def kernel_plan(
        self,
        members: Sequence[int],
        skeleton: Sequence[Piece],
        splits: Sequence[tuple[str, int]] = (),
    ) -> KernelPlan:
        """A kernel's plan with its splits fitted to its skeleton: a rank keeps its inner
        trips when they still divide what it has left (else their largest divisor that
        does); a rank without one gets the largest divisor of what it has left that fits the
        arrays' side."""
        sizes = self.facts.sizes
        given = dict(splits)
        side = self.side(self.units_of(members))
        out = []
        for rank in dict.fromkeys(p.rank for p in skeleton):
            left = sizes[rank] // math.prod(p.extent for p in skeleton if p.rank == rank)
            if left == 1:
                continue
            inner = given.get(rank)
            if inner is None:
                inner = max(d for d in divisors(left) if d <= max(side, 1))
            elif left % inner:
                inner = math.gcd(inner, left)
            out.append((rank, inner))
        return KernelPlan(tuple(members), tuple(skeleton), tuple(out))

    def regroup(self, genome: Genome, kernels: Sequence[tuple[int, ...]]) -> Genome:
        """`genome` with the Einsums cut into `kernels`: a kernel whose members did not
        change keeps its plan, a new one starts from its first initial skeleton with its
        members' own loops rebuilt on their units."""
        old = {k.members: k for k in genome.kernels}
        plans = []
        own = list(genome.own)
        for members in kernels:
            if members in old:
                plans.append(old[members])
                continue
            kernel = self.kernel_plan(members, self.initial_skeletons(members)[0])
            plans.append(kernel)
            for index in members:
                current = own[index]
                assert current is not None
                fresh = self.default_own(kernel, index, current.unit)
                own[index] = OwnPlan(fresh.unit, fresh.loops, current.keeps)
        return Genome(tuple(plans), tuple(own), genome.homes)

    def default_chain(self, unit: str, home: str) -> tuple[str, ...]:
        """The levels keeping a tensor homed at `home` by default on `unit`'s chain: the
        home and every level below it that keeps tensors by default."""
        chain = self.chains[unit]
        top = chain.index(home)
        return (home,) + tuple(
            lv.name for lv in chain.levels[top + 1 :] if lv.default_keep
        )

    def random_own(self, kernel: KernelPlan, index: int, rng: random.Random) -> OwnPlan:
        """An Einsum's own loops drawn with `rng` (`own_loops.random_table`) on a random unit
        that can run it, brought into the constraints; its default loops when the draw breaks
        them."""
        unit = rng.choice(self.facts.einsums[index].units)
        ctx = self.context(kernel, index, unit)
        options = self.spatial_options(ctx)
        assignment = options[min(rng.randrange(len(options)), rng.randrange(len(options)))]
        table = random_table(ctx, rng, assignment)
        table = self.constraints.adjust(ctx, table)
        if not self.constraints.allows(ctx, table):
            return self.default_own(kernel, index, unit)
        keeps = self.constrained_keeps(kernel, index, unit)
        return OwnPlan(unit, table.loops(ctx.chain), keeps)

    def random_genome(self, rng: random.Random) -> Genome:
        """A genome drawn with `rng`: the fewest kernel cuts, a random initial skeleton per
        kernel, random own loops for every Einsum; homes left to the repair."""
        kernels = self.partitions(self.fused_cuts())
        assert kernels is not None
        plans = tuple(
            self.kernel_plan(m, rng.choice(self.initial_skeletons(m))) for m in kernels
        )
        own: list[OwnPlan | None] = [None] * len(self.facts.einsums)
        for kernel in plans:
            for index in kernel.members:
                own[index] = self.random_own(kernel, index, rng)
        return Genome(plans, tuple(own), ())

    # -- homes ----------------------------------------------------------------------------

    def intermediates(self, genome: Genome) -> list[str]:
        """Tensors produced and read inside one kernel (the ones with a home to choose)."""
        facts = self.facts
        crossing = self.realizer.crossing(genome)
        return [
            e.name
            for e in facts.computing()
            if e.name not in facts.outputs and e.name not in crossing
        ]

    def home_options(self, genome: Genome, tensor: str) -> list[str]:
        """The levels `tensor` may be homed at: those every unit touching it reaches, root
        first (legality of the loops above it is checked on the candidate)."""
        facts = self.facts
        k = genome.kernel_of(facts.producer(tensor).index)  # type: ignore[union-attr]
        members = genome.kernels[k].members
        units = {
            own.unit
            for i in members
            if tensor in facts.einsums[i].tensors and (own := genome.own[i]) is not None
        }
        return self.shared_levels(units)

    # -- genomes --------------------------------------------------------------------------

    def initial_genomes(self) -> Iterator[Genome]:
        """The genomes the search starts from (see `initial_skeletons`), each Einsum on each
        of the units that can run it best by PEs, homed as deep as its units allow."""
        for cuts in dict.fromkeys([self.fused_cuts(), frozenset(self.cut_positions())]):
            kernels = self.partitions(cuts)
            if kernels is None:
                continue
            for skeletons in _product([self.initial_skeletons(m) for m in kernels]):
                plans = tuple(
                    self.kernel_plan(m, s) for m, s in zip(kernels, skeletons, strict=True)
                )
                for choice in ("pes", "first"):
                    yield self._genome(plans, choice)

    def _genome(self, kernels: tuple[KernelPlan, ...], choice: str) -> Genome:
        own: list[OwnPlan | None] = [None] * len(self.facts.einsums)
        for kernel in kernels:
            for index in kernel.members:
                units = self.facts.einsums[index].units
                plans = [self.default_own(kernel, index, u) for u in units]
                if choice == "pes":
                    best = max(plans, key=lambda p: (_spatial_product(p), -plans.index(p)))
                else:
                    best = plans[0]
                own[index] = best
        return Genome(kernels, tuple(own), ())


def _spatial_product(plan: OwnPlan) -> int:
    return math.prod(lp.extent for lp in plan.loops if lp.axis is not None)


def _product(
    lists: Sequence[Sequence[tuple[Piece, ...]]],
) -> Iterator[tuple[tuple[Piece, ...], ...]]:
    if not lists:
        yield ()
        return
    for head in lists[0]:
        for rest in _product(lists[1:]):
            yield (head, *rest)
