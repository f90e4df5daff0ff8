"""Turning failures into one-line `error:` diagnostics with exit status 1, never a traceback."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from xdsl.ir import Operation
from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException, ParseError

from einsum_opt.dialects.locations import (
    OpPassFailedException,
    OpVerifyException,
    location_of,
)
from einsum_opt.support.diagnostics import Diagnostic, cut_long_values
from einsum_opt.support.errors import PlacedError, UserError


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return cut_long_values(lines[0]) if lines else "unknown error"


def _at_op(op: Operation, message: str, line_offset: int, unplaced: str | None) -> Diagnostic:
    """The diagnostic `message` at `op`'s place (shifted by the chunk's `line_offset`), else
    printed as `unplaced` (or `error: message`)."""
    place = location_of(op)
    if place is not None:
        at = place.shifted(line_offset)
        return Diagnostic("error", message, at.filename, at.line, at.column)
    return Diagnostic("error", message, text=unplaced)


def diagnostic_of(
    error: BaseException, input_name: str = "<input>", line_offset: int = 0
) -> Diagnostic:
    """The `error:` diagnostic describing `error`, with its place when known."""
    from einsum_opt.frontends.errors import NotationError

    if isinstance(error, NotationError):
        if error.has_place:
            return Diagnostic(
                "error", _one_line(error.message), error.filename, error.line, error.column
            )
        return Diagnostic("error", _one_line(error.message), error.filename)
    if isinstance(error, PlacedError):
        message = _one_line(error.message)
        if error.line is None:
            text = f"error: {error.filename}: {message}"
            return Diagnostic("error", message, error.filename, text=text)
        return Diagnostic("error", message, error.filename, error.line, error.column)
    if isinstance(error, ParseError):
        loc = error.span.get_location()
        return Diagnostic("error", _one_line(error.msg), loc.file, loc.line, loc.col)
    if isinstance(error, OpVerifyException):
        message = _one_line(str(error.args[0]) if error.args else str(error))
        return _at_op(error.op, message, line_offset, f"error: {input_name}: {message}")
    if isinstance(error, OpPassFailedException):
        message = _one_line(str(error.args[0]) if error.args else str(error))
        return _at_op(error.op, message, line_offset, None)
    if isinstance(error, ArgSpecParseError):
        # "Error parsing ...:", "<location>", "<pipeline>", "<carets>", "<message>"
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        spec = f" in '{lines[2]}'" if len(lines) > 3 else ""
        return Diagnostic("error", _one_line(f"bad pass pipeline{spec}: {lines[-1]}"))
    if isinstance(error, FileNotFoundError):
        return Diagnostic("error", f"cannot read '{error.filename}': no such file")
    if isinstance(error, IsADirectoryError):
        return Diagnostic("error", f"cannot read '{error.filename}': it is a directory")
    if isinstance(error, OSError):
        return Diagnostic(
            "error", _one_line(f"{error.filename or input_name}: {error.strerror or error}")
        )
    if isinstance(error, RecursionError):
        return Diagnostic(
            "error",
            f"{input_name}: the input nests too deeply to be processed (Python's recursion limit)",
        )
    if isinstance(error, MemoryError):
        return Diagnostic("error", f"{input_name}: out of memory")
    from einsum_opt.interpreters.einsum_values import ExecutionError

    if isinstance(error, ExecutionError) and error.op is not None:
        message = _one_line(str(error.args[0]) if error.args else str(error))
        return _at_op(error.op, message, line_offset, None)
    if isinstance(error, DiagnosticException | UserError | ExecutionError | ValueError):
        message = _one_line(str(error.args[0]) if error.args else str(error))
        return Diagnostic("error", message)
    return Diagnostic("error", f"internal error ({type(error).__name__}): {_one_line(str(error))}")


def format_diagnostic(
    error: BaseException, input_name: str = "<input>", line_offset: int = 0
) -> str:
    """The single `error:` line describing `error`."""
    return str(diagnostic_of(error, input_name, line_offset))


class Terminated(BaseException):
    """SIGTERM arrived (a BaseException, like KeyboardInterrupt: no `except Exception` stops
    it, every `finally` and cleanup runs)."""


@contextmanager
def _terminate_as_exception() -> Iterator[None]:
    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_reporting_errors(
    main: Callable[[], int | None],
    input_name: Callable[[], str] = lambda: "<input>",
    line_offset: Callable[[], int] = lambda: 0,
) -> int:
    """Run `main`; on failure print one `error:` line to stderr and return 1.

    SIGTERM is turned into an exception, so that what was half-written is removed as on any
    other failure. Set EINSUM_OPT_TRACEBACK=1 to see the Python traceback of an internal error.
    """
    try:
        with _terminate_as_exception():
            return main() or 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return 1
    except SystemExit as e:  # argparse's usage errors already printed their message
        return e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - this is the last line of defence
        if os.environ.get("EINSUM_OPT_TRACEBACK"):
            raise
        print(format_diagnostic(e, input_name(), line_offset()), file=sys.stderr)
        return 1
