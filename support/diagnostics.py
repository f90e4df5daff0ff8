"""Warnings, remarks and notes on their way to the user: one channel every layer reports to.

By default a diagnostic is printed on stderr at once. A tool that checks diagnostics instead
(`einsum-opt --verify-diagnostics`) collects them with `collecting()`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "remark", "note"]
"""The kinds of diagnostic, as MLIR names them."""


@dataclass(frozen=True)
class Diagnostic:
    """One message about the input, with its place when known (1-based line and column)."""

    severity: Severity
    message: str
    filename: str | None = None
    line: int | None = None
    column: int | None = None
    text: str | None = None
    """The line as printed, when it is not `place: severity: message`."""

    @property
    def place(self) -> str | None:
        """`file:line:col`, `file:line` or `file`, or None when the place is unknown."""
        if self.filename is None:
            return None
        parts = [self.filename, *(str(n) for n in (self.line, self.column) if n is not None)]
        return ":".join(parts)

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        place = self.place
        if place is None:
            return f"{self.severity}: {self.message}"
        return f"{place}: {self.severity}: {self.message}"


_collectors: list[list[Diagnostic]] = []


def emit(diagnostic: Diagnostic) -> None:
    """Report `diagnostic`: collected if a `collecting()` block is active, else on stderr."""
    if _collectors:
        _collectors[-1].append(diagnostic)
    else:
        print(diagnostic, file=sys.stderr)


@contextmanager
def collecting() -> Iterator[list[Diagnostic]]:
    """Collect the diagnostics emitted inside the block (in order) instead of printing them."""
    collected: list[Diagnostic] = []
    _collectors.append(collected)
    try:
        yield collected
    finally:
        _collectors.pop()


LONG_WORD = 80
"""Words (runs without spaces) longer than this are cut in messages."""

LONG_MESSAGE = 400
"""Messages longer than this are cut."""


def shorten(text: str, limit: int = LONG_WORD) -> str:
    """`text`, or its start and end around `…` when it is longer than `limit` characters
    (for echoing user values in messages)."""
    if len(text) <= limit:
        return text
    keep = max(limit - 30, 10)
    return f"{text[:keep]}…{text[-10:]} ({len(text)} characters)"


def cut_long_values(message: str) -> str:
    """`message` with every word longer than `LONG_WORD` shortened, and the whole cut to
    `LONG_MESSAGE` characters: a 200,000-character value is not echoed whole."""
    words = [shorten(w) for w in message.split(" ")]
    cut = " ".join(words)
    if len(cut) > LONG_MESSAGE:
        cut = f"{cut[: LONG_MESSAGE - 40]}… ({len(cut)} characters)"
    return cut
