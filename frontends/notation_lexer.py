"""Lexing one line of the Extended Einsum notation, as a `TokenSource` for the shared grammar."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from einsum_opt.dialects.einsum_syntax import (
    FUNCTIONS,
    Expr,
    parse_expr,
)
from einsum_opt.dialects.locations import SourceLocation
from einsum_opt.frontends.errors import NotationError
from einsum_opt.support.errors import integer_of


def fail_at(at: SourceLocation, message: str) -> NoReturn:
    """Raise a `NotationError` at `at`."""
    raise NotationError(at.filename, at.line, at.column, message)


# ---------------------------------------------------------------------------------------------
# Lexer


@dataclass(frozen=True)
class Token:
    """One token of a line: `ident`, `number`, `punct`, or the `end` of the line."""

    kind: str
    text: str
    column: int
    value: int | float | None = None


_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<ident>[A-Za-z][A-Za-z0-9_]*)"
    r"|(?P<punct>::|[\[\](),=+\-*/:])",
    re.ASCII,
)


def _number_value(text: str) -> int | float:
    """The value of a numeric literal: an int when it is only digits (ValueError when it has
    too many)."""
    return integer_of(text) if text.isdigit() else float(text)


def tokenize(code: str, where: SourceLocation) -> list[Token]:
    """Split one line (comment already removed) into tokens ending with an `end` token."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(code):
        match = _TOKEN.match(code, pos)
        if match is None:
            fail_at(
                SourceLocation(where.filename, where.line, pos + 1),
                f"unexpected character '{code[pos]}'",
            )
        kind = match.lastgroup or "space"
        text = match.group()
        if kind != "space":
            try:
                value = _number_value(text) if kind == "number" else None
            except ValueError as e:
                fail_at(SourceLocation(where.filename, where.line, pos + 1), str(e))
            tokens.append(Token(kind, text, pos + 1, value))
        pos = match.end()
    tokens.append(Token("end", "", len(code.rstrip()) + 1))
    return tokens


class NotationTokens:
    """The tokens of one line, read through the shared grammar's `TokenSource` protocol."""

    def __init__(self, code: str, filename: str, line: int):
        self.filename = filename
        self.line = line
        self.tokens = tokenize(code, SourceLocation(filename, line, 1))
        self.pos = 0
        self.in_expression = False
        """While set, an identifier followed by `(` must name a known function."""

    # -- positions ------------------------------------------------------------------------

    def location(self, token: Token | None = None) -> SourceLocation:
        """Where `token` (default: the next token) starts."""
        tok = token or self.current
        return SourceLocation(self.filename, self.line, tok.column)

    def previous_location(self) -> SourceLocation:
        """Where the last consumed token starts."""
        return self.location(self.tokens[max(self.pos - 1, 0)])

    def mark(self) -> int:
        """A position to pass to `names_since`."""
        return self.pos

    def names_since(self, mark: int) -> dict[str, SourceLocation]:
        """First place of each identifier consumed since `mark`."""
        names: dict[str, SourceLocation] = {}
        for tok in self.tokens[mark : self.pos]:
            if tok.kind == "ident":
                names.setdefault(tok.text, self.location(tok))
        return names

    # -- reading --------------------------------------------------------------------------

    @property
    def current(self) -> Token:
        """The next token (the `end` token at the end of the line)."""
        return self.tokens[self.pos]

    def peek(self, offset: int = 0) -> Token:
        """The token `offset` places after the next one."""
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next_is(self, punct: str, offset: int = 0) -> bool:
        """Whether the token `offset` places ahead is the punctuation `punct`."""
        tok = self.peek(offset)
        return tok.kind == "punct" and tok.text == punct

    def peek_punct(self, punct: str) -> bool:
        """Whether the punctuation `punct` is next (the `TokenSource` look-ahead)."""
        return self.next_is(punct)

    def at_end(self) -> bool:
        """Whether the whole line has been read."""
        return self.current.kind == "end"

    def _advance(self) -> Token:
        tok = self.current
        if tok.kind != "end":
            self.pos += 1
        return tok

    def accept(self, punct: str) -> bool:
        """Consume `punct` if it is next."""
        if self.next_is(punct):
            self._advance()
            return True
        return False

    def expect(self, punct: str, what: str) -> None:
        """Consume `punct` or fail with `expected <what>`."""
        if not self.accept(punct):
            self.fail(f"expected {what}")

    def identifier(self) -> str | None:
        """Consume and return an identifier if one is next."""
        tok = self.current
        if tok.kind != "ident":
            return None
        if self.in_expression and self.next_is("(", 1) and tok.text not in FUNCTIONS:
            self.fail(f"unknown function '{tok.text}' (known: {', '.join(FUNCTIONS)})")
        self._advance()
        return tok.text

    def number(self) -> int | float | None:
        """Consume and return an unsigned numeric literal if one is next."""
        tok = self.current
        if tok.kind != "number":
            return None
        self._advance()
        return tok.value

    def parse_expression(self, access: Callable[[str | None], int | None]) -> Expr:
        """A scalar expression in the shared grammar; `access` reads tensor accesses."""
        self.in_expression = True
        try:
            return parse_expr(self, access)
        finally:
            self.in_expression = False

    def expect_identifier(self, what: str) -> tuple[str, SourceLocation]:
        """An identifier and where it is, or fail with `expected <what>`."""
        at = self.location()
        name = self.identifier()
        if name is None:
            self.fail(f"expected {what}")
        return name, at

    def expect_end(self, what: str = "the end of the line") -> None:
        """Fail unless the whole line has been read."""
        if not self.at_end():
            self.fail(f"expected {what}")

    def describe_current(self) -> str:
        """How messages name the next token."""
        return "end of line" if self.at_end() else f"'{self.current.text}'"

    def fail(self, message: str) -> NoReturn:
        """Raise a `NotationError` at the next token."""
        if message.startswith("expected"):
            message += f", got {self.describe_current()}"
        fail_at(self.location(), message)
