"""Writing the sweep's results as CSV (atomically) and reading them back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from einsum_opt.evaluation.sweep import COLUMNS, Result
from einsum_opt.support.atomic_write import write_text_atomically


def format_row(result: Result) -> list[str]:
    """The CSV cells of `result` in `COLUMNS` order: integers for `seq_len` and `dram_bytes`,
    floats as `repr` writes them (they read back exactly)."""
    cells = {
        "model": result.model,
        "seq_len": str(int(result.seq_len)),
        "config": result.config,
        "latency_s": repr(float(result.latency_s)),
        "energy_pj": repr(float(result.energy_pj)),
        "energy_pj_physical": repr(float(result.energy_pj_physical)),
        "util_2d": repr(float(result.util_2d)),
        "util_1d": repr(float(result.util_1d)),
        "dram_bytes": str(int(result.dram_bytes)),
    }
    return [cells[c] for c in COLUMNS]


def results_csv(results: Iterable[Result]) -> str:
    """The CSV text of `results`: a `COLUMNS` header, then one row per result."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(format_row(r) for r in results)
    return text.getvalue()


def write_results(path: Path, results: Iterable[Result]) -> None:
    """Write `results` to the CSV file `path` atomically."""
    write_text_atomically(path, results_csv(results))


BREAKDOWN_COLUMNS: tuple[str, ...] = (
    "part",
    "model",
    "seq_len",
    "config",
    "component",
    "energy_pj",
)
"""The columns of `energy_breakdown.csv`: one row per result and energy component, `part`
being `attention` or `end2end`."""


def breakdown_csv(parts: Mapping[str, Iterable[Result]]) -> str:
    """The CSV text of the energy breakdowns of the results of each part (`attention`,
    `end2end`), components as the results list them."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(BREAKDOWN_COLUMNS)
    for part, results in parts.items():
        for r in results:
            for component, pj in r.energy_breakdown_pj:
                writer.writerow([part, r.model, r.seq_len, r.config, component, repr(float(pj))])
    return text.getvalue()


def write_breakdown(path: Path, parts: Mapping[str, Iterable[Result]]) -> None:
    """Write `breakdown_csv(parts)` to `path` atomically."""
    write_text_atomically(path, breakdown_csv(parts))


def read_results(path: Path) -> list[Result]:
    """The results of a CSV file written by `write_results`; ValueError if it is not one."""
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        if header is None or tuple(header) != COLUMNS:
            raise ValueError(f"{path}: header is {header}, expected {','.join(COLUMNS)}")
        results = []
        for number, row in enumerate(reader, start=2):
            if len(row) != len(COLUMNS):
                raise ValueError(f"{path}:{number}: {len(row)} cells, expected {len(COLUMNS)}")
            cells = dict(zip(COLUMNS, row, strict=True))
            results.append(
                Result(
                    model=cells["model"],
                    seq_len=int(cells["seq_len"]),
                    config=cells["config"],
                    latency_s=float(cells["latency_s"]),
                    energy_pj=float(cells["energy_pj"]),
                    energy_pj_physical=float(cells["energy_pj_physical"]),
                    util_2d=float(cells["util_2d"]),
                    util_1d=float(cells["util_1d"]),
                    dram_bytes=int(cells["dram_bytes"]),
                )
            )
        return results
