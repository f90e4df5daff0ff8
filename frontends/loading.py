"""Reading input files into einsum IR: a context with our dialects, one loader per extension."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Dialect


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


def parse_mlir(text: str, filename: str, ctx: Context | None = None) -> ModuleOp:
    """Parse MLIR text (raises `ParseError`)."""
    from xdsl.parser import Parser

    return Parser(ctx or make_context(), text, filename).parse_module()


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


def load_file(path: str | Path, ctx: Context | None = None, kind: str | None = None) -> ModuleOp:
    """Read and parse a file by its extension (or `kind`), and verify it."""
    path = Path(path)
    kind = kind or path.suffix.lstrip(".")
    if kind not in LOADERS:
        raise ValueError(
            f"{path}: unknown file kind '.{kind}' (known: {', '.join('.' + k for k in LOADERS)})"
        )
    module = LOADERS[kind](path.read_text(), str(path), ctx)
    module.verify()
    return module
