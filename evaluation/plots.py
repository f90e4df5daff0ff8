"""The evaluation's figures, in the style of the paper's: utilisation of both arrays, attention
speedup and energy over unfused, and end-to-end speedup over unfused (PNG, matplotlib Agg).

matplotlib is imported only when a figure is drawn, so importing this module is cheap.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from einsum_opt.evaluation.csv_output import write_atomically
from einsum_opt.evaluation.summary import Metric, index_results, mean_utilization
from einsum_opt.evaluation.sweep import Result
from einsum_opt.evaluation.workloads import CONFIGS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINE = "unfused"
"""The configuration that speedups and energies are normalised to."""

LABELS: dict[str, str] = {
    "unfused": "Unfused",
    "flat": "FLAT",
    "cascade": "+Cascade",
    "architecture": "+Architecture",
    "fusemax": "FuseMax",
    "searched": "map-search",
}
"""Legend labels of the configurations, as in the paper's figures."""

_COLORS = ("#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")


def format_length(tokens: int) -> str:
    """`1K`, `64K`, `1M` for multiples of 1024 and 1024*1024; the number otherwise."""
    for suffix, unit in (("M", 1024 * 1024), ("K", 1024)):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)


def _color(config: str) -> str:
    """A configuration's colour, the same in every figure."""
    index = CONFIGS.index(config) if config in CONFIGS else len(CONFIGS)
    return _COLORS[index % len(_COLORS)]


def _grouped_bars(
    ax: Axes, groups: Sequence[str], series: dict[str, list[float]], *, log: bool = False
) -> None:
    """One group of bars per entry of `groups`, one bar per series (NaN draws no bar)."""
    width = 0.8 / max(len(series), 1)
    for i, (config, values) in enumerate(series.items()):
        offsets = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(offsets, values, width, label=LABELS.get(config, config), color=_color(config))
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


def _round_down_125(value: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above `value` (> 0), where a log axis
    starts so that its lowest bar is visible and its first tick is labelled."""
    decade = 10.0 ** math.floor(math.log10(value))
    return next(m * decade for m in (5, 2, 1) if m * decade <= value * (1 + 1e-12))


def _new_figure(panels: int, *, sharey: bool) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.2 * panels + 1, 3.4), layout="constrained")
    axes = figure.subplots(1, panels, sharey=sharey, squeeze=False)[0]
    return figure, list(axes)


def _save(figure: Figure, path: Path) -> Path:
    def write(file: BinaryIO) -> None:
        figure.savefig(file, format="png", dpi=120)

    write_atomically(path, write)
    return path


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
        ax.set_ylim(0, 1.05)
    axes[0].set_ylabel("utilisation")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(configs))
    figure.suptitle("Attention utilisation")
    return figure


def ratio_figure(
    results: Sequence[Result], metric: Metric, *, speedup: bool, title: str, ylabel: str
) -> Figure:
    """One panel per model, one group of bars per sequence length, one bar per configuration
    other than the baseline: baseline / configuration (`speedup`) or configuration / baseline
    of `metric`, on a log axis. The results must hold the baseline."""
    table = index_results(results)
    models = list(dict.fromkeys(r.model for r in results))
    lengths = sorted({r.seq_len for r in results})
    configs = [c for c in table if c != BASELINE]
    baseline = table[BASELINE]
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
                a, b = getattr(base, metric), getattr(this, metric)
                values.append(a / b if speedup else b / a)
            series[config] = values
        _grouped_bars(ax, [format_length(n) for n in lengths], series, log=True)
        shown += [v for values in series.values() for v in values if v > 0]
        ax.axhline(1.0, color=_color(BASELINE), linewidth=1, linestyle="--")
        ax.set_title(model)
        ax.set_xlabel("sequence length")
    # The panels share their y axis: one range that shows every panel's bars.
    axes[0].set_ylim(_round_down_125(min(shown)), max(shown) * 1.5)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=max(len(configs), 1))
    figure.suptitle(title)
    return figure


def _ratio_skip_reason(results: Sequence[Result]) -> str | None:
    configs = {r.config for r in results}
    if BASELINE not in configs:
        return f"the baseline configuration {BASELINE} was not selected"
    if configs == {BASELINE}:
        return f"no configuration other than {BASELINE} was selected"
    return None


def _note_on_stderr(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def write_plots(
    attention: Sequence[Result],
    end2end: Sequence[Result],
    out_dir: Path,
    *,
    note: Callable[[str], None] = _note_on_stderr,
) -> list[Path]:
    """Draw `utilization.png`, `attention_speedup.png`, `attention_energy.png` and
    `end2end_speedup.png` into `out_dir` (each written atomically) and return their paths.

    A figure normalised to unfused is skipped, with a `note`, when unfused or every other
    configuration is missing from the results.
    """
    written: list[Path] = []
    if attention:
        written.append(_save(utilization_figure(attention), out_dir / "utilization.png"))
    else:
        note("skipping utilization.png: no attention results")
    ratio_plots: tuple[tuple[str, Sequence[Result], Metric, bool, str], ...] = (
        ("attention_speedup.png", attention, "latency_s", True, "Attention speedup"),
        ("attention_energy.png", attention, "energy_pj", False, "Attention energy"),
        ("end2end_speedup.png", end2end, "latency_s", True, "End-to-end speedup"),
    )
    for name, results, metric, speedup, what in ratio_plots:
        reason = _ratio_skip_reason(results)
        if reason is not None:
            note(f"skipping {name}: {reason}")
            continue
        relation = "over" if speedup else "relative to"
        figure = ratio_figure(
            results,
            metric,
            speedup=speedup,
            title=f"{what} {relation} {BASELINE}",
            ylabel=f"{what.split()[-1]} {relation} {BASELINE}",
        )
        written.append(_save(figure, out_dir / name))
    return written
