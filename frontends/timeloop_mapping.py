"""Reading a Timeloop mapping (a list of directives) into one `LevelMapping` per storage level.

As timeloop-model does: factors default to 1 and a factor of 0 means the whole dimension;
permutations are innermost first and are padded with the missing dimensions; in a spatial
directive the first `split` dimensions of the permutation go to X (all of them by default),
the rest to Y; data spaces are kept unless bypassed; later directives replace earlier ones.
Factors and permutations are strings (`M=4 N=4`, `NMK`) or, as the v0.4 front end writes them,
lists (`[M=4, N=4]`, `[N, M, K]`).

An architecture in the front end's node form changes two things: a spatial directive for a
container or component that fans out is one for the dummy level before it, which keeps
nothing; and when the mapping is in the input, as the front end reads it, the constraints of
its nodes are directives too, and directives for one level and type combine (a factor or a
permutation given twice differently is an error) instead of replacing each other."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_types import (
    Architecture,
    LevelMapping,
    MappedLoop,
    Problem,
    TimeloopMapping,
)

_FACTOR = re.compile(r"([A-Za-z]+)\s*=*\s*([0-9]+)(,([0-9]+))?")
_BOUND = re.compile(r"[A-Za-z]+\s*[<>]=?\s*[0-9]+")
_UNSUPPORTED_KEYS = (
    "no_link_transfer",
    "no_reuse",
    "no_temporal_reuse",
    "no_multicast_no_reduction",
    "rmw_first_update",
    "no_coalesce",
)


@dataclass(frozen=True)
class Directive:
    """A mapping directive: the level or node it names, its type (`temporal`, `spatial`,
    `dataspace`, ...), its fields, and the field to blame for a bad target."""

    target: str
    kind: str
    field: Field
    target_field: Field | None = None

    def blame_target(self) -> Field:
        """The field an error about the target names."""
        return self.target_field or self.field


@dataclass(frozen=True)
class _Loops:
    """A level's temporal or spatial loops as directives gave them: factors, the permutation
    (innermost first; None when not given) and, for spatial loops, the X/Y split."""

    factors: dict[str, int]
    order: list[str] | None
    split: int | None = None


@dataclass
class _Directives:
    """What the directives said about one storage level so far."""

    keep: set[str]
    temporal: _Loops | None = None
    spatial: _Loops | None = None
    decided: dict[str, bool] = field(default_factory=dict)
    """Data space -> kept, for the node form (a space kept and bypassed is an error)."""


def read_mapping(
    root: Field,
    architecture: Architecture,
    problem: Problem,
    implied: Sequence[Directive] = (),
    combine: bool = False,
) -> TimeloopMapping:
    """The mapping of `root` (a list of directives, or a mapping with key `mapping`), after the
    `implied` directives (a node-form architecture's constraints); with `combine`, directives
    for one level and type combine as the front end combines them."""
    directives = root.need("mapping") if isinstance(root.value, dict) else root
    names = [level.name for level in architecture.storage]
    everything = {space.name for space in problem.data_spaces}
    dummies = set(architecture.fanouts.values())
    per_level = {
        name: _Directives(keep=set() if name in dummies else set(everything)) for name in names
    }
    listed = [_listed(directive, names) for directive in directives.items()]
    if not listed and not implied:
        directives.fail("no mapping directives (give the mapping with --mapping FILE)")
    for directive in (*implied, *listed):
        for key in _UNSUPPORTED_KEYS:
            if directive.field.has(key):
                directive.field.get(key).fail("is not supported")
        target = _level_name(directive, architecture, names)
        state = per_level[target]
        if directive.kind == "temporal":
            loops = _Loops(
                _factors(directive.field, problem), _given_order(directive.field, problem)
            )
            state.temporal = _combined(state.temporal, loops, directive.field, combine)
        elif directive.kind == "spatial":
            if _fanout(architecture, target) == 1:
                directive.field.fail(
                    f"'{target}' has no spatial fan-out (the level below has as many instances)"
                )
            split = directive.field.get("split")
            loops = _Loops(
                _factors(directive.field, problem),
                _given_order(directive.field, problem),
                split.integer(0) if not split.is_null() else None,
            )
            state.spatial = _combined(state.spatial, loops, directive.field, combine)
        elif directive.kind in ("datatype", "bypass", "dataspace"):
            _keep_or_bypass(directive.field, state, everything, combine)
        elif directive.kind == "skew":
            directive.field.get("type").fail("skew directives are not supported")
        else:
            directive.field.get("type").fail(f"unknown directive type '{directive.kind}'")
    levels = tuple(_level(name, per_level[name], problem) for name in names)
    _check_products(directives, levels, problem)
    return TimeloopMapping(levels)


def _listed(directive: Field, names: list[str]) -> Directive:
    """A directive of the mapping list, its target as written (a level number is resolved)."""
    target = directive.need("target")
    kind = directive.need("type").text()
    if isinstance(target.value, int) and not isinstance(target.value, bool):
        index = target.integer(0)  # Timeloop numbers storage levels from the innermost
        if index >= len(names):
            target.fail(f"no storage level {index} (there are {len(names)})")
        return Directive(names[len(names) - 1 - index], kind, directive, target)
    return Directive(target.text(), kind, directive, target)


def _level_name(directive: Directive, architecture: Architecture, names: list[str]) -> str:
    """The storage level a directive is for: its target, or for a spatial directive naming
    a node that fans out, the dummy level before it."""
    target = directive.target
    if directive.kind == "spatial" and target in architecture.fanouts:
        return architecture.fanouts[target]
    if target in architecture.containers:
        directive.blame_target().fail(
            f"'{target}' is a container: it holds no data, and has spatial loops only where "
            "it fans out"
        )
    if target not in names:
        directive.blame_target().fail(
            f"unknown storage level '{target}' (levels: {', '.join(names)})"
        )
    return target


def _fanout(architecture: Architecture, name: str) -> int:
    storage = architecture.storage
    index = [level.name for level in storage].index(name)
    inner = storage[index + 1] if index + 1 < len(storage) else architecture.arithmetic
    return inner.instances // storage[index].instances


def _combined(old: _Loops | None, new: _Loops, directive: Field, combine: bool) -> _Loops:
    """`new` after `old` at one level: it replaces `old`, or in the node form adds to it."""
    if old is None or not combine:
        return new
    factors = dict(old.factors)
    for dim, factor in new.factors.items():
        if factors.get(dim, factor) != factor:
            directive.get("factors").fail(
                f"{dim}={factor} contradicts {dim}={factors[dim]} given before for this level"
            )
        factors[dim] = factor
    for name, mine, theirs in (
        ("permutation", new.order, old.order),
        ("split", new.split, old.split),
    ):
        if mine is not None and theirs is not None and mine != theirs:
            directive.get(name).fail(f"contradicts the {name} given before for this level")
    order = new.order if new.order is not None else old.order
    split = new.split if new.split is not None else old.split
    return _Loops(factors, order, split)


def _factor_text(field: Field) -> str:
    """The factors as one string (a list is joined)."""
    if isinstance(field.value, list):
        return " ".join(item.text() for item in field.items())
    return field.text().split("#", 1)[0]


def _factors(directive: Field, problem: Problem) -> dict[str, int]:
    field = directive.get("factors")
    if field.is_null():
        return {}
    text = _factor_text(field)
    bound = _BOUND.search(text)
    if bound is not None:
        field.fail(
            f"'{bound.group(0)}' bounds a factor for timeloop-mapper; timeloop-model needs "
            "each factor as DIM=N"
        )
    factors: dict[str, int] = {}
    for found in _FACTOR.finditer(text):
        dim, value = found.group(1), int(found.group(2))
        if dim not in problem.bounds:
            field.fail(f"unknown dimension '{dim}'")
        if found.group(4) is not None and int(found.group(4)) != value:
            field.fail(f"imperfect factor {dim}={value},{found.group(4)} is not supported")
        factors[dim] = problem.bounds[dim] if value == 0 else value
    leftover = _FACTOR.sub("", text).replace(",", " ").split()
    if leftover:
        field.fail(f"cannot read '{leftover[0]}' (expected DIM=FACTOR or DIMFACTOR)")
    return factors


def _given_order(directive: Field, problem: Problem) -> list[str] | None:
    """The permutation as written (innermost first), None when not given."""
    field = directive.get("permutation")
    if field.is_null():
        return None
    if isinstance(field.value, list):
        written = [item.text().strip() for item in field.items()]
    else:
        written = list(field.text().replace(" ", "").replace(",", ""))
    order: list[str] = []
    for dim in written:
        if dim not in problem.bounds:
            field.fail(f"unknown dimension '{dim}'")
        if dim in order:
            field.fail(f"dimension '{dim}' appears twice")
        order.append(dim)
    return order


def _order(given: list[str] | None, problem: Problem) -> list[str]:
    """A permutation padded with the dimensions it does not name (in the problem's order)."""
    order = given or []
    return order + [dim for dim in problem.dimensions if dim not in order]


def _keep_or_bypass(
    directive: Field, state: _Directives, everything: set[str], combine: bool
) -> None:
    for key, keep in (("keep", True), ("bypass", False)):
        for name, where in _space_names(directive.get(key), everything):
            if combine and state.decided.get(name, keep) != keep:
                where.fail(f"data space '{name}' is both kept and bypassed at this level")
            state.decided[name] = keep
            (state.keep.add if keep else state.keep.discard)(name)


def _space_names(field: Field, everything: set[str]) -> list[tuple[str, Field]]:
    """The data spaces a keep or bypass list names, each with its field."""
    elements = [field] if isinstance(field.value, str) else list(field.items())
    named = [(element.text(), element) for element in elements]
    for name, element in named:
        if name not in everything:
            element.fail(f"unknown data space '{name}'")
    return named


def _level(name: str, state: _Directives, problem: Problem) -> LevelMapping:
    temporal: tuple[MappedLoop, ...] = ()
    if state.temporal is not None:
        order = _order(state.temporal.order, problem)
        factors = state.temporal.factors
        temporal = tuple(MappedLoop(d, factors.get(d, 1), None) for d in reversed(order))
    else:
        temporal = tuple(MappedLoop(d, 1, None) for d in reversed(problem.dimensions))
    spatial: tuple[MappedLoop, ...] = ()
    if state.spatial is not None:
        order = _order(state.spatial.order, problem)
        factors = state.spatial.factors
        split = len(problem.dimensions) if state.spatial.split is None else state.spatial.split
        inner_first = [
            MappedLoop(d, factors.get(d, 1), "X" if i < split else "Y") for i, d in enumerate(order)
        ]
        spatial = tuple(reversed(inner_first))
    return LevelMapping(name, temporal, spatial, frozenset(state.keep))


def _check_products(directives: Field, levels: tuple[LevelMapping, ...], problem: Problem) -> None:
    for dim in problem.dimensions:
        product = 1
        parts: list[str] = []
        for level in levels:
            for loop in level.temporal + level.spatial:
                if loop.dim == dim:
                    product *= loop.factor
                    if loop.factor > 1:
                        parts.append(f"{loop.factor} at {level.target}")
        if product != problem.bounds[dim]:
            given = f" ({' × '.join(parts)})" if parts else ""
            directives.fail(
                f"the factors of '{dim}' multiply to {product}{given}, not its size "
                f"{problem.bounds[dim]}"
            )
