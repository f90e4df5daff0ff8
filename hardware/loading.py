"""Architectures by name or path: the built-ins (`architectures/*.yaml`) and user YAML files."""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from einsum_opt.hardware.architecture import Architecture
from einsum_opt.hardware.errors import ArchitectureError


def _builtin_dir() -> Traversable:
    return resources.files("einsum_opt.hardware").joinpath("architectures")


@functools.cache
def builtin_architectures() -> tuple[str, ...]:
    """The names of the built-in architectures (`edge`, `flat`, `fusemax`)."""
    return tuple(
        sorted(
            entry.name.removesuffix(".yaml")
            for entry in _builtin_dir().iterdir()
            if entry.name.endswith(".yaml")
        )
    )


@functools.cache
def _load_builtin(name: str) -> Architecture:
    text = _builtin_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return Architecture.from_yaml(text, source=f"{name}.yaml")


def load_architecture(name_or_path: str | Path) -> Architecture:
    """A built-in architecture by name (`fusemax`, `flat`, `edge`) or one read from a YAML
    file. Raises `ArchitectureError` for unknown names, unreadable files and invalid
    descriptions (naming the file and the field)."""
    text = str(name_or_path)
    if isinstance(name_or_path, str) and text in builtin_architectures():
        return _load_builtin(text)
    path = Path(text)
    looks_like_path = (
        isinstance(name_or_path, Path)
        or path.suffix in (".yaml", ".yml")
        or "/" in text
        or "\\" in text
        or path.exists()
    )
    if not looks_like_path:
        raise ArchitectureError(
            f"unknown architecture {text!r}: the built-ins are "
            f"{', '.join(builtin_architectures())} (or give the path of a YAML file)"
        )
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ArchitectureError("cannot read: not UTF-8 text", source=text) from None
    except OSError as error:
        raise ArchitectureError(f"cannot read: {error.strerror or error}", source=text) from None
    return Architecture.from_yaml(content, source=text, default_name=path.stem)
