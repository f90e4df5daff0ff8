"""The headline numbers of the evaluation, as the paper reports them: means over the swept
(model, sequence length) points of per-point ratios, and mean utilisation per configuration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from einsum_opt.evaluation.sweep import Result

Metric = Literal["latency_s", "energy_pj", "energy_pj_physical"]
"""A cost that ratios compare."""

Point = tuple[str, int]
"""A (model, sequence length) point of the sweep."""


@dataclass(frozen=True)
class Utilization:
    """Mean utilisation of the two arrays (busy time / latency, in [0, 1])."""

    util_2d: float
    util_1d: float


@dataclass(frozen=True)
class Summary:
    """Means over the swept points; a ratio is None when one of its configurations was not
    swept. Speedups are baseline latency / FuseMax latency (> 1 means FuseMax is faster);
    energies are FuseMax energy / baseline energy (< 1 means FuseMax uses less)."""

    points: int
    """How many (model, sequence length) points the attention results cover."""
    attention_speedup_vs_flat: float | None = None
    attention_speedup_vs_unfused: float | None = None
    attention_energy_vs_flat: float | None = None
    attention_energy_physical_vs_flat: float | None = None
    end2end_speedup_vs_flat: float | None = None
    end2end_energy_vs_flat: float | None = None
    end2end_energy_physical_vs_flat: float | None = None
    utilization: Mapping[str, Utilization] = field(default_factory=dict)
    """Mean attention utilisation per configuration, in the order the results list them."""


def index_results(results: Iterable[Result]) -> dict[str, dict[Point, Result]]:
    """The results by configuration, then by (model, sequence length); ValueError if a point
    appears twice."""
    table: dict[str, dict[Point, Result]] = {}
    for r in results:
        by_point = table.setdefault(r.config, {})
        if (r.model, r.seq_len) in by_point:
            raise ValueError(f"two results for {r.model} at {r.seq_len} tokens under {r.config}")
        by_point[(r.model, r.seq_len)] = r
    return table


def mean_ratio(
    results: Iterable[Result], metric: Metric, numerator: str, denominator: str
) -> float | None:
    """Arithmetic mean over the points swept under both configurations of
    `metric(numerator) / metric(denominator)`; None if there is no such point.

    `mean_ratio(rs, "latency_s", "flat", "fusemax")` is FuseMax's mean speedup over FLAT.
    """
    table = index_results(results)
    top, bottom = table.get(numerator, {}), table.get(denominator, {})
    ratios = []
    for point in top.keys() & bottom.keys():
        below = getattr(bottom[point], metric)
        if below == 0:
            raise ValueError(f"{denominator} has zero {metric} for {point[0]} at {point[1]}")
        ratios.append(getattr(top[point], metric) / below)
    return fmean(ratios) if ratios else None


def mean_utilization(results: Iterable[Result]) -> dict[str, Utilization]:
    """Mean 2D and 1D utilisation per configuration, over that configuration's points."""
    return {
        config: Utilization(
            util_2d=fmean(r.util_2d for r in by_point.values()),
            util_1d=fmean(r.util_1d for r in by_point.values()),
        )
        for config, by_point in index_results(results).items()
    }


def summarize(attention: Sequence[Result], end2end: Sequence[Result]) -> Summary:
    """The paper's headline numbers from the attention and end-to-end results of a sweep:
    mean attention speedup of FuseMax over FLAT and over unfused, mean attention energy of
    FuseMax relative to FLAT (in the artifact's accounting and in the physical one), the same
    for end to end, and mean attention utilisation of both arrays per configuration."""
    return Summary(
        points=len({(r.model, r.seq_len) for r in attention}),
        attention_speedup_vs_flat=mean_ratio(attention, "latency_s", "flat", "fusemax"),
        attention_speedup_vs_unfused=mean_ratio(attention, "latency_s", "unfused", "fusemax"),
        attention_energy_vs_flat=mean_ratio(attention, "energy_pj", "fusemax", "flat"),
        attention_energy_physical_vs_flat=mean_ratio(
            attention, "energy_pj_physical", "fusemax", "flat"
        ),
        end2end_speedup_vs_flat=mean_ratio(end2end, "latency_s", "flat", "fusemax"),
        end2end_energy_vs_flat=mean_ratio(end2end, "energy_pj", "fusemax", "flat"),
        end2end_energy_physical_vs_flat=mean_ratio(
            end2end, "energy_pj_physical", "fusemax", "flat"
        ),
        utilization=mean_utilization(attention),
    )


_RATIO_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("attention_speedup_vs_flat", "attention speedup  fusemax/flat", True),
    ("attention_speedup_vs_unfused", "attention speedup  fusemax/unfused", True),
    ("attention_energy_vs_flat", "attention energy   fusemax/flat", False),
    ("attention_energy_physical_vs_flat", "  physical accounting", False),
    ("end2end_speedup_vs_flat", "end-to-end speedup fusemax/flat", True),
    ("end2end_energy_vs_flat", "end-to-end energy  fusemax/flat", False),
    ("end2end_energy_physical_vs_flat", "  physical accounting", False),
)
"""(Summary field, label, is a speedup) for each ratio line of the text summary."""


def render_summary(summary: Summary) -> str:
    """The summary as a small text table (ratios that were not computed are left out)."""
    lines = [f"means over {summary.points} (model, sequence length) points"]
    for name, label, speedup in _RATIO_ROWS:
        value = getattr(summary, name)
        if value is not None:
            text = f"{value:.2f}x" if speedup else f"{value:.3f}"
            lines.append(f"{label:<36}{text:>9}")
    if summary.utilization:
        title = "attention utilisation"
        width = max(len(title), *(len(c) for c in summary.utilization))
        lines.append(f"{title:<{width}}  {'2D':>6}  {'1D':>6}")
        for config, u in summary.utilization.items():
            lines.append(f"{config:<{width}}  {u.util_2d:>6.1%}  {u.util_1d:>6.1%}")
    return "\n".join(lines)
