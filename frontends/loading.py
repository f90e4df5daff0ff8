"""Reading input files into einsum IR: a context with our dialects, one loader per extension."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Dialect

from einsum_opt.frontends.errors import NotationError


def _einsum() -> Dialect:
    from einsum_opt.dialects.einsum import Einsum

    return Einsum


def _loopnest() -> Dialect:
    from einsum_opt.dialects.loopnest import LoopNest

    return LoopNest


def _dataflow() -> Dialect:
    from einsum_opt.dialects.dataflow import Dataflow

    return Dataflow


def _builtin() -> Dialect:
    from xdsl.dialects.builtin import Builtin

    return Builtin


def _arith() -> Dialect:
    from xdsl.dialects.arith import Arith

    return Arith


def _math() -> Dialect:
    from xdsl.dialects.math import Math

    return Math


def _func() -> Dialect:
    from xdsl.dialects.func import Func

    return Func


def _linalg() -> Dialect:
    from einsum_opt.dialects.upstream import Linalg

    return Linalg


def _tensor() -> Dialect:
    from xdsl.dialects.tensor import Tensor

    return Tensor


def _scf() -> Dialect:
    from xdsl.dialects.scf import Scf

    return Scf


def _bufferization() -> Dialect:
    from xdsl.dialects.bufferization import Bufferization

    return Bufferization


def _memref() -> Dialect:
    from xdsl.dialects.memref import MemRef

    return MemRef


DIALECTS: Mapping[str, Callable[[], Dialect]] = {
    "builtin": _builtin,
    "func": _func,
    "arith": _arith,
    "math": _math,
    "einsum": _einsum,
    "loopnest": _loopnest,
    "dataflow": _dataflow,
    "linalg": _linalg,
    "tensor": _tensor,
    "scf": _scf,
    "bufferization": _bufferization,
    "memref": _memref,
}
"""Every dialect einsum-opt understands, loaded lazily on first use: ours, and the upstream
ones that `lower-to-linalg` writes and `linalg-to-einsum` reads."""


def make_context() -> Context:
    """A context knowing our dialects and the upstream ones in `DIALECTS`."""
    ctx = Context()
    for name, factory in DIALECTS.items():
        ctx.register_dialect(name, factory)
    return ctx


def parse_mlir(
    text: str, filename: str, ctx: Context | None = None, implicit_module: bool = True
) -> ModuleOp:
    """Parse MLIR text (raises `ParseError`); top-level ops are wrapped in a module unless
    `implicit_module` is False."""
    from xdsl.parser import Parser
    from xdsl.utils.exceptions import ParseError, VerifyException

    from einsum_opt.dialects.locations import OpVerifyException, next_token_span

    parser = Parser(ctx or make_context(), text, filename)
    if not text[parser.pos :].strip():  # nothing but comments: an empty module, as mlir-opt
        return ModuleOp([])
    try:
        return parser.parse_module(implicit_module)
    except RecursionError:
        raise ParseError(
            next_token_span(parser),
            "the input nests too deeply here to be parsed (Python's recursion limit)",
        ) from None
    except VerifyException as e:
        if isinstance(e, OpVerifyException):
            raise
        # An attribute or type that does not verify as it is built: report it where it is.
        raise ParseError(next_token_span(parser), str(e)) from None
    except ValueError as e:
        if "integer string conversion" not in str(e):
            raise
        limit = sys.get_int_max_str_digits()
        raise ParseError(
            next_token_span(parser),
            f"integer literal before this point has more than {limit} digits (the most supported)",
        ) from None


def parse_notation(text: str, filename: str, ctx: Context | None = None) -> ModuleOp:
    """Parse the Extended Einsum notation (raises `NotationError`)."""
    from einsum_opt.frontends.notation import parse_einsum_notation

    return parse_einsum_notation(text, filename)


def parse_teaal_spec(text: str, filename: str, ctx: Context | None = None) -> ModuleOp:
    """Import a TeAAL specification (raises `NotationError`; warnings go to stderr)."""
    from einsum_opt.frontends.teaal import parse_teaal

    return parse_teaal(text, filename)


LOADERS: Mapping[str, Callable[[str, str, Context | None], ModuleOp]] = {
    "mlir": parse_mlir,
    "einsum": parse_notation,
    "yaml": parse_teaal_spec,
}
"""File extension -> loader."""


STDIN = "-"
"""The file name that means standard input."""

STDIN_NAME = "<stdin>"
"""How diagnostics name standard input."""

_ATTRIBUTE_ALIAS = re.compile(r"#[\w.$-]+\s*=")
_YAML_START = re.compile(r"---|-\s|[A-Za-z_][\w-]*\s*:(\s|$)")
_NOTATION_START = re.compile(r"(cascade|ranks|input|output)\s|[A-Za-z_]\w*\s*\[")


def detect_kind(text: str) -> str:
    """Which loader reads `text`, judged by its first line that is not blank or a comment:
    `key:` (or a YAML document marker) is a TeAAL spec, `cascade`, `ranks`, `input`, `output`
    or `NAME[...]` is the notation, anything else MLIR."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if line.startswith("#"):
            if _ATTRIBUTE_ALIAS.match(line):
                return "mlir"
            continue  # a comment of the notation or of YAML
        if _YAML_START.match(line):
            return "yaml"
        if _NOTATION_START.match(line):
            return "einsum"
        return "mlir"
    return "mlir"


def decode_source(data: bytes, filename: str) -> str:
    """`data` as UTF-8 text; a `NotationError` at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise NotationError(
            filename, line, column, f"not valid UTF-8 (byte 0x{data[e.start]:02x})"
        ) from None


def read_source(path: str | Path) -> tuple[str, str]:
    """(text, name for diagnostics) of a file, or of standard input for `-`."""
    if str(path) == STDIN:
        return decode_source(sys.stdin.buffer.read(), STDIN_NAME), STDIN_NAME
    return decode_source(Path(path).read_bytes(), str(path)), str(path)


def kind_of(path: str | Path, text: str, kind: str | None = None) -> str:
    """The loader for `path`: `kind` if given, else the file's extension if a loader has that
    name, else what `detect_kind` sees in `text`. ValueError for an unknown `kind`."""
    if kind is not None:
        if kind not in LOADERS:
            raise ValueError(f"unknown input format '{kind}' (known: {', '.join(LOADERS)})")
        return kind
    suffix = Path(str(path)).suffix.lstrip(".")
    return suffix if suffix in LOADERS else detect_kind(text)


def load_file(path: str | Path, ctx: Context | None = None, kind: str | None = None) -> ModuleOp:
    """Read and parse a file (`-`: standard input) by `kind`, its extension or its content
    (`kind_of`), and verify it."""
    text, name = read_source(path)
    module = LOADERS[kind_of(path, text, kind)](text, name, ctx)
    module.verify()
    return module
