"""The top-level folders form layers that import downward only (DESIGN.md): a module may
import its own folder and the folders below it, never one above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("support",),
    ("dialects",),
    ("hardware",),
    ("interpreters",),
    ("frontends",),
    ("costmodel",),
    ("lowering",),
    ("transforms",),
    ("package",),
    ("evaluation",),
    ("tools",),
)
"""Bottom to top; folders in one tuple are one layer."""

FOLDER_OF_PACKAGE = {"api": "package"}
"""`einsum_opt.<name>` modules that live in `package/` rather than a folder of their name."""


def _rank(folder: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if folder in layer:
            return rank
    raise AssertionError(f"folder {folder} is in no layer")


def _imported_folders(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "einsum_opt" or len(parts) < 2:
                continue
            folder = FOLDER_OF_PACKAGE.get(parts[1], parts[1])
            if any(folder in layer for layer in LAYERS):
                found.add(folder)
    return found


MODULES = sorted(p for layer in LAYERS for f in layer for p in (ROOT / f).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_downward(path: Path) -> None:
    folder = path.relative_to(ROOT).parts[0]
    upward = sorted(f for f in _imported_folders(path) if _rank(f) > _rank(folder))
    assert not upward, f"{path.relative_to(ROOT)} ({folder}) imports upward: {upward}"
