"""`einsum-eval`: run the FuseMax evaluation sweep and write its results, figures and summary.

```
einsum-eval --out DIR [--models BERT,TrXL,T5,XLM|FILE.yaml] [--lengths 1K,4K,16K,64K,256K,1M]
            [--configs unfused,flat,cascade,architecture,fusemax] [--no-plots]
            [--plot-format png,svg,pdf] [--arch NAME|FILE]
```

Every selected model x sequence length x configuration is compiled and costed (a progress bar
on stderr counts the points). A `--models` entry is a built-in model or a YAML file of user
workloads (`evaluation/model_file.py`). Once the whole sweep succeeded, DIR (created if need
be) receives `attention.csv` and `end2end.csv` (one row per point, columns `model,seq_len,
config,latency_s,energy_pj,util_2d,util_1d,dram_bytes`), `energy_breakdown.csv` and, unless
`--no-plots`, the figures of `evaluation.plots.FIGURES` in each `--plot-format`; a normalised
figure is skipped, with a note on stderr, when its baseline (or every other configuration) is
not selected. Everything is written into a folder beside DIR first and moved into DIR as one
unit; a failure or SIGTERM leaves DIR as it was. stdout gets the means the paper reports:
FuseMax's speedup and energy against FLAT and unfused, and the utilisation of both arrays.
`--arch` runs every configuration on one architecture (a built-in name, `fusemax`, `flat`,
`edge`, or a YAML file of ours) instead of its own (FLAT's for unfused, flat and cascade,
FuseMax's for architecture and fusemax), with key tiles as wide as its 2D array.
Lengths are integers, optionally with the suffix K (1024) or M (1024*1024); model and
configuration names are matched case-insensitively. Every failure prints one `error:` line on
stderr and exits with status 1, writing nothing.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from einsum_opt.evaluation import sweep
from einsum_opt.evaluation.sweep import Result
from einsum_opt.evaluation.workloads import (
    CONFIGS,
    MODELS,
    SEQ_LENGTHS,
    Model,
    config_named,
    format_length,
    model_named,
    parse_length,
)
from einsum_opt.support.errors import UserError
from einsum_opt.tools.diagnostics import run_reporting_errors

T = TypeVar("T")

FIGURE_FORMATS = ("png", "svg", "pdf")
"""What `--plot-format` accepts (`evaluation.plots.FORMATS`, without importing matplotlib)."""

CSV_FILES = ("attention.csv", "end2end.csv", "energy_breakdown.csv")
"""The data files einsum-eval writes."""

_EPILOG = f"""\
outputs in DIR (written only once the whole sweep succeeded, moved into DIR as one unit):
  attention.csv, end2end.csv   one row per model x length x config, columns
                               {",".join(sweep.COLUMNS)}
  energy_breakdown.csv         part (attention, end2end), model, seq_len, config, component,
                               energy_pj: the energy of each point by component
  utilization.png              mean 2D and 1D utilisation per model and configuration
  attention_speedup.png        attention speedup over unfused, per model and length (log axis)
  attention_energy.png         attention energy relative to unfused (linear axis)
  end2end_speedup.png          end-to-end speedup over unfused (log axis)
  *_vs_flat.png                the same three normalised to FLAT
  energy_breakdown.png         attention energy by component, FLAT and FuseMax, relative to FLAT
  Every bar is labelled with its value; the baseline is the dashed line at 1. A normalised
  figure is skipped, with a note on stderr, when its baseline or every other configuration is
  not selected (the breakdown: FLAT or FuseMax). --plot-format svg,pdf writes those formats
  instead of PNG. Files of an earlier run that this one does not write are removed; other
  files in DIR stay.

--models entries are built-in models or YAML files of user workloads, one entry per model:
  MyLM: {{d_model: 1024, heads: 16, E: 64, F: 64, ffn: 4096, batch: 8}}
(F defaults to E, batch to 64).

stdout: means over the swept (model, length) points of the per-point ratios (attention speedup
of fusemax over flat and unfused, attention energy fusemax/flat, end-to-end speedup and energy
fusemax/flat; only those whose configurations were selected) and the mean attention
utilisation of both arrays per configuration.

Every failure (unknown model or configuration, bad length, bad model file, unusable DIR, ...)
prints one `error:` line on stderr and exits with status 1.
"""


class _ArgumentParser(argparse.ArgumentParser):
    """Reports usage errors as one `error:` line (via UserError) instead of usage + exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see einsum-eval --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of einsum-eval."""
    parser = _ArgumentParser(
        prog="einsum-eval",
        description="Run the FuseMax evaluation: compile and cost multi-head attention and one\n"
        "transformer layer for every model x sequence length x configuration.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="output directory (created if missing)"
    )
    parser.add_argument(
        "--models",
        metavar="M,...",
        default=",".join(MODELS),
        help="models, case-insensitive, or YAML files of models (default: %(default)s)",
    )
    parser.add_argument(
        "--lengths",
        metavar="N,...",
        default=",".join(format_length(n) for n in SEQ_LENGTHS),
        help="sequence lengths M = P; K = 1024, M = 1024*1024 (default: %(default)s)",
    )
    parser.add_argument(
        "--configs",
        metavar="C,...",
        default=",".join(CONFIGS),
        help="configurations, case-insensitive (default: %(default)s; also: searched, the 1-pass "
        "cascade mapped by map-search)",
    )
    parser.add_argument(
        "--arch",
        metavar="NAME|FILE",
        default=None,
        help="run every configuration on this architecture (built-in: fusemax, flat, edge; or "
        "a YAML file) instead of its own (default: flat for unfused, flat and cascade, "
        "fusemax for architecture and fusemax)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    parser.add_argument(
        "--plot-format",
        metavar="F,...",
        default="png",
        help=f"figure file formats: {', '.join(FIGURE_FORMATS)} (default: %(default)s)",
    )
    return parser


def _parse_list(text: str, parse: Callable[[str], list[T]], what: str) -> list[T]:
    """The comma-separated entries of `text`, each parsed (to one or more values);
    ValueError if one is empty or two give the same value."""
    if not text.strip():
        raise ValueError("empty value")
    values: list[T] = []
    for entry in text.split(","):
        if not entry.strip():
            raise ValueError(f"empty entry in '{text}'")
        for value in parse(entry.strip()):
            if value in values:
                raise ValueError(f"{what} '{entry.strip()}' is given twice")
            values.append(value)
    return values


def _models_of(entry: str) -> list[Model]:
    """A built-in model, or every model of a YAML model file."""
    if entry.lower().endswith((".yaml", ".yml")) or os.sep in entry or Path(entry).is_file():
        from einsum_opt.evaluation.model_file import load_models

        return load_models(entry)
    return [model_named(entry)]


def parse_models(text: str) -> list[Model]:
    """The models named in a comma-separated list (matched case-insensitively) or held by the
    YAML files it names."""
    return _parse_list(text, _models_of, "model")


def parse_lengths(text: str) -> list[int]:
    """The sequence lengths of a comma-separated list such as `1K,4K,1M`."""
    return _parse_list(text, lambda entry: [parse_length(entry)], "length")


def parse_configs(text: str) -> list[str]:
    """The configurations of a comma-separated list, each one of `ALL_CONFIGS` (any case)."""
    return _parse_list(text, lambda entry: [config_named(entry)], "configuration")


def parse_formats(text: str) -> list[str]:
    """The figure formats of a comma-separated list, each one of `FIGURE_FORMATS`."""

    def one(entry: str) -> list[str]:
        if entry.lower() not in FIGURE_FORMATS:
            raise ValueError(
                f"unknown figure format '{entry}' (choose from {', '.join(FIGURE_FORMATS)})"
            )
        return [entry.lower()]

    return _parse_list(text, one, "format")


def _checked_architecture(text: str) -> str:
    """`text` if it names a built-in architecture or a usable YAML file; ValueError (an
    `ArchitectureError` naming the file and field) otherwise."""
    if not text.strip():
        raise ValueError("empty value")
    sweep.check_architecture(text)
    return text


def _option(option: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as e:
        raise UserError(f"{option}: {e}") from None


def prepare_out_dir(path: Path) -> list[Path]:
    """Check that `path` can become the output directory and create its missing parents;
    return the directories created, deepest first. UserError if `path` is not a directory or
    cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out: '{path}' exists and is not a directory")
    parent = path.absolute().parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        remove_empty(missing)
        raise UserError(f"--out: cannot create directory '{path}': {e.strerror or e}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out: cannot write beside '{path}': '{parent}' is not writable")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"--out: directory '{path}' is not writable")
    return missing


def remove_empty(directories: Sequence[Path]) -> None:
    """Remove the given directories, deepest first, as long as they exist and are empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def sweep_with_progress(
    models: Sequence[Model],
    lengths: Sequence[int],
    configs: Sequence[str],
    arch: str | None = None,
) -> tuple[list[Result], list[Result]]:
    """`run_sweep` (looked up at call time) under a progress bar on stderr, which disappears
    when done; no bar when stderr is not an interactive terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_interactive:  # rich would still print a blank line when done
        return sweep.run_sweep(models, lengths, configs, arch=arch)
    progress = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("sweep", total=len(models) * len(lengths) * len(configs))
        return sweep.run_sweep(
            models, lengths, configs, on_point=lambda: progress.advance(task), arch=arch
        )


def is_output_name(name: str) -> bool:
    """Whether `name` is a file einsum-eval writes (so a later run may replace or remove it)."""
    from einsum_opt.evaluation.plots import FIGURES

    stem, _, extension = name.rpartition(".")
    return name in CSV_FILES or (stem in FIGURES and extension in FIGURE_FORMATS)


def write_outputs(
    staging: Path,
    attention: Sequence[Result],
    end2end: Sequence[Result],
    formats: Sequence[str] | None,
) -> None:
    """The CSVs and (unless `formats` is None) the figures, into `staging`."""
    from einsum_opt.evaluation.csv_output import write_breakdown, write_results

    write_results(staging / "attention.csv", attention)
    write_results(staging / "end2end.csv", end2end)
    write_breakdown(staging / "energy_breakdown.csv", {"attention": attention, "end2end": end2end})
    if formats is not None:
        from einsum_opt.evaluation.plots import write_plots

        write_plots(attention, end2end, staging, formats=formats)


def run(args: argparse.Namespace) -> int:
    """Sweep, write the CSVs and figures, print the summary, for parsed options."""
    from einsum_opt.evaluation.summary import render_summary, summarize
    from einsum_opt.support.atomic_write import publish_directory

    models = _option("--models", parse_models, args.models)
    lengths = _option("--lengths", parse_lengths, args.lengths)
    configs = _option("--configs", parse_configs, args.configs)
    formats = None if args.no_plots else _option("--plot-format", parse_formats, args.plot_format)
    arch = _option("--arch", _checked_architecture, args.arch) if args.arch is not None else None
    if not args.out:
        raise UserError("--out: empty directory name")
    out = Path(args.out)
    created = prepare_out_dir(out)
    try:
        attention, end2end = sweep_with_progress(models, lengths, configs, arch)
        summary = summarize(attention, end2end)
        publish_directory(
            out, lambda staging: write_outputs(staging, attention, end2end, formats), is_output_name
        )
    except BaseException:
        remove_empty(created)
        raise
    if arch is not None:
        print(f"every configuration on architecture {arch}")
    print(render_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `einsum-eval`; returns the exit status."""
    return run_reporting_errors(lambda: run(build_parser().parse_args(argv)), lambda: "einsum-eval")
