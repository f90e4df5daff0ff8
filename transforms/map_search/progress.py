"""The progress bar of a search on stderr: the time spent against the budget, the best
objective so far, and candidates costed (in all and per second). Shown only on an interactive
terminal; it disappears when the search ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from einsum_opt.transforms.map_search.compose import Cost
from einsum_opt.transforms.map_search.search import Progress, SearchStats


def describe(cost: Cost | None, objective: str) -> str:
    """The best cost so far, as the bar shows it."""
    if cost is None:
        return "best: -"
    fits = "" if cost.feasible else f" (overflows by {cost.overflow_bytes:,} B)"
    if objective == "energy":
        return f"best: {cost.energy_pj:.4g} pJ{fits}"
    if objective == "edp":
        return f"best: EDP {cost.edp:.4g} J*cycle{fits}"
    return f"best: {cost.cycles:,} cycles{fits}"


@contextmanager
def progress_bar(title: str, budget: float, objective: str) -> Iterator[Progress | None]:
    """A callback that updates a progress bar (None when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    console = Console(stderr=True)
    if not console.is_interactive:
        yield None
        return
    bar: Any = Bar(
        TextColumn(title),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[best]}"),
        TextColumn("{task.fields[rate]}"),
        console=console,
        transient=True,
    )
    start = time.monotonic()
    with bar:
        task = bar.add_task(title, total=budget, best="best: -", rate="")

        def update(stats: SearchStats, best: Cost | None) -> None:
            elapsed = time.monotonic() - start
            rate = stats.candidates / elapsed if elapsed > 0 else 0.0
            bar.update(
                task,
                completed=min(elapsed, budget),
                best=describe(best, objective),
                rate=f"{stats.candidates:,} candidates ({rate:,.0f}/s)",
            )

        yield update
