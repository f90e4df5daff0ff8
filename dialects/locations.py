"""Where ops came from in the source text, so diagnostics can name `file:line:col`.

xDSL's parser keeps no locations on ops; our custom parsers and frontends record them here.
The table holds weak references: it never keeps IR alive.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, TypeVar

from xdsl.ir import Operation
from xdsl.parser.generic_parser import GenericParser
from xdsl.utils.exceptions import PassFailedException, VerifyException
from xdsl.utils.lexer import Span


@dataclass(frozen=True)
class SourceLocation:
    """A 1-based line and column in a named input."""

    filename: str
    line: int
    column: int

    def shifted(self, lines: int) -> SourceLocation:
        """The same place in a file whose chunk started `lines` lines further down."""
        return SourceLocation(self.filename, self.line + lines, self.column)

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}"


OpT = TypeVar("OpT", bound=Operation)

_LOCATIONS: weakref.WeakKeyDictionary[Operation, SourceLocation] = weakref.WeakKeyDictionary()


def record_location(op: Operation, where: SourceLocation | Span) -> None:
    """Remember where `op` was written."""
    if isinstance(where, Span):
        loc = where.get_location()
        where = SourceLocation(loc.file, loc.line, loc.col)
    _LOCATIONS[op] = where


def next_token_span(parser: GenericParser[Any, str]) -> Span[str]:
    """Where the parser's next token starts, as a span (xDSL's public parser API only)."""
    return Span(parser.pos, parser.pos, parser.lexer.input)


def location_of(op: Operation | None) -> SourceLocation | None:
    """Where `op` (or the closest ancestor with a known place) was written, if known."""
    # Not every "op" is IR: map-search hands the lowering stand-ins for loop nests.
    while isinstance(op, Operation):
        if op in _LOCATIONS:
            return _LOCATIONS[op]
        op = op.parent_op()
    return None


def carry_location(old: Operation, new: Operation) -> None:
    """Give `new`, which a rewrite puts in place of `old`, the place `old` was written at."""
    if old in _LOCATIONS:
        _LOCATIONS[new] = _LOCATIONS[old]


def forget_locations(op: Operation) -> None:
    """Forget where `op` and the ops inside it were written: for IR parsed from generated text,
    whose lines are not the user's."""
    for inner in op.walk():
        _LOCATIONS.pop(inner, None)


def clone_located(op: OpT) -> OpT:
    """`op.clone()`, every op of the copy at the place of the op it copies."""
    copy = op.clone()
    for original, cloned in zip(op.walk(), copy.walk(), strict=True):
        carry_location(original, cloned)
    return copy


class OpVerifyException(VerifyException):
    """A verifier failure that knows the op it is about, so it can be reported at its place."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op


class OpPassFailedException(PassFailedException):
    """A pass failure about one op of the input (an Einsum, a cascade, a loop nest), so it can
    be reported at that op's place: `file:line:col: error: <pass>: <message>`."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op

    def __reduce__(self) -> tuple[type[PassFailedException], tuple[object, ...]]:
        # Sent to another process (map-search's workers), it is the plain failure: places
        # are this process's, and ops do not pickle.
        return PassFailedException, self.args


def pass_failure(message: str, op: Operation | None = None) -> PassFailedException:
    """The failure of a pass: at `op`'s place when it is about that op."""
    return PassFailedException(message) if op is None else OpPassFailedException(op, message)
