"""Skipping the tests that run mlir-opt-22 / mlir-runner-22 when the tools are missing, each
by its own name (so `pytest -rs` lists them one by one)."""

from __future__ import annotations

import pytest

from einsum_opt.interpreters.mlir_tools import tools_available

REASON = "needs mlir-opt-22 and mlir-runner-22 on PATH (Debian: apt-get install mlir-22-tools)"


@pytest.fixture
def mlir(request: pytest.FixtureRequest) -> None:
    """Skip the requesting test, naming it, unless the MLIR tools are available."""
    if not tools_available():
        pytest.skip(f"{request.node.name} {REASON}")
