"""Constraints on how a cascade may be mapped onto an architecture (Timeloop's
`architecture_constraints` and `mapspace_constraints`), per storage level:

- `temporal`: a fixed product of a rank's temporal loops at the level (`{"P": 16}`; 1: no
  temporal loop over it there);
- `order`: ranks whose temporal loops at the level come innermost, innermost first (Timeloop's
  permutation; ranks not listed go outside them);
- `spatial`: a fixed product of a rank's spatial loops at the level (its fan-out);
- `spatial_x`, `spatial_y`: the ranks that may be spatial along X / Y at the level (None:
  any);
- `keep`, `bypass`: tensors that must, or must not, be kept at the level.

A module carries them as the `einsum.mapspace` attribute (JSON), which a Timeloop import
attaches beside the architecture; `map-search` honours them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation

from einsum_opt.hardware.attached import module_text_attribute

MAPSPACE_ATTR = "einsum.mapspace"
"""The module attribute holding the mapspace constraints, as JSON."""


@dataclass(frozen=True)
class LevelConstraints:
    """The constraints of one storage level (see the module docstring)."""

    level: str
    temporal: tuple[tuple[str, int], ...] = ()
    order: tuple[str, ...] = ()
    spatial: tuple[tuple[str, int], ...] = ()
    spatial_x: frozenset[str] | None = None
    spatial_y: frozenset[str] | None = None
    keep: frozenset[str] = field(default_factory=frozenset)
    bypass: frozenset[str] = field(default_factory=frozenset)

    def to_dict(self) -> dict[str, object]:
        """Plain data (fields at their defaults left out)."""
        data: dict[str, object] = {"level": self.level}
        if self.temporal:
            data["temporal"] = dict(self.temporal)
        if self.order:
            data["order"] = list(self.order)
        if self.spatial:
            data["spatial"] = dict(self.spatial)
        for key in ("spatial_x", "spatial_y"):
            value = getattr(self, key)
            if value is not None:
                data[key] = sorted(value)
        for key in ("keep", "bypass"):
            if getattr(self, key):
                data[key] = sorted(getattr(self, key))
        return data

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> LevelConstraints:
        """The constraints of `to_dict`'s data."""

        def pairs(key: str) -> tuple[tuple[str, int], ...]:
            value = data.get(key) or {}
            assert isinstance(value, Mapping)
            return tuple((str(k), int(v)) for k, v in value.items())

        def names(key: str) -> frozenset[str] | None:
            value = data.get(key)
            if value is None:
                return None
            assert isinstance(value, list)
            return frozenset(str(v) for v in value)

        order = data.get("order") or []
        assert isinstance(order, list)
        return LevelConstraints(
            str(data["level"]),
            pairs("temporal"),
            tuple(str(r) for r in order),
            pairs("spatial"),
            names("spatial_x"),
            names("spatial_y"),
            names("keep") or frozenset(),
            names("bypass") or frozenset(),
        )


@dataclass(frozen=True)
class MapspaceConstraints:
    """The constraints of every level that has some, outermost first."""

    levels: tuple[LevelConstraints, ...] = ()

    def of(self, level: str) -> LevelConstraints | None:
        """The constraints of `level` (None: it has none)."""
        return next((c for c in self.levels if c.level == level), None)

    def to_json(self) -> str:
        """As JSON text."""
        return json.dumps([c.to_dict() for c in self.levels], sort_keys=True)

    @staticmethod
    def from_json(text: str) -> MapspaceConstraints:
        """From `to_json`'s text."""
        return MapspaceConstraints(tuple(LevelConstraints.from_dict(d) for d in json.loads(text)))


def attach_mapspace(module: ModuleOp, constraints: MapspaceConstraints) -> None:
    """Make `constraints` the module's mapspace constraints."""
    module.attributes[MAPSPACE_ATTR] = StringAttr(constraints.to_json())


def attached_mapspace(op: Operation) -> MapspaceConstraints | None:
    """The mapspace constraints of the module containing `op` (None if it has none)."""
    text = module_text_attribute(op, MAPSPACE_ATTR)
    return None if text is None else MapspaceConstraints.from_json(text)
