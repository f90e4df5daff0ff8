"""The error a user sees: a bad input or option, with the message ready to print."""

from __future__ import annotations


class UserError(Exception):
    """A bad input or option, with a message ready for the user (place included)."""


class PlacedError(UserError):
    """A `UserError` about a file, at a line and column when known: printed
    `file:line:col: error: message` as the other frontends' errors are, or
    `error: file: message` without a line. The file name is kept apart from the message, which
    alone is cut when too long."""

    def __init__(self, filename: str, line: int | None, column: int | None, message: str):
        if line is None:
            text = f"{filename}: {message}"
        else:
            text = f"{filename}:{line}:{column}: error: {message}"
        super().__init__(text)
        self.filename = filename
        self.line = line
        self.column = column
        self.message = message


def integer_of(text: str) -> int:
    """`int(text)` for a decimal literal; a ValueError saying how long it is when it has more
    digits than Python converts (instead of Python's own message)."""
    import sys

    digits = len(text.lstrip("+-"))
    limit = sys.get_int_max_str_digits()
    if limit and digits > limit:
        raise ValueError(f"integer with {digits} digits (at most {limit} are supported)")
    return int(text)
