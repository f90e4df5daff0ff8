"""Writing the sweep's results as CSV (atomically) and reading them back."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from einsum_opt.evaluation.sweep import COLUMNS, Result
from einsum_opt.support.atomic_write import write_atomically


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
    data = results_csv(results).encode()

    def write(file: BinaryIO) -> None:
        file.write(data)

    write_atomically(path, write)


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
