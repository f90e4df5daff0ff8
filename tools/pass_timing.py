"""`--time-passes`: the wall time of parsing, of each pass, of verification and of output, as
mlir-opt's execution time report prints it (on stderr, so the IR on stdout stays clean)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_RULE = "===" + "-" * 73 + "==="


class PassTimer:
    """Accumulates wall time per named step, in the order the steps first ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        """Count `seconds` more for step `name`."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Time the block as (part of) step `name`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def report(self) -> str:
        """The report: total, then one line per step with its share, then the total again."""
        total = sum(self.seconds.values())

        def row(seconds: float, name: str) -> str:
            share = 100.0 * seconds / total if total > 0 else 0.0
            return f"  {seconds:8.4f} ({share:5.1f}%)  {name}"

        lines = [
            _RULE,
            "... Execution time report ...".center(len(_RULE)).rstrip(),
            _RULE,
            f"  Total Execution Time: {total:.4f} seconds",
            "",
            "  ----Wall Time----  ----Name----",
            *(row(s, name) for name, s in self.seconds.items()),
            row(total, "Total"),
        ]
        return "\n".join(lines) + "\n"
