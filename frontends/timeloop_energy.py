"""The energies and area of a Timeloop storage level and arithmetic level, looked up in the ERT
and ART the way Timeloop looks them up: a read costs the component's `read` (or
`random_read`), a fill its `write`/`fill`, an update its `update`/`write`, a compute its
`mac`/`compute`; `leak` is per cycle per instance. A `vector_access_energy` attribute
overrides the ERT for every action. An action the ERT lacks is left unspecified (None):
Timeloop would fall back to its built-in PAT estimate, which we do not have, so costing a
level that needs it is an error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from einsum_opt.frontends.timeloop_types import StorageLevel, TimeloopSpec

COMPUTE_ACTIONS = ("mac_random", "mult_random", "mac", "mult", "compute")
READ_ACTIONS = ("random_read", "read")
FILL_ACTIONS = ("random_fill", "random_write", "fill", "write")
UPDATE_ACTIONS = ("random_update", "random_write", "update", "write")


@dataclass(frozen=True)
class LevelActions:
    """pJ per vector access of each action (None: the ERT has no entry for the level), pJ
    of leakage per cycle per instance, and µm² per instance (None: no ART entry)."""

    read: float | None
    fill: float | None
    update: float | None
    leak: float
    area: float | None


def first_action(actions: Mapping[str, float] | None, names: tuple[str, ...]) -> float | None:
    """The energy of the first of `names` the table lists."""
    if actions is None:
        return None
    for name in names:
        if name in actions:
            return actions[name]
    return None


def storage_actions(spec: TimeloopSpec, level: StorageLevel) -> LevelActions:
    """The energies and area of one storage level (see the module docstring)."""
    ert = spec.ert or {}
    actions = dict(ert[level.name]) if level.name in ert else None
    read = fill = update = None
    leak = 0.0
    if level.vector_access_energy is not None:
        read = fill = update = level.vector_access_energy
    elif actions is not None:
        read = first_action(actions, READ_ACTIONS)
        fill = first_action(actions, FILL_ACTIONS)
        update = first_action(actions, UPDATE_ACTIONS)
        leak = actions.get("leak", 0.0)
    area = None if spec.art is None else spec.art.get(level.name)
    return LevelActions(read, fill, update, leak, area)


def compute_action(spec: TimeloopSpec) -> tuple[float | None, float | None]:
    """(pJ per compute, µm² per instance) of the arithmetic level: ERT and ART first, then
    the level's own `energy` and `area` attributes."""
    arithmetic = spec.architecture.arithmetic
    ert = spec.ert or {}
    table = ert.get(arithmetic.name)
    energy = first_action(table, COMPUTE_ACTIONS)
    if energy is None:
        energy = arithmetic.energy
    area = None if spec.art is None else spec.art.get(arithmetic.name)
    if area is None:
        area = arithmetic.area
    return energy, area


def missing_energy(spec: TimeloopSpec, component: str, actions: str) -> tuple[str, str]:
    """(file, message) for a component the ERT does not price: the ERT's file, or the input's
    when there is no ERT, and what the ERT has for the component."""
    if spec.ert is None or spec.ert_file is None:
        message = f"no ERT (give it with --ert FILE), so no {actions} energy for {component}"
        return spec.input_file or "<input>", message
    listed = spec.ert.get(component)
    if listed is None:
        known = ", ".join(spec.ert) or "none"
        return spec.ert_file, f"no entry for {component} (entries: {known})"
    entry = ", ".join(listed) or "no action"
    return spec.ert_file, f"no {actions} energy for {component} (its entry lists {entry})"
