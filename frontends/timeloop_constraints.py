"""Reading a Timeloop mapper's input's constraints into `MapspaceConstraints`: the
`architecture_constraints` and `mapspace_constraints` sections (lists of directives, or
mappings with `targets`) and, in the front end's node form, the nodes' own `constraints` and
`constraints: {targets}` (`timeloop_nodes`).

As Timeloop's mapper reads them: a `temporal` directive fixes the factors it lists at its
level and, with `permutation`, the innermost loops there (innermost first); a `spatial`
directive fixes its factors and sends the first `split` dimensions of its permutation to X, the
rest to Y (a spatial directive for a node that fans out is one for the dummy level before it);
`bypass` (or `datatype`, `dataspace`) keeps and bypasses data spaces. Directives on the same
level add up; a later one replaces what an earlier one fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_mapping import (
    Directive,
    _factors,
    _given_order,
    _level_name,
    _listed,
    _space_names,
)
from einsum_opt.frontends.timeloop_types import Architecture, Problem
from einsum_opt.hardware.mapspace import LevelConstraints, MapspaceConstraints

KEYS = ("architecture_constraints", "mapspace_constraints")
"""The sections of a Timeloop input holding constraints."""

_SEARCH_ONLY = ("max_overbooking", "max_overbooked_proportion", "utilization")
"""Constraint types that only steer timeloop-mapper's search (nothing to honour here)."""


@dataclass
class _Level:
    """What the directives said about one level so far."""

    temporal: dict[str, int] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    spatial: dict[str, int] = field(default_factory=dict)
    spatial_x: frozenset[str] | None = None
    spatial_y: frozenset[str] | None = None
    keep: frozenset[str] = frozenset()
    bypass: frozenset[str] = frozenset()
    said: bool = False

    def constraints(self, name: str) -> LevelConstraints:
        return LevelConstraints(
            name,
            tuple(sorted(self.temporal.items())),
            self.order,
            tuple(sorted(self.spatial.items())),
            self.spatial_x,
            self.spatial_y,
            self.keep,
            self.bypass,
        )


def read_constraints(
    document: Field,
    architecture: Architecture,
    problem: Problem,
    implied: Sequence[Directive] = (),
) -> MapspaceConstraints:
    """The constraints of the `implied` directives (a node-form architecture's) and of every
    section of `document` that has some."""
    names = [level.name for level in architecture.storage]
    directives = list(implied)
    for key in KEYS:
        if not document.has(key):
            continue
        section = document.get(key)
        listed = section.get("targets") if isinstance(section.value, dict) else section
        if not listed.is_null():
            directives += [_listed(item, names) for item in listed.items()]
    state = {name: _Level() for name in names}
    for directive in directives:
        if directive.kind in _SEARCH_ONLY:
            continue
        _read(directive, _level_name(directive, architecture, names), problem, state)
    return MapspaceConstraints(tuple(state[n].constraints(n) for n in names if state[n].said))


def _read(directive: Directive, level: str, problem: Problem, state: dict[str, _Level]) -> None:
    into = state[level]
    given = directive.field
    if directive.kind == "temporal":
        into.temporal = {d.upper(): f for d, f in _factors(given, problem).items()}
        order = _given_order(given, problem)
        if order:
            into.order = tuple(d.upper() for d in order)
    elif directive.kind == "spatial":
        into.spatial = {d.upper(): f for d, f in _factors(given, problem).items()}
        order = _given_order(given, problem)
        if order:
            split_field = given.get("split")
            split = split_field.integer(0) if not split_field.is_null() else len(order)
            into.spatial_x = frozenset(d.upper() for d in order[:split])
            into.spatial_y = frozenset(d.upper() for d in order[split:])
    elif directive.kind in ("bypass", "datatype", "dataspace"):
        spaces = {s.name for s in problem.data_spaces}
        for key in ("keep", "bypass"):
            named = frozenset(name for name, _ in _space_names(given.get(key), spaces))
            if key == "keep":
                into.keep, into.bypass = into.keep | named, into.bypass - named
            else:
                into.bypass, into.keep = into.bypass | named, into.keep - named
    else:
        given.get("type").fail(f"unknown constraint type '{directive.kind}'")
    into.said = True
