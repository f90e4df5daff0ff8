"""Reading a Timeloop mapping (a list of directives) into one `LevelMapping` per storage level.

As timeloop-model does: factors default to 1 and a factor of 0 means the whole dimension;
permutations are innermost first and are padded with the missing dimensions; in a spatial
directive the first `split` dimensions of the permutation go to X (all of them by default),
the rest to Y; data spaces are kept unless bypassed; later directives replace earlier ones."""

from __future__ import annotations

import re
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
_UNSUPPORTED_KEYS = (
    "no_link_transfer",
    "no_reuse",
    "no_temporal_reuse",
    "no_multicast_no_reduction",
    "rmw_first_update",
    "no_coalesce",
)


@dataclass
class _Directives:
    """What the directives said about one storage level so far."""

    temporal: tuple[dict[str, int], list[str]] | None = None
    spatial: tuple[dict[str, int], list[str], int] | None = None
    keep: set[str] = field(default_factory=set)


def read_mapping(root: Field, architecture: Architecture, problem: Problem) -> TimeloopMapping:
    """The mapping of `root` (a list of directives, or a mapping with key `mapping`)."""
    directives = root.need("mapping") if isinstance(root.value, dict) else root
    names = [level.name for level in architecture.storage]
    everything = {space.name for space in problem.data_spaces}
    per_level = {name: _Directives(keep=set(everything)) for name in names}
    found = False
    for directive in directives.items():
        found = True
        target = _target(directive, names)
        kind = directive.need("type").text()
        for key in _UNSUPPORTED_KEYS:
            if directive.has(key):
                directive.get(key).fail("is not supported")
        state = per_level[target]
        if kind == "temporal":
            state.temporal = (_factors(directive, problem), _permutation(directive, problem))
        elif kind == "spatial":
            if _fanout(architecture, target) == 1:
                directive.fail(
                    f"'{target}' has no spatial fan-out (the level below has as many instances)"
                )
            split = directive.get("split")
            axis_split = split.integer(0) if not split.is_null() else len(problem.dimensions)
            state.spatial = (
                _factors(directive, problem),
                _permutation(directive, problem),
                axis_split,
            )
        elif kind in ("datatype", "bypass", "dataspace"):
            for key, keep in (("keep", True), ("bypass", False)):
                for name in _space_names(directive.get(key), everything):
                    (state.keep.add if keep else state.keep.discard)(name)
        elif kind == "skew":
            directive.get("type").fail("skew directives are not supported")
        else:
            directive.get("type").fail(f"unknown directive type '{kind}'")
    if not found:
        directives.fail("no mapping directives (give the mapping with --mapping FILE)")
    levels = tuple(_level(name, per_level[name], problem) for name in names)
    _check_products(directives, levels, problem)
    return TimeloopMapping(levels)


def _target(directive: Field, names: list[str]) -> str:
    target = directive.need("target")
    if isinstance(target.value, int) and not isinstance(target.value, bool):
        index = target.integer(0)  # Timeloop numbers storage levels from the innermost
        if index >= len(names):
            target.fail(f"no storage level {index} (there are {len(names)})")
        return names[len(names) - 1 - index]
    name = target.text()
    if name not in names:
        target.fail(f"unknown storage level '{name}' (levels: {', '.join(names)})")
    return name


def _fanout(architecture: Architecture, name: str) -> int:
    storage = architecture.storage
    index = [level.name for level in storage].index(name)
    inner = storage[index + 1] if index + 1 < len(storage) else architecture.arithmetic
    return inner.instances // storage[index].instances


def _factors(directive: Field, problem: Problem) -> dict[str, int]:
    field = directive.get("factors")
    if field.is_null():
        return {}
    text = field.text().split("#", 1)[0]
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


def _permutation(directive: Field, problem: Problem) -> list[str]:
    field = directive.get("permutation")
    order: list[str] = []
    if not field.is_null():
        for char in field.text().replace(" ", ""):
            if char not in problem.bounds:
                field.fail(f"unknown dimension '{char}'")
            if char in order:
                field.fail(f"dimension '{char}' appears twice")
            order.append(char)
    return order + [dim for dim in problem.dimensions if dim not in order]


def _space_names(field: Field, everything: set[str]) -> list[str]:
    names = field.names()
    for index, name in enumerate(names):
        if name not in everything:
            element = Field(field.file, f"{field.path}[{index}]", name)
            element.fail(f"unknown data space '{name}'")
    return names


def _level(name: str, state: _Directives, problem: Problem) -> LevelMapping:
    temporal: tuple[MappedLoop, ...] = ()
    if state.temporal is not None:
        factors, order = state.temporal
        temporal = tuple(MappedLoop(d, factors.get(d, 1), None) for d in reversed(order))
    else:
        temporal = tuple(MappedLoop(d, 1, None) for d in reversed(problem.dimensions))
    spatial: tuple[MappedLoop, ...] = ()
    if state.spatial is not None:
        factors, order, split = state.spatial
        inner_first = [
            MappedLoop(d, factors.get(d, 1), "X" if i < split else "Y") for i, d in enumerate(order)
        ]
        spatial = tuple(reversed(inner_first))
    return LevelMapping(name, temporal, spatial, frozenset(state.keep))


def _check_products(directives: Field, levels: tuple[LevelMapping, ...], problem: Problem) -> None:
    for dim in problem.dimensions:
        product = 1
        for level in levels:
            for loop in level.temporal + level.spatial:
                if loop.dim == dim:
                    product *= loop.factor
        if product != problem.bounds[dim]:
            directives.fail(
                f"the factors of '{dim}' multiply to {product}, not its size {problem.bounds[dim]}"
            )
