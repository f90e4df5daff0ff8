"""The neighbours of a genome: every genome one decision away, in a fixed order.

- an Einsum on another unit (its own loops rebuilt for it), or with another spatial
  assignment, or with its own loops one step away (`own_loops.table_moves`);
- a level kept or bypassed for one tensor of one Einsum;
- an intermediate tensor homed at another level;
- a kernel's skeleton one step away: a prime factor of a rank moved between its pieces and
  what the Einsums split (a new piece where there was none), two neighbouring pieces swapped
  (a piece crossing the iterative rank is interleaved with the key steps or no longer), a
  piece one level in or out; the members' own loops rebuilt for the new remainders;
- a kernel boundary added or removed.

Homes are repaired by the search after a move (a tensor whose home became illegal moves to
its deepest legal level).
"""

from __future__ import annotations

from collections.abc import Iterator

from einsum_opt.transforms.map_search.genome import Genome, OwnPlan, Piece
from einsum_opt.transforms.map_search.own_loops import prime_factors, table_moves, table_of
from einsum_opt.transforms.map_search.space import Space


def neighbours(space: Space, genome: Genome) -> Iterator[Genome]:
    """Every genome one decision away from `genome` (see the module docstring)."""
    yield from _own_moves(space, genome)
    yield from _keep_moves(space, genome)
    yield from _home_moves(space, genome)
    for k in range(len(genome.kernels)):
        yield from _skeleton_moves(space, genome, k)
    yield from _cut_moves(space, genome)


def _own_moves(space: Space, genome: Genome) -> Iterator[Genome]:
    for kernel in genome.kernels:
        for index in kernel.members:
            own = genome.own[index]
            assert own is not None
            tensors = space.facts.einsums[index].tensors

            def changed(new: OwnPlan, index: int = index, tensors: object = tensors) -> Genome:
                return genome.with_own(index, new).without_homes(tensors)

            for unit in space.facts.einsums[index].units:
                if unit != own.unit:
                    yield changed(space.default_own(kernel, index, unit))
            ctx = space.context(kernel, index, own.unit)
            for variant in range(1, len(space.spatial_options(ctx))):
                yield changed(space.default_own(kernel, index, own.unit, variant))
            table = table_of(ctx, own.loops)
            for moved in table_moves(ctx, table):
                if space.constraints.allows(ctx, moved):
                    yield changed(OwnPlan(own.unit, moved.loops(ctx.chain), own.keeps))


def _keep_moves(space: Space, genome: Genome) -> Iterator[Genome]:
    plan = space.realizer.realize(genome)
    facts = space.facts
    for kernel in genome.kernels:
        for index in kernel.members:
            own = genome.own[index]
            assert own is not None
            e = facts.einsums[index]
            chain = space.chains[own.unit]
            keeps = dict(own.keeps)
            for tensor in e.tensors:
                if tensor in facts.views:
                    continue
                home = plan[index].home(tensor)
                if home not in chain.names():
                    continue
                top = chain.index(home)
                current = keeps.get(tensor) or space.default_chain(own.unit, home)
                for j in range(top + 1, len(chain.levels)):
                    name = chain.levels[j].name
                    if name in current:
                        changed = tuple(n for n in current if n != name)
                    else:
                        changed = tuple(
                            n for n in chain.names() if n in current or n == name
                        )
                    # One level alone reads as the default chain in a nest's levels.
                    if len(changed) < 2 or not space.constraints.allows_keep(
                        own.unit, tensor, changed
                    ):
                        continue
                    new = dict(keeps)
                    if changed == space.default_chain(own.unit, home):
                        new.pop(tensor, None)
                    else:
                        new[tensor] = changed
                    yield genome.with_own(
                        index, OwnPlan(own.unit, own.loops, tuple(sorted(new.items())))
                    )


def _home_moves(space: Space, genome: Genome) -> Iterator[Genome]:
    homes = dict(genome.homes)
    for tensor in space.intermediates(genome):
        current = homes.get(tensor, space.root)
        for level in space.home_options(genome, tensor):
            if level != current:
                yield _rehomed(space, genome.with_home(tensor, level), tensor)


def _rehomed(space: Space, genome: Genome, tensor: str) -> Genome:
    """`genome` without kept chains for `tensor` that no longer start at its home."""
    facts = space.facts
    home = dict(genome.homes)[tensor]
    own = list(genome.own)
    for e in facts.einsums:
        plan = own[e.index]
        if plan is None or tensor not in dict(plan.keeps):
            continue
        if dict(plan.keeps)[tensor][0] != home:
            keeps = tuple((t, c) for t, c in plan.keeps if t != tensor)
            own[e.index] = OwnPlan(plan.unit, plan.loops, keeps)
    return Genome(genome.kernels, tuple(own), genome.homes)


def _skeleton_moves(space: Space, genome: Genome, k: int) -> Iterator[Genome]:
    kernel = genome.kernels[k]
    if len(kernel.members) < 2:
        return
    kf = space.kernel_facts(kernel.members)
    assert kf is not None
    sizes = space.facts.sizes
    units = space.units_of(kernel.members, genome)
    levels = space.shared_levels(units)
    skeleton = list(kernel.skeleton)
    it_at = next((i for i, p in enumerate(skeleton) if p.rank == kf.iterative), None)
    inner_level = space.buffer if space.buffer in levels else levels[0]

    def rebuilt(pieces: list[Piece]) -> Genome | None:
        pieces = [p for p in pieces if p.extent > 1 or p.rank == kf.iterative]
        for a, b in zip(pieces, pieces[1:], strict=False):
            if levels.index(a.level) > levels.index(b.level):
                return None
        return _with_skeleton(space, genome, k, tuple(pieces))

    def new_piece(pieces: list[Piece], rank: str, p: int) -> Iterator[Genome]:
        """`pieces` with a new piece of `p` trips of `rank`, wherever one may go."""
        for where, level, region in _new_places(pieces, it_at, space.root, inner_level):
            if rank in (kf.before if region == "before" else kf.after):
                moved = list(pieces)
                moved.insert(where, Piece(rank, p, level))
                if (g := rebuilt(moved)) is not None:
                    yield g

    ranks = sorted(dict.fromkeys((*kf.before, *kf.after)), key=lambda r: (-sizes[r], r))
    for rank in ranks:
        if rank == kf.iterative:
            continue
        positions = [i for i, p in enumerate(skeleton) if p.rank == rank]
        remainder = kernel.remainder(rank, sizes[rank])
        # A prime factor of the remainder into a piece, or into a new piece.
        for p in sorted(set(prime_factors(remainder))):
            for i in positions:
                pieces = list(skeleton)
                pieces[i] = Piece(rank, pieces[i].extent * p, pieces[i].level)
                if (g := rebuilt(pieces)) is not None:
                    yield g
            yield from new_piece(skeleton, rank, p)
        # A prime factor of a piece back into the remainder, or into another piece.
        for i in positions:
            for p in sorted(set(prime_factors(skeleton[i].extent))):
                base = list(skeleton)
                base[i] = Piece(rank, skeleton[i].extent // p, skeleton[i].level)
                if (g := rebuilt(base)) is not None:
                    yield g
                yield from new_piece(base, rank, p)
                for j in positions:
                    if j != i:
                        moved = list(base)
                        moved[j] = Piece(rank, moved[j].extent * p, moved[j].level)
                        if (g := rebuilt(moved)) is not None:
                            yield g
    for i in range(len(skeleton) - 1):
        a, b = skeleton[i], skeleton[i + 1]
        pieces = list(skeleton)
        if kf.iterative is not None and kf.iterative in (a.rank, b.rank):
            other = b if a.rank == kf.iterative else a
            allowed = kf.before if other is b else kf.after
            if other.rank not in allowed:
                continue
            level = a.level if other is b else b.level
            if other is b:
                pieces[i], pieces[i + 1] = Piece(b.rank, b.extent, level), a
            else:
                pieces[i], pieces[i + 1] = b, Piece(a.rank, a.extent, level)
        elif a.rank != b.rank:
            pieces[i], pieces[i + 1] = b, a
        else:
            continue
        if (g := rebuilt(pieces)) is not None:
            yield g
    for n, (rank, inner) in enumerate(kernel.splits):
        outer = kernel.remainder(rank, sizes[rank]) // inner
        for p, factor in [(p, 1) for p in sorted(set(prime_factors(inner)))] + [
            (p, -1) for p in sorted(set(prime_factors(outer)))
        ]:
            splits = list(kernel.splits)
            splits[n] = (rank, inner // p if factor > 0 else inner * p)
            yield _with_skeleton(space, genome, k, kernel.skeleton, tuple(splits))
    for i, piece in enumerate(skeleton):
        at = levels.index(piece.level)
        for j in (at - 1, at + 1):
            if 0 <= j < len(levels):
                pieces = list(skeleton)
                pieces[i] = Piece(piece.rank, piece.extent, levels[j])
                if (g := rebuilt(pieces)) is not None:
                    yield g


def _new_places(
    skeleton: list[Piece], it_at: int | None, root: str, inner: str
) -> list[tuple[int, str, str]]:
    """Where a new piece may go, and whether that is before or after the iterative rank:
    just before it at the root, and last at the inner level (without an iterative rank:
    last at the root)."""
    if it_at is None:
        return [(len(skeleton), root, "before")]
    return [(it_at, root, "before"), (len(skeleton), inner, "after")]


def _with_skeleton(
    space: Space,
    genome: Genome,
    k: int,
    skeleton: tuple[Piece, ...],
    splits: tuple[tuple[str, int], ...] | None = None,
) -> Genome:
    """The genome with kernel `k`'s skeleton (and splits) replaced and its members' own loops
    rebuilt for what the skeleton leaves (each keeps its unit and kept chains)."""
    old = genome.kernels[k]
    kernel = space.kernel_plan(old.members, skeleton, old.splits if splits is None else splits)
    own = list(genome.own)
    for index in kernel.members:
        current = own[index]
        assert current is not None
        fresh = space.default_own(kernel, index, current.unit)
        own[index] = OwnPlan(fresh.unit, fresh.loops, current.keeps)
    touched = {t for i in kernel.members for t in space.facts.einsums[i].tensors}
    return Genome(genome.with_kernel(k, kernel).kernels, tuple(own), genome.homes).without_homes(
        touched
    )


def _cut_moves(space: Space, genome: Genome) -> Iterator[Genome]:
    cuts = set()
    position = {index: n for n, index in enumerate(space.computing)}
    for kernel in genome.kernels[:-1]:
        cuts.add(position[kernel.members[-1]])
    for c in space.cut_positions():
        changed = frozenset(cuts ^ {c})
        kernels = space.partitions(changed)
        if kernels is None:
            continue
        yield space.regroup(genome, kernels).without_homes(
            {t for e in space.facts.computing() for t in e.tensors}
        )
