"""The Pareto front of a search: the costed candidates that fit and that no other beats on
latency, energy and buffer size at once; written as CSV and drawn as a plot.

`pareto.csv` has one row per front point: `cascade, latency_cycles, latency_s, energy_pj,
buffer_bytes, edp, chosen` (`chosen` marks the mapping map-search attached), sorted by
latency. `pareto.png` draws energy over latency, one panel per cascade, each point coloured by
its buffer size, the chosen one circled.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from einsum_opt.support.atomic_write import write_atomically
from einsum_opt.transforms.map_search.compose import Cost

COLUMNS = (
    "cascade",
    "latency_cycles",
    "latency_s",
    "energy_pj",
    "buffer_bytes",
    "edp",
    "chosen",
)
"""The columns of `pareto.csv`."""


@dataclass(frozen=True)
class FrontPoint:
    """One point of a front: which cascade, its cost, its latency in seconds, and whether it
    is the mapping that was attached."""

    cascade: str
    cost: Cost
    seconds: float
    chosen: bool


def front(costs: Sequence[Cost]) -> list[int]:
    """The positions of the non-dominated costs (lower latency, energy and buffer are better;
    of equal points the first), sorted by latency."""
    keys = [(c.latency, c.energy_pj, float(c.buffer_bytes)) for c in costs]
    order = sorted(range(len(keys)), key=lambda i: (keys[i], i))
    kept: list[int] = []
    for i in order:
        a = keys[i]
        if any(all(x <= y for x, y in zip(keys[j], a, strict=True)) for j in kept):
            continue
        kept.append(i)
    return kept


def write_front(directory: Path, points: Sequence[FrontPoint]) -> None:
    """Write `pareto.csv` and `pareto.png` into `directory` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for p in points:
        writer.writerow(
            [
                p.cascade,
                p.cost.cycles,
                repr(p.seconds),
                repr(p.cost.energy_pj),
                p.cost.buffer_bytes,
                repr(p.cost.edp),
                int(p.chosen),
            ]
        )
    data = text.getvalue().encode()

    def write_csv(out: BinaryIO) -> None:
        out.write(data)

    write_atomically(directory / "pareto.csv", write_csv)
    write_atomically(directory / "pareto.png", lambda f: _plot(points, f))


def _plot(points: Sequence[FrontPoint], out: BinaryIO) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cascades = list(dict.fromkeys(p.cascade for p in points)) or ["(none)"]
    figure = Figure(figsize=(5.5 * len(cascades), 4.2))
    axes = figure.subplots(1, len(cascades), squeeze=False)[0]
    for ax, name in zip(axes, cascades, strict=True):
        mine = [p for p in points if p.cascade == name]
        xs = [p.seconds for p in mine]
        ys = [p.cost.energy_pj for p in mine]
        sizes = [p.cost.buffer_bytes for p in mine]
        drawn = ax.scatter(xs, ys, c=sizes, cmap="viridis", s=28, zorder=2)
        for p in mine:
            if p.chosen:
                ax.scatter([p.seconds], [p.cost.energy_pj], s=140, facecolors="none",
                           edgecolors="#c44e52", linewidths=1.6, zorder=3, label="chosen")
        ax.set_title(f"@{name}: Pareto front ({len(mine)} points)")
        ax.set_xlabel("latency (s)")
        ax.set_ylabel("energy (pJ)")
        ax.grid(True, alpha=0.3)
        if any(p.chosen for p in mine):
            ax.legend(loc="upper right", fontsize=8)
        figure.colorbar(drawn, ax=ax, label="global buffer peak (bytes)")
    figure.tight_layout()
    figure.savefig(out, format="png", dpi=110)
