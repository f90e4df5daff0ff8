"""Reading a Timeloop input's `architecture_constraints` and `mapspace_constraints` (lists of
directives, or mappings with `targets`) into `MapspaceConstraints`.

As Timeloop's mapper reads them: a `temporal` directive fixes the factors it lists at its
level and, with `permutation`, the innermost loops there (innermost first); a `spatial`
directive fixes its factors and sends the first `split` dimensions of its permutation to X, the
rest to Y; `bypass` (or `datatype`) keeps and bypasses data spaces. Directives on the same
level add up; a later one replaces what an earlier one fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_mapping import _factors, _target
from einsum_opt.frontends.timeloop_types import Architecture, Problem
from einsum_opt.hardware.mapspace import LevelConstraints, MapspaceConstraints

KEYS = ("architecture_constraints", "mapspace_constraints")
"""The sections of a Timeloop input holding constraints."""


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
    document: Field, architecture: Architecture, problem: Problem
) -> MapspaceConstraints:
    """The constraints of every section of `document` that has some."""
    names = [level.name for level in architecture.storage]
    state = {name: _Level() for name in names}
    for key in KEYS:
        if not document.has(key):
            continue
        section = document.get(key)
        directives = section.get("targets") if isinstance(section.value, dict) else section
        if directives.is_null():
            continue
        for directive in directives.items():
            _read(directive, names, problem, state)
    return MapspaceConstraints(
        tuple(state[n].constraints(n) for n in names if state[n].said)
    )


def _read(directive: Field, names: list[str], problem: Problem, state: dict[str, _Level]) -> None:
    level = _target(directive, names)
    kind = directive.need("type").text()
    into = state[level]
    if kind == "temporal":
        into.temporal = {d.upper(): f for d, f in _factors(directive, problem).items()}
        order = _permutation(directive, problem)
        if order:
            into.order = tuple(d.upper() for d in order)
    elif kind == "spatial":
        into.spatial = {d.upper(): f for d, f in _factors(directive, problem).items()}
        order = _permutation(directive, problem)
        if order:
            split_field = directive.get("split")
            split = split_field.integer(0) if not split_field.is_null() else len(order)
            into.spatial_x = frozenset(d.upper() for d in order[:split])
            into.spatial_y = frozenset(d.upper() for d in order[split:])
    elif kind in ("bypass", "datatype", "dataspace"):
        spaces = {s.name for s in problem.data_spaces}
        for key in ("keep", "bypass"):
            listed = directive.get(key)
            named = listed.names()
            for index, name in enumerate(named):
                if name not in spaces:
                    Field(listed.file, f"{listed.path}[{index}]", name).fail(
                        f"unknown data space '{name}'"
                    )
            if key == "keep":
                into.keep = into.keep | frozenset(named)
                into.bypass = into.bypass - frozenset(named)
            else:
                into.bypass = into.bypass | frozenset(named)
                into.keep = into.keep - frozenset(named)
    elif kind in ("max_overbooking", "utilization"):
        return
    else:
        directive.get("type").fail(f"unknown constraint type '{kind}'")
    into.said = True


def _permutation(directive: Field, problem: Problem) -> list[str]:
    """The dimensions a permutation lists, innermost first (not padded: the others are
    free)."""
    field = directive.get("permutation")
    if field.is_null():
        return []
    order: list[str] = []
    for char in field.text().replace(" ", "").replace(",", ""):
        if char not in problem.bounds:
            field.fail(f"unknown dimension '{char}'")
        if char in order:
            field.fail(f"dimension '{char}' appears twice")
        order.append(char)
    return order
