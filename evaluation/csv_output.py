"""Writing the sweep's results as CSV (atomically) and reading them back."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from einsum_opt.evaluation.sweep import COLUMNS, Result


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write` writes, never leaving it half-written.

    The bytes go to a temporary file in the same directory, renamed over `path` once complete;
    on any failure the temporary file is removed and `path` is left as it was.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
        os.chmod(temporary, _new_file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _new_file_mode(path: Path) -> int:
    """The mode `path` has now, or the mode a newly created file gets under the umask
    (mkstemp creates its file readable by the owner only)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def format_row(result: Result) -> list[str]:
    """The CSV cells of `result` in `COLUMNS` order: integers for `seq_len` and `dram_bytes`,
    floats as `repr` writes them (they read back exactly)."""
    cells = {
        "model": result.model,
        "seq_len": str(int(result.seq_len)),
        "config": result.config,
        "latency_s": repr(float(result.latency_s)),
        "energy_pj": repr(float(result.energy_pj)),
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
                    util_2d=float(cells["util_2d"]),
                    util_1d=float(cells["util_1d"]),
                    dram_bytes=int(cells["dram_bytes"]),
                )
            )
        return results
