"""Packaging and source hygiene: every importable folder of the package is declared (else
setuptools warns on every install), results are not committed, and no module reaches into
xDSL's private parser state."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_importable_folder_is_a_declared_package() -> None:
    declared = set(SETUPTOOLS["packages"])
    for package, folder in SETUPTOOLS["package-dir"].items():
        for sub in (ROOT / folder).rglob("*"):
            if not sub.is_dir() or "__pycache__" in sub.parts:
                continue
            parts = sub.relative_to(ROOT / folder).parts
            if all(part.isidentifier() for part in parts):
                name = ".".join((package, *parts))
                assert name in declared, f"{sub.relative_to(ROOT)} is {name}, not declared"


def test_package_data_is_declared_for_data_folders() -> None:
    data = SETUPTOOLS["package-data"]
    assert data["einsum_opt.evaluation.cascades"] == ["*.einsum"]
    assert (ROOT / "evaluation" / "cascades" / "attention.einsum").exists()


def test_the_build_backend_filters_only_information_notices() -> None:
    system = PYPROJECT["build-system"]
    assert (system["build-backend"], system["backend-path"]) == ("build_backend", [".ci"])
    backend = (ROOT / ".ci" / "build_backend.py").read_text()
    assert "from setuptools.build_meta import *" in backend
    assert re.findall(r"filterwarnings\((.*)\)", backend) == ['"ignore", category=InformationOnly']


def test_results_are_not_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "results/" in ignored


def test_no_private_parser_state() -> None:
    users = [
        path.relative_to(ROOT)
        for folder in ("dialects", "frontends", "tools", "transforms", "lowering", "interpreters")
        for path in (ROOT / folder).rglob("*.py")
        if "_current_token" in path.read_text()
    ]
    assert users == []
