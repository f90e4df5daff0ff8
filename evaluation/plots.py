"""The evaluation's figures, in the style of the paper's: utilisation of both arrays; attention
speedup and energy, and end-to-end speedup, normalised to unfused and to FLAT; and attention
energy by component for FLAT and FuseMax. Every bar carries its value; a normalised figure
draws the baseline as a reference line at 1, named in the legend. PNG, SVG or PDF
(matplotlib's Agg backend).

matplotlib is imported only when a figure is drawn, so importing this module is cheap.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from einsum_opt.evaluation.summary import Metric, index_results, mean_utilization
from einsum_opt.evaluation.sweep import Result
from einsum_opt.evaluation.workloads import CONFIGS, format_length
from einsum_opt.support.atomic_write import write_atomically

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FORMATS", "FIGURES", "format_length", "write_plots"]

BASELINE = "unfused"
"""The configuration that the first set of speedups and energies is normalised to."""

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
"""File formats the figures can be written in."""

LABELS: dict[str, str] = {
    "unfused": "Unfused",
    "flat": "FLAT",
    "cascade": "+Cascade",
    "architecture": "+Architecture",
    "fusemax": "FuseMax",
    "searched": "map-search",
}
"""Legend labels of the configurations, as in the paper's figures."""

BREAKDOWN_CONFIGS: tuple[str, ...] = ("flat", "fusemax")
"""The configurations the energy breakdown compares (normalised to the first)."""

_COLORS = ("#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")
_COMPONENT_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


@dataclass(frozen=True)
class RatioFigure:
    """A figure of one metric of every configuration relative to a baseline configuration."""

    stem: str
    part: str  # "attention" or "end2end"
    metric: Metric
    speedup: bool  # baseline / configuration (True) or configuration / baseline
    baseline: str
    log: bool

    def title(self) -> str:
        """`Attention speedup over unfused`, `Attention energy relative to FLAT`, ..."""
        what = {"attention": "Attention", "end2end": "End-to-end"}[self.part]
        kind = "speedup" if self.speedup else "energy"
        return f"{what} {kind} {self.relation()} {LABELS.get(self.baseline, self.baseline)}"

    def relation(self) -> str:
        """`over` for a speedup, `relative to` for an energy."""
        return "over" if self.speedup else "relative to"


RATIO_FIGURES: tuple[RatioFigure, ...] = (
    RatioFigure("attention_speedup", "attention", "latency_s", True, "unfused", True),
    RatioFigure("attention_energy", "attention", "energy_pj", False, "unfused", False),
    RatioFigure("end2end_speedup", "end2end", "latency_s", True, "unfused", True),
    RatioFigure("attention_speedup_vs_flat", "attention", "latency_s", True, "flat", True),
    RatioFigure("attention_energy_vs_flat", "attention", "energy_pj", False, "flat", False),
    RatioFigure("end2end_speedup_vs_flat", "end2end", "latency_s", True, "flat", True),
)
"""The normalised figures: speedups on a log axis, energies on a linear one."""

FIGURES: tuple[str, ...] = (
    "utilization",
    *(f.stem for f in RATIO_FIGURES),
    "energy_breakdown",
)
"""The figure file names (without the format's extension)."""


def _color(config: str) -> str:
    """A configuration's colour, the same in every figure."""
    index = CONFIGS.index(config) if config in CONFIGS else len(CONFIGS)
    return _COLORS[index % len(_COLORS)]


def _value_text(value: float) -> str:
    if math.isnan(value):
        return ""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _grouped_bars(
    ax: Axes, groups: Sequence[str], series: dict[str, list[float]], *, log: bool = False
) -> None:
    """One group of bars per entry of `groups`, one bar per series (NaN draws no bar), each
    labelled with its value."""
    width = 0.8 / max(len(series), 1)
    for i, (config, values) in enumerate(series.items()):
        offsets = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(
            offsets, values, width, label=LABELS.get(config, config), color=_color(config)
        )
        _label_bars(ax, bars, values)
    ax.set_xticks(range(len(groups)), list(groups))
    if log:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        # plain numbers (0.5, 1, 2, 5, 10) read better than powers of ten for ratios
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(axis="y", which="major", alpha=0.3)
    ax.set_axisbelow(True)


def _label_bars(ax: Axes, bars: object, values: Sequence[float]) -> None:
    """Each bar's value above it, small and upright so that neighbours do not overlap."""
    ax.bar_label(
        bars,  # type: ignore[arg-type]
        labels=[_value_text(v) for v in values],
        fontsize=5,
        rotation=90,
        padding=1.5,
    )


def _round_down_125(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above `value` (> 0), where a log axis
    starts so that its lowest bar is visible and its first tick is labelled."""
    decade = 10.0 ** math.floor(math.log10(value))
    return next(m * decade for m in (5, 2, 1) if m * decade <= value * (1 + 1e-12))


def _new_figure(panels: int, *, sharey: bool) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * panels + 1, 3.6), layout="constrained")
    axes = figure.subplots(1, panels, sharey=sharey, squeeze=False)[0]
    return figure, list(axes)


def _save(figure: Figure, path: Path, file_format: str) -> Path:
    from matplotlib import rc_context

    def write(file: BinaryIO) -> None:
        with rc_context({"svg.hashsalt": "einsum-eval"}):  # the same ids every time
            figure.savefig(file, format=file_format, dpi=120, metadata=_METADATA[file_format])

    write_atomically(path, write)
    return path


# Without a date or a software version, the same results give byte-identical files.
_METADATA: dict[str, dict[str, str | None]] = {
    "png": {"Software": None},
    "svg": {"Date": None, "Creator": None},
    "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
}


def _legend(figure: Figure, ax: Axes, columns: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=max(columns, 1))


def utilization_figure(attention: Sequence[Result]) -> Figure:
    """Mean attention utilisation of the 2D and the 1D array per model (and over all models),
    one bar per configuration."""
    models = list(dict.fromkeys(r.model for r in attention))
    configs = list(dict.fromkeys(r.config for r in attention))
    per_model = {m: mean_utilization(r for r in attention if r.model == m) for m in models}
    overall = mean_utilization(attention)
    figure, axes = _new_figure(2, sharey=True)
    for ax, array in zip(axes, ("2d", "1d"), strict=True):
        series = {
            c: [getattr(per_model[m][c], f"util_{array}") for m in models]
            + [getattr(overall[c], f"util_{array}")]
            for c in configs
        }
        _grouped_bars(ax, [*models, "mean"], series)
        ax.set_title(f"{array.upper()} array")
        ax.set_ylim(0, 1.15)
    axes[0].set_ylabel("utilisation")
    _legend(figure, axes[0], len(configs))
    figure.suptitle("Attention utilisation")
    return figure


def ratio_figure(results: Sequence[Result], spec: RatioFigure) -> Figure:
    """One panel per model, one group of bars per sequence length, one bar per configuration
    other than the baseline: baseline / configuration (a speedup) or configuration / baseline
    (an energy) of the metric; the baseline is the reference line at 1. The results must hold
    the baseline."""
    table = index_results(results)
    models = list(dict.fromkeys(r.model for r in results))
    lengths = sorted({r.seq_len for r in results})
    configs = [c for c in table if c != spec.baseline]
    baseline = table[spec.baseline]
    figure, axes = _new_figure(len(models), sharey=True)
    shown = [1.0]
    for ax, model in zip(axes, models, strict=True):
        series: dict[str, list[float]] = {}
        for config in configs:
            values = []
            for n in lengths:
                base, this = baseline.get((model, n)), table[config].get((model, n))
                if base is None or this is None:
                    values.append(float("nan"))
                    continue
                a, b = getattr(base, spec.metric), getattr(this, spec.metric)
                values.append(a / b if spec.speedup else b / a)
            series[config] = values
        _grouped_bars(ax, [format_length(n) for n in lengths], series, log=spec.log)
        shown += [v for values in series.values() for v in values if v > 0]
        label = f"{LABELS.get(spec.baseline, spec.baseline)} (= 1)"
        ax.axhline(1.0, color=_color(spec.baseline), linewidth=1.2, linestyle="--", label=label)
        ax.set_title(model)
        ax.set_xlabel("sequence length")
    # The panels share their y axis: one range that shows every panel's bars and labels.
    if spec.log:
        # below 1, so that the reference line is not hidden by the axis
        axes[0].set_ylim(_round_down_125(min(shown) / 1.5), max(shown) * 3)
    else:
        axes[0].set_ylim(0, max(shown) * 1.3)
    what = "speedup" if spec.speedup else "energy"
    axes[0].set_ylabel(f"{what} {spec.relation()} {LABELS.get(spec.baseline, spec.baseline)}")
    _legend(figure, axes[0], len(configs) + 1)
    figure.suptitle(spec.title())
    return figure


def breakdown_components(results: Sequence[Result]) -> list[str]:
    """The energy components the results' breakdowns name (in order of first appearance),
    leaving out those that are zero everywhere."""
    totals: dict[str, float] = {}
    for r in results:
        for component, pj in r.energy_breakdown_pj:
            totals[component] = totals.get(component, 0.0) + abs(pj)
    return [c for c, total in totals.items() if total > 0]


def breakdown_figure(attention: Sequence[Result], configs: Sequence[str]) -> Figure:
    """Attention energy by component, one stacked bar per configuration of `configs` (FLAT
    and FuseMax) at each model and length, normalised to the first configuration's total (its
    bar reaches 1); the total is written on each bar."""
    from matplotlib.patches import Patch

    table = index_results(attention)
    models = list(dict.fromkeys(r.model for r in attention))
    lengths = sorted({r.seq_len for r in attention})
    components = breakdown_components([r for c in configs for r in table[c].values()])
    colors = {c: _COMPONENT_COLORS[i % len(_COMPONENT_COLORS)] for i, c in enumerate(components)}
    hatches = {c: ("" if i == 0 else "////") for i, c in enumerate(configs)}
    figure, axes = _new_figure(len(models), sharey=True)
    width = 0.8 / len(configs)
    top = 1.0
    for ax, model in zip(axes, models, strict=True):
        for i, config in enumerate(configs):
            offsets = [g + (i - (len(configs) - 1) / 2) * width for g in range(len(lengths))]
            bottoms = [0.0] * len(lengths)
            pairs = [
                (table[configs[0]].get((model, n)), table[config].get((model, n))) for n in lengths
            ]
            scales = [
                ref.energy_pj
                if ref is not None and this is not None and ref.energy_pj
                else math.nan
                for ref, this in pairs
            ]
            totals = [
                this.energy_pj / s if this is not None else math.nan
                for (_, this), s in zip(pairs, scales, strict=True)
            ]
            for component in components:
                heights = [
                    0.0
                    if this is None or math.isnan(s)
                    else dict(this.energy_breakdown_pj).get(component, 0.0) / s
                    for (_, this), s in zip(pairs, scales, strict=True)
                ]
                ax.bar(
                    offsets,
                    heights,
                    width,
                    bottom=bottoms,
                    color=colors[component],
                    hatch=hatches[config],
                    edgecolor="white",
                    linewidth=0.3,
                )
                bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
            for x, total in zip(offsets, totals, strict=True):
                if not math.isnan(total):
                    ax.text(
                        x,
                        total,
                        f" {_value_text(total)}",
                        ha="center",
                        va="bottom",
                        fontsize=5,
                        rotation=90,
                    )
                    top = max(top, total)
        ax.set_xticks(range(len(lengths)), [format_length(n) for n in lengths])
        ax.set_title(model)
        ax.set_xlabel("sequence length")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    axes[0].set_ylim(0, top * 1.3)
    first = LABELS.get(configs[0], configs[0])
    axes[0].set_ylabel(f"energy relative to {first}")
    handles = [Patch(color=colors[c], label=c) for c in components]
    handles += [
        Patch(facecolor="white", edgecolor="black", hatch=hatches[c], label=LABELS.get(c, c))
        for c in configs
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5))
    names = " and ".join(LABELS.get(c, c) for c in configs)
    figure.suptitle(f"Attention energy by component, {names}, relative to {first}")
    return figure


def _ratio_skip_reason(results: Sequence[Result], baseline: str) -> str | None:
    configs = {r.config for r in results}
    if baseline not in configs:
        return f"the baseline configuration {baseline} was not selected"
    if configs == {baseline}:
        return f"no configuration other than {baseline} was selected"
    return None


def _breakdown_skip_reason(attention: Sequence[Result]) -> str | None:
    configs = {r.config for r in attention}
    missing = [c for c in BREAKDOWN_CONFIGS if c not in configs]
    if missing:
        return f"configuration {', '.join(missing)} was not selected"
    if not breakdown_components([r for r in attention if r.config in BREAKDOWN_CONFIGS]):
        return "the results hold no energy breakdown"
    return None


def _note_on_stderr(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def write_plots(
    attention: Sequence[Result],
    end2end: Sequence[Result],
    out_dir: Path,
    *,
    formats: Sequence[str] = ("png",),
    note: Callable[[str], None] = _note_on_stderr,
) -> list[Path]:
    """Draw every figure of `FIGURES` into `out_dir`, once per format of `formats` (`png`,
    `svg`, `pdf`; each file written atomically), and return their paths.

    A normalised figure is skipped, with a `note`, when its baseline or every other
    configuration is missing from the results; the energy breakdown when FLAT or FuseMax is.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown figure format '{unknown[0]}' (choose from {', '.join(FORMATS)})")
    drawn: list[tuple[str, Figure]] = []
    if attention:
        drawn.append(("utilization", utilization_figure(attention)))
    else:
        note("skipping utilization: no attention results")
    parts = {"attention": attention, "end2end": end2end}
    for spec in RATIO_FIGURES:
        reason = _ratio_skip_reason(parts[spec.part], spec.baseline)
        if reason is not None:
            note(f"skipping {spec.stem}: {reason}")
            continue
        drawn.append((spec.stem, ratio_figure(parts[spec.part], spec)))
    reason = _breakdown_skip_reason(attention)
    if reason is None:
        drawn.append(("energy_breakdown", breakdown_figure(attention, BREAKDOWN_CONFIGS)))
    else:
        note(f"skipping energy_breakdown: {reason}")
    return [
        _save(figure, out_dir / f"{stem}.{file_format}", file_format)
        for stem, figure in drawn
        for file_format in formats
    ]
