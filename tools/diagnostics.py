"""Turning failures into one-line `error:` diagnostics with exit status 1, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException, ParseError

from einsum_opt.dialects.locations import OpVerifyException, SourceLocation, location_of
from einsum_opt.support.errors import UserError


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else "unknown error"


def format_diagnostic(
    error: BaseException, input_name: str = "<input>", line_offset: int = 0
) -> str:
    """The single `error:` line describing `error`."""
    from einsum_opt.frontends.errors import NotationError

    if isinstance(error, NotationError):
        return str(error)
    if isinstance(error, ParseError):
        loc = error.span.get_location()
        return f"{loc.file}:{loc.line}:{loc.col}: error: {_one_line(error.msg)}"
    if isinstance(error, OpVerifyException):
        place: SourceLocation | None = location_of(error.op)
        message = _one_line(str(error.args[0]) if error.args else str(error))
        if place is not None:
            return f"{place.shifted(line_offset)}: error: {message}"
        return f"error: {input_name}: {message}"
    if isinstance(error, ArgSpecParseError):
        # "Error parsing ...:", "<location>", "<pipeline>", "<carets>", "<message>"
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        spec = f" in '{lines[2]}'" if len(lines) > 3 else ""
        return f"error: bad pass pipeline{spec}: {lines[-1]}"
    if isinstance(error, FileNotFoundError):
        return f"error: cannot read '{error.filename}': no such file"
    if isinstance(error, IsADirectoryError):
        return f"error: cannot read '{error.filename}': it is a directory"
    if isinstance(error, OSError):
        return f"error: {error.filename or input_name}: {error.strerror or error}"
    from einsum_opt.interpreters.einsum_values import ExecutionError

    if isinstance(
        error, DiagnosticException | UserError | ExecutionError | ValueError | ArgSpecParseError
    ):
        message = _one_line(str(error.args[0]) if error.args else str(error))
        return f"error: {message}"
    return f"error: internal error ({type(error).__name__}): {_one_line(str(error))}"


def run_reporting_errors(
    main: Callable[[], int | None],
    input_name: Callable[[], str] = lambda: "<input>",
    line_offset: Callable[[], int] = lambda: 0,
) -> int:
    """Run `main`; on failure print one `error:` line to stderr and return 1.

    Set EINSUM_OPT_TRACEBACK=1 to see the Python traceback of an internal error.
    """
    try:
        return main() or 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except SystemExit as e:  # argparse's usage errors already printed their message
        return e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # noqa: BLE001 - this is the last line of defence
        if os.environ.get("EINSUM_OPT_TRACEBACK"):
            raise
        print(format_diagnostic(e, input_name(), line_offset()), file=sys.stderr)
        return 1
