"""Errors raised by the frontends."""

from __future__ import annotations


class NotationError(Exception):
    """A syntax or semantic error in a frontend input, printed as `file:line:col: error: msg`."""

    has_place = True
    """Whether `line` and `column` say where (False: the error is about the whole file)."""

    def __init__(self, filename: str, line: int, column: int, message: str):
        super().__init__(f"{filename}:{line}:{column}: error: {message}")
        self.filename = filename
        self.line = line
        self.column = column
        self.message = message
