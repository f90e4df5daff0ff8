"""Whether each tensor can live where a candidate homes it.

A tensor homed below the root holds, at its home, only the tile that the loops at and below
that level span. That is right only when every loop above the home that indexes the tensor
encloses the tensor's whole life: it must be one of the kernel's iteration boundaries (its
repeat and pipeline loops, or the loops its nests share as a pipeline), with the same trips in
every nest that touches the tensor, so that each iteration produces and consumes its own part.
A running value lives across the iterations of its iterative loop, so only the repeat loops
enclose its life. A spatial loop above the home splits the tensor over the home's instances:
every nest touching it must split it the same way (the same PE holds the same element). A
tensor read through a view is read at the root, so it must live there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from einsum_opt.dialects.einsum_syntax import variable_of
from einsum_opt.transforms.map_search.chains import UnitChain
from einsum_opt.transforms.map_search.compose import KernelStructure
from einsum_opt.transforms.map_search.facts import CascadeFacts
from einsum_opt.transforms.map_search.plan import CascadeMap, EinsumMap, loop_names


def illegal_home(
    facts: CascadeFacts,
    chains: Mapping[str, UnitChain],
    plan: CascadeMap,
    kernels: Sequence[tuple[Sequence[int], KernelStructure]],
    root: str,
) -> str | None:
    """The first tensor homed where it cannot live (see the module docstring), with the
    reason; None when every home is legal."""
    for members, structure in kernels:
        for index in members:
            tensor = facts.einsums[index].name
            home = plan[index].home(tensor)
            if home == root:
                continue
            why = home_problem(facts, chains, plan, members, structure, tensor, home)
            if why is not None:
                return why
    return None


def home_problem(
    facts: CascadeFacts,
    chains: Mapping[str, UnitChain],
    plan: CascadeMap,
    members: Sequence[int],
    structure: KernelStructure,
    tensor: str,
    home: str,
) -> str | None:
    """Why `tensor`, produced in the kernel of `members`, cannot live at `home` (None: it
    can), the nests' loops being those of `plan`."""
    if tensor in {facts.source(s) for s in facts.views.values()}:
        return f"{tensor} is read through a view, at the root"
    touching = [i for i in members if tensor in facts.einsums[i].tensors]
    if tensor in facts.running:
        life = set(structure.repeat_loops)
    else:
        life = set(structure.repeat_loops) | set(structure.pipeline_loops)
    return _check(facts, chains, plan, tensor, home, touching, life)


@dataclass(frozen=True)
class _NestView:
    """One nest's loops as the check needs them for one tensor: its chain's level names, its
    temporal loops (variable -> trips), and the loops over the tensor's ranks with the depth
    of their level (variable, trips, spatial signature or None)."""

    levels: tuple[str, ...]
    temporal: Mapping[str, int]
    over: tuple[tuple[int, str, int, tuple[object, ...] | None], ...]


_VIEWS: dict[tuple[int, str], tuple[EinsumMap, _NestView]] = {}


def _view(
    facts: CascadeFacts, chain: UnitChain, index: int, p: EinsumMap, tensor: str
) -> _NestView:
    key = (id(p), tensor)
    kept = _VIEWS.get(key)
    if kept is not None and kept[0] is p:
        return kept[1]
    ranks = facts.einsums[index].tensor_ranks(tensor)
    names = [variable_of(n) for n in loop_names(p.loops)]
    temporal = {n: lp.extent for n, lp in zip(names, p.loops, strict=True) if lp.axis is None}
    over = tuple(
        (
            chain.index(lp.level),
            name,
            lp.extent,
            None if lp.axis is None else (lp.rank, lp.extent, lp.axis, lp.level),
        )
        for name, lp in zip(names, p.loops, strict=True)
        if lp.extent > 1 and lp.rank in ranks
    )
    view = _NestView(chain.names(), temporal, over)
    if len(_VIEWS) > 200_000:
        _VIEWS.clear()
    _VIEWS[key] = (p, view)
    return view


def _check(
    facts: CascadeFacts,
    chains: Mapping[str, UnitChain],
    plan: CascadeMap,
    tensor: str,
    home: str,
    touching: Sequence[int],
    life: set[str],
) -> str | None:
    shared: dict[str, int] | None = None
    split: set[tuple[object, ...]] | None = None
    outer: list[tuple[str, int]] = []
    for index in touching:
        p = plan[index]
        view = _view(facts, chains[p.unit], index, p, tensor)
        if home not in view.levels:
            return f"{tensor} is homed at {home}, which unit {p.unit} does not reach"
        depth = view.levels.index(home)
        here = view.temporal
        shared = dict(here) if shared is None else {
            n: x for n, x in shared.items() if here.get(n) == x
        }
        spatial = set()
        for level, name, extent, signature in view.over:
            if level >= depth:
                continue
            if signature is None:
                outer.append((name, extent))
            else:
                spatial.add(signature)
        if split is None:
            split = spatial
        elif split != spatial:
            return f"{tensor} at {home}: its nests split it over the instances differently"
    assert shared is not None
    for name, extent in outer:
        if name not in life or shared.get(name) != extent:
            return (
                f"{tensor} at {home}: loop {name} above it does not enclose its life in the "
                "kernel"
            )
    return None
