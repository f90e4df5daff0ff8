"""Reading the numbers out of a `timeloop-model.stats.txt` (the expected values of the tests)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


@dataclass
class StatsLevel:
    """One `=== name ===` block: level-wide values and per data space values."""

    name: str
    values: dict[str, str] = field(default_factory=dict)
    spaces: dict[str, dict[str, str]] = field(default_factory=dict)

    def number(self, key: str) -> float:
        return _first_number(self.values[key])

    def space(self, space: str, key: str) -> float:
        return _first_number(self.spaces[space][key])


@dataclass
class Stats:
    """The levels (arithmetic first, as printed) and the summary."""

    levels: dict[str, StatsLevel]
    summary: dict[str, str]
    fj_per_compute: dict[str, float]
    computes: int

    @property
    def cycles(self) -> int:
        return int(self.summary["Cycles"])

    @property
    def utilization_percent(self) -> float:
        return _first_number(self.summary["Utilization"])


def _first_number(text: str) -> float:
    found = _NUMBER.search(text)
    if found is None:
        raise ValueError(f"no number in {text!r}")
    return float(found.group(0))


def read_stats(path: Path) -> Stats:
    """Parse a Timeloop stats file."""
    lines = path.read_text().splitlines()
    levels: dict[str, StatsLevel] = {}
    current: StatsLevel | None = None
    space: str | None = None
    section = ""
    summary: dict[str, str] = {}
    fj: dict[str, float] = {}
    computes = 0
    in_summary = in_fj = False
    in_levels = True
    for line in lines:
        stripped = line.strip()
        if stripped == "Summary Stats":
            in_summary, current = True, None
            continue
        if in_summary:
            if stripped.startswith("Computes ="):
                computes = int(stripped.split("=")[1])
                continue
            if stripped == "fJ/Compute":
                in_fj = True
                continue
            if in_fj and "=" in stripped:
                name, value = stripped.rsplit("=", 1)
                fj[name.strip()] = float(value)
                continue
            if ":" in stripped:
                key, value = stripped.split(":", 1)
                summary[key.strip()] = value.strip()
            continue
        if stripped == "Networks":  # level sections end here
            in_levels, current = False, None
            continue
        heading = re.fullmatch(r"=== (.+) ===", stripped)
        if heading and in_levels:
            current = StatsLevel(heading.group(1))
            levels[current.name] = current
            space, section = None, ""
            continue
        if current is None or not stripped:
            continue
        if stripped in ("SPECS", "STATS", "MAPPING"):
            section, space = stripped, None
            continue
        if section == "STATS" and stripped.endswith(":") and ":" not in stripped[:-1]:
            space = stripped[:-1]
            current.spaces[space] = {}
            continue
        if ":" in stripped:
            key, value = stripped.split(":", 1)
            target = current.spaces[space] if space is not None else current.values
            target[key.strip()] = value.strip()
    return Stats(levels, summary, fj, computes)
