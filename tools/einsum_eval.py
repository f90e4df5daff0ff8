"""`einsum-eval`: run the FuseMax evaluation sweep and write its results, figures and summary.

```
einsum-eval --out DIR [--models BERT,TrXL,T5,XLM] [--lengths 1K,4K,16K,64K,256K,1M]
            [--configs unfused,flat,cascade,architecture,fusemax] [--no-plots]
```

Every selected model x sequence length x configuration is compiled and costed (a progress bar
on stderr counts the points). Once the whole sweep succeeded, DIR (created if need be) receives
`attention.csv` and `end2end.csv` (one row per point, columns `model,seq_len,config,latency_s,
energy_pj,util_2d,util_1d,dram_bytes`) and, unless `--no-plots`, `utilization.png`,
`attention_speedup.png`, `attention_energy.png` and `end2end_speedup.png`; a figure normalised
to unfused is skipped, with a note on stderr, when unfused (or every other configuration) is
not selected. Every file is written atomically. stdout gets the means the paper reports:
FuseMax's speedup and energy against FLAT and unfused, and the utilisation of both arrays.
Lengths are integers, optionally with the suffix K (1024) or M (1024*1024); model and
configuration names are matched case-insensitively. Every failure prints one `error:` line on
stderr and exits with status 1, writing nothing.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

from einsum_opt.evaluation import sweep
from einsum_opt.evaluation.csv_output import write_results
from einsum_opt.evaluation.plots import format_length, write_plots
from einsum_opt.evaluation.summary import render_summary, summarize
from einsum_opt.evaluation.sweep import Result
from einsum_opt.evaluation.workloads import ALL_CONFIGS, CONFIGS, MODELS, SEQ_LENGTHS, Model
from einsum_opt.support.errors import UserError
from einsum_opt.tools.diagnostics import run_reporting_errors

T = TypeVar("T")

_LENGTH = re.compile(r"([+-]?\d+)([KM]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024 * 1024}


_EPILOG = f"""\
outputs in DIR (written only once the whole sweep succeeded, each file atomically):
  attention.csv, end2end.csv   one row per model x length x config, columns
                               {",".join(sweep.COLUMNS)}
  utilization.png              mean 2D and 1D utilisation per model and configuration
  attention_speedup.png        attention speedup over unfused, per model and length (log axis)
  attention_energy.png         attention energy relative to unfused (log axis)
  end2end_speedup.png          end-to-end speedup over unfused (log axis)
  A figure normalised to unfused is skipped, with a note on stderr, when unfused or every other
  configuration is not selected.

stdout: means over the swept (model, length) points of the per-point ratios (attention speedup
of fusemax over flat and unfused, attention energy fusemax/flat, end-to-end speedup and energy
fusemax/flat; only those whose configurations were selected) and the mean attention
utilisation of both arrays per configuration.

Every failure (unknown model or configuration, bad length, unusable DIR, ...) prints one
`error:` line on stderr and exits with status 1.
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
        help="models, case-insensitive (default: %(default)s)",
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
    parser.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    return parser


def _parse_list(text: str, parse: Callable[[str], T], what: str) -> list[T]:
    """The comma-separated entries of `text`, each parsed; ValueError if one is empty or two
    parse to the same value."""
    if not text.strip():
        raise ValueError("empty value")
    values: list[T] = []
    for entry in text.split(","):
        if not entry.strip():
            raise ValueError(f"empty entry in '{text}'")
        value = parse(entry.strip())
        if value in values:
            raise ValueError(f"{what} '{entry.strip()}' is given twice")
        values.append(value)
    return values


def _model(name: str) -> Model:
    for canonical, model in MODELS.items():
        if canonical.lower() == name.lower():
            return model
    raise ValueError(f"unknown model '{name}' (choose from {', '.join(MODELS)})")


def _config(name: str) -> str:
    for config in ALL_CONFIGS:
        if config == name.lower():
            return config
    raise ValueError(f"unknown configuration '{name}' (choose from {', '.join(ALL_CONFIGS)})")


def parse_length(text: str) -> int:
    """`4K` -> 4096, `1M` -> 1048576, `3000` -> 3000; ValueError unless a positive length."""
    match = _LENGTH.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"'{text}' is not a length (an integer, optionally followed by K = 1024 or "
            "M = 1024*1024, e.g. 4K)"
        )
    tokens = int(match[1]) * _UNITS[match[2].upper()]
    if tokens <= 0:
        raise ValueError(f"length '{text}' is not positive")
    return tokens


def parse_models(text: str) -> list[Model]:
    """The models named in a comma-separated list, matched case-insensitively."""
    return _parse_list(text, _model, "model")


def parse_lengths(text: str) -> list[int]:
    """The sequence lengths of a comma-separated list such as `1K,4K,1M`."""
    return _parse_list(text, parse_length, "length")


def parse_configs(text: str) -> list[str]:
    """The configurations of a comma-separated list, each one of `CONFIGS` (any case)."""
    return _parse_list(text, _config, "configuration")


def _option(option: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except ValueError as e:
        raise UserError(f"{option}: {e}") from None


def prepare_out_dir(path: Path) -> list[Path]:
    """Create the output directory if need be; return the directories created, deepest first.
    UserError if `path` is not a directory or cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out: '{path}' exists and is not a directory")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        remove_empty(missing)
        raise UserError(f"--out: cannot create directory '{path}': {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
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
    models: Sequence[Model], lengths: Sequence[int], configs: Sequence[str]
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
        return sweep.run_sweep(models, lengths, configs)
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
        return sweep.run_sweep(models, lengths, configs, on_point=lambda: progress.advance(task))


def run(args: argparse.Namespace) -> int:
    """Sweep, write the CSVs and figures, print the summary, for parsed options."""
    models = _option("--models", parse_models, args.models)
    lengths = _option("--lengths", parse_lengths, args.lengths)
    configs = _option("--configs", parse_configs, args.configs)
    if not args.out:
        raise UserError("--out: empty directory name")
    out = Path(args.out)
    created = prepare_out_dir(out)
    try:
        attention, end2end = sweep_with_progress(models, lengths, configs)
        summary = summarize(attention, end2end)
    except BaseException:
        remove_empty(created)
        raise
    try:
        write_results(out / "attention.csv", attention)
        write_results(out / "end2end.csv", end2end)
        if not args.no_plots:
            write_plots(attention, end2end, out)
    except OSError as e:
        raise UserError(f"cannot write to '{out}': {e.strerror or e}") from e
    print(render_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `einsum-eval`; returns the exit status."""
    return run_reporting_errors(lambda: run(build_parser().parse_args(argv)), lambda: "einsum-eval")
