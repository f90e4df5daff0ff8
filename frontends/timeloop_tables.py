"""Reading Accelergy's energy and area reference tables (ERT/ART, versions 0.3 and 0.4).

A table entry is named by its place in the architecture (`system.PE[0..15].RF[1..16]`); as in
Timeloop, the component is the last dotted part without its range. An action listed several
times (one entry per argument set) costs the largest of its energies."""

from __future__ import annotations

from einsum_opt.frontends.timeloop_arch import base_name
from einsum_opt.frontends.timeloop_fields import Field
from einsum_opt.frontends.timeloop_types import Art, Ert

_VERSIONS = ("0.3", "0.4")


def component_name(hierarchical: str) -> str:
    """`top.PE[0..3].buffer[1..16]` → `buffer`."""
    last = hierarchical
    depth = 0
    for index, char in enumerate(hierarchical):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "." and depth == 0:
            last = hierarchical[index + 1 :]
    return base_name(last)


def _tables(root: Field, key: str) -> Field:
    table = root.get(key) if isinstance(root.value, dict) and root.has(key) else root
    version = table.need("version")
    if version.text() not in _VERSIONS:
        version.fail(f"unsupported {key} version {version.text()} (supported: 0.3, 0.4)")
    return table.need("tables")


def read_ert(root: Field) -> Ert:
    """component → action → pJ."""
    ert: dict[str, dict[str, float]] = {}
    for entry in _tables(root, "ERT").items():
        actions = ert.setdefault(component_name(entry.need("name").text()), {})
        for action in entry.need("actions").items():
            name = action.need("name").text()
            energy = action.get("energy").number() if action.has("energy") else 0.0
            actions[name] = max(actions.get(name, 0.0), energy)
    return ert


def read_art(root: Field) -> Art:
    """component → µm² per instance."""
    art: dict[str, float] = {}
    for entry in _tables(root, "ART").items():
        art[component_name(entry.need("name").text())] = entry.need("area").number()
    return art
