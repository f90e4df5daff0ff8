"""`lower-to-linalg` and the MLIR backend: every example cascade, before and after pass-fusion
and as mapped loop nests, exported to upstream MLIR and run by mlir-opt-22 / mlir-runner-22,
gives the reference interpreter's numbers (rtol 1e-5 in f32). Also cascades written for these
tests only: strided, reversed and shifted indices, mixed reduce operators, integers, rank-0
tensors, returned running values, other float types.

The tests that run the tools are skipped, with their reason, when the tools are missing
(Debian: `apt-get install mlir-22-tools`); the structural ones always run.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlir_tools import mlir  # noqa: F401 (the fixture MLIR uses)
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.interpreters.einsum import find_cascade, random_inputs, run_cascade
from einsum_opt.interpreters.equivalence import compare_outputs
from einsum_opt.interpreters.mlir_entry import parse_printed_memrefs
from einsum_opt.interpreters.mlir_tools import MlirToolError
from einsum_opt.lowering.mlir_execution import run_cascade_with_mlir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(
    p.relative_to(ROOT / "examples").as_posix()
    for pattern in ("*.einsum", "*.mlir")
    for p in (ROOT / "examples").rglob(pattern)
)
SMALL = {"M": 512, "M0": 256, "P": 8, "E": 4, "F": 4, "N": 512, "T": 8, "K": 16, "L": 8}
SMALL |= {"B": 2, "H": 2, "D": 16, "S": 32}
"""Small rank sizes for every example (each takes the ones it declares); the ranks that
pass-fusion splits hold two of its default tiles."""


MLIR = pytest.mark.usefixtures("mlir")
"""Marks a test that runs the MLIR tools (skipped, by name, without them)."""

STAGES = {
    "as written": [""],
    "pass-fusion": ["pass-fusion"],
    "loop nests": ["lower-to-loopnest"],
    "mapped": [
        "pass-fusion{rank=M tile=256},map-fusemax{tile=8},lower-to-loopnest",
        "map-fusemax{tile=8},lower-to-loopnest",
        "map-unfused{tile=8},lower-to-loopnest",
        "lower-to-loopnest",
    ],
}
"""Pipelines applied before the export; a stage takes the first of its pipelines that applies.
`mapped` is the FuseMax mapping of the cascade fused to 1 pass (or already 1-pass), the
unfused baseline's mapping where there is no 1-pass form, the default mapping where neither
applies."""


def example(name: str) -> ModuleOp:
    """An example at small sizes, as einsum IR (upstream linalg examples imported)."""
    return _example(name).clone()


def staged(name: str, stage: str) -> ModuleOp:
    """The example after the stage's pipeline."""
    return _staged(name, stage).clone()


@functools.cache
def _example(name: str) -> ModuleOp:
    module = api.load(ROOT / "examples" / name)
    if not cascades_in(module):
        api.apply(module, "linalg-to-einsum")
    cascade = find_cascade(module)
    api.set_rank_sizes(module, {k: v for k, v in SMALL.items() if k in cascade.ranks.names})
    return module


@functools.cache
def _staged(name: str, stage: str) -> ModuleOp:
    *alternatives, last = STAGES[stage]
    for pipeline in alternatives:
        try:
            return api.apply(example(name), pipeline)
        except PassFailedException:
            continue
    return api.apply(example(name), last)


def assert_same(
    expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], rtol: float
) -> None:
    """Same names, shapes and dtypes; values within `rtol` of the largest expected value."""
    assert list(actual) == list(expected)
    for name, want in expected.items():
        got = actual[name]
        assert got.shape == want.shape and got.dtype == want.dtype, name
        max_abs, scale = compare_outputs(want, got)
        assert max_abs <= rtol * scale, f"{name}: max abs error {max_abs} (scale {scale})"


# -- structure (no tools needed) -----------------------------------------------------------

UPSTREAM = ("builtin.", "func.", "arith.", "math.", "linalg.", "scf.", "tensor.")


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_export_is_upstream_and_reads_back(name: str, stage: str) -> None:
    module = staged(name, stage)
    api.apply(module, "lower-to-linalg")
    names = {op.name for op in module.walk()}
    assert all(n.startswith(UPSTREAM) for n in names), sorted(names)
    assert "linalg.generic" in names
    if stage == "mapped":  # the richest IR: einsum-opt reads back what it prints
        text = str(module)
        assert str(api.parse(text)) == text


def test_mapped_nest_keeps_its_loops() -> None:
    """The QK nest of the FuseMax mapping: scf.for over p2, m1, p1 and e, then the P0 x M0
    tile as one generic."""
    module = staged("attention/3pass.einsum", "mapped")
    api.apply(module, "lower-to-linalg")
    fn = next(op for op in module.walk() if op.name == "func.func")
    qk = next(op for op in fn.body.block.ops if op.results and op.results[0].name_hint == "QK")
    depth, op = 0, qk
    while op.name == "scf.for":
        depth += 1
        op = next(o for o in op.regions[0].block.ops if o.name in ("scf.for", "linalg.generic"))
    assert (depth, op.name) == (4, "linalg.generic")
    assert [t.data.value for t in op.iterator_types] == ["parallel", "parallel"]


def test_printed_memrefs_are_read_back() -> None:
    text = (
        "Unranked Memref base@ = 0x1 rank = 2 offset = 0 sizes = [2, 3] strides = [3, 1] data = \n"
        "[[1,   -2,   3], \n [4,   5,   -6]]\n"
        "Unranked Memref base@ = 0x2 rank = 0 offset = 0 sizes = [] strides = [] data = \n[7]\n"
    )
    assert parse_printed_memrefs(text) == [((2, 3), [1, -2, 3, 4, 5, -6]), ((), [7])]
    short = "Unranked Memref base@ = 0x1 rank = 1 offset = 0 sizes = [2] strides = [1] data = \n[1]"
    with pytest.raises(MlirToolError, match="1 values for shape"):
        parse_printed_memrefs(short)


def test_missing_tools_is_one_error_line(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    env = {**os.environ, "EINSUM_MLIR_OPT": "no-such-mlir-opt"}
    done = subprocess.run(
        [
            Path(sys.executable).parent / "einsum-run",
            ROOT / "examples/softmax.einsum",
            "--backend",
            "mlir",
            "-o",
            out,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: the MLIR backend needs no-such-mlir-opt, not found on PATH (Debian: apt-get "
        "install mlir-22-tools; or name the programs in EINSUM_MLIR_OPT and EINSUM_MLIR_RUNNER)"
    ]
    assert not out.exists()


# -- execution -----------------------------------------------------------------------------


@MLIR
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_like_numpy(name: str, stage: str) -> None:
    reference = run_cascade(example(name), seed=1)
    module = staged(name, stage)
    assert_same(reference, run_cascade_with_mlir(module, seed=1), rtol=1e-5)


HELD_OUT = """
einsum.cascade @indices(%X: !einsum.tensor<[M, P], f32>, %W: !einsum.tensor<[E, M], f32>)
    -> (!einsum.tensor<[M0, P], f32>, !einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>,
        !einsum.tensor<[M, P], f32>, !einsum.tensor<[], f32>, !einsum.tensor<[P], f32>)
    ranks(M = 12, P = 5, E = 3, M0 = 6) {
  %S = einsum.einsum S[m0, p] = %X[2*m0, p] - %X[M-1-2*m0, p] : !einsum.tensor<[M0, P], f32>
  %R = einsum.einsum R[m+1, p] = max(R[m, p], %X[m, p] * 0.5) init(-inf) : !einsum.tensor<[M, P], f32>
  %Z = einsum.einsum Z[p] = %X[m, p] * %W[e, m] :: max(m) : !einsum.tensor<[P], f32>
  %C = einsum.einsum C[m, p] = %R[M, p] + %R[m+1, p] / M : !einsum.tensor<[M, P], f32>
  %T = einsum.einsum T[] = %C[m, p] * %C[m, p] : !einsum.tensor<[], f32>
  %N = einsum.einsum N[p] = exp(-%X[m, p]) :: min(m) : !einsum.tensor<[P], f32>
  einsum.return %S, %R, %Z, %C, %T, %N : !einsum.tensor<[M0, P], f32>, !einsum.tensor<[M, P], f32>,
      !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>, !einsum.tensor<[], f32>, !einsum.tensor<[P], f32>
}
"""
"""Strided, reversed and final-value indices, a returned running max, a max over a sum, a
rank size as a value, a rank-0 output."""

INTEGERS = """
einsum.cascade @ints(%A: !einsum.tensor<[M, K], i32>, %B: !einsum.tensor<[K], i64>)
    -> (!einsum.tensor<[M], i32>, !einsum.tensor<[M], i32>, !einsum.tensor<[K], i64>)
    ranks(M = 7, K = 4) {
  %D = einsum.einsum D[m] = %A[m, k] * 3 - 1 :: max(k) : !einsum.tensor<[M], i32>
  %Q = einsum.einsum Q[m] = %D[m] / 2 : !einsum.tensor<[M], i32>
  %P = einsum.einsum P[k+1] = P[k] * %B[k] + 1 init(1) : !einsum.tensor<[K], i64>
  einsum.return %D, %Q, %P : !einsum.tensor<[M], i32>, !einsum.tensor<[M], i32>, !einsum.tensor<[K], i64>
}
"""


NESTS = """
einsum.cascade @nests(%X: !einsum.tensor<[B, P], f32>) -> (!einsum.tensor<[B, P], f32>,
    !einsum.tensor<[B], f32>, !einsum.tensor<[P, B], f32>) ranks(B = 1, P = 6) {
  %Y = loopnest.nest on pe1d loops [p = 6 space 0, b = 1] levels [DRAM, DRAM] Y[b, p] = %X[b, p] * 2.0 : !einsum.tensor<[B, P], f32>
  %Z = loopnest.nest on pe1d loops [b = 1 space 0, p = 6] levels [DRAM, DRAM] Z[b] = %X[0, p] : !einsum.tensor<[B], f32>
  %R = loopnest.nest on pe1d loops [p1 = 2, b = 1, p0 = 3 space 0] levels [DRAM, DRAM, DRAM] R[5-3*p1-p0, b] = %Y[b, 3*p1+p0] - %Z[b] : !einsum.tensor<[P, B], f32>
  einsum.return %Y, %Z, %R : !einsum.tensor<[B, P], f32>, !einsum.tensor<[B], f32>, !einsum.tensor<[P, B], f32>
}
"""
"""Hand-written loop nests: a rank of size 1 indexed by a constant, and a reversed output
index (its loops run as scf.for)."""


@MLIR
@pytest.mark.parametrize("text", [HELD_OUT, INTEGERS, NESTS], ids=["indices", "integers", "nests"])
@pytest.mark.parametrize("stage", ["as written", "loop nests"])
def test_held_out_cascades_run_like_numpy(text: str, stage: str) -> None:
    module = api.parse(text)
    reference = run_cascade(module, seed=2)
    api.apply(module, STAGES[stage][0])
    assert_same(reference, run_cascade_with_mlir(module, seed=2), rtol=1e-6)


@MLIR
def test_reordered_reduction_loop_outermost() -> None:
    """A nest whose reduced loop is outside its output loops: the output tile is filled with
    the identity on the first visit, then accumulated."""
    module = example("attention/3pass.einsum")
    reference = run_cascade(module, seed=4)
    api.apply(
        module,
        "reorder-loops{einsum=QK order=E,M,P},reorder-loops{einsum=AV order=M,P,F},lower-to-loopnest",
    )
    assert_same(reference, run_cascade_with_mlir(module, seed=4), rtol=1e-5)


@MLIR
@pytest.mark.parametrize(("element", "rtol"), [("f64", 1e-12), ("f16", 1e-2), ("bf16", 5e-2)])
def test_other_float_types(element: str, rtol: float) -> None:
    # The 1-pass form of this element type: its running max starts at the type's lowest value.
    text = (ROOT / "examples/attention/3pass.mlir").read_text().replace("f32", element)
    module = api.parse(text)
    api.apply(module, "pass-fusion{rank=M tile=256}")
    sizes = {"M": 64, "M0": 16, "P": 8, "E": 8, "F": 4}
    inputs = random_inputs(find_cascade(module), seed=5, ranks=sizes)
    reference = run_cascade(module, inputs, ranks=sizes)
    assert_same(reference, run_cascade_with_mlir(module, inputs, ranks=sizes), rtol=rtol)


@MLIR
def test_einsum_run_backend_writes_the_same_archive(tmp_path: Path) -> None:
    from einsum_opt.tools.einsum_run import main

    source = str(ROOT / "examples/attention/mha.einsum")
    ranks = ["--ranks", "M=16,P=8,E=4,F=4"]
    numpy_out, mlir_out = tmp_path / "numpy.npz", tmp_path / "mlir.npz"
    assert main([source, *ranks, "--seed", "7", "-o", str(numpy_out)]) == 0
    assert main([source, *ranks, "--seed", "7", "--backend", "mlir", "-o", str(mlir_out)]) == 0
    with np.load(numpy_out) as want, np.load(mlir_out) as got:
        assert_same({k: want[k] for k in want.files}, {k: got[k] for k in got.files}, rtol=1e-5)


@MLIR
@pytest.mark.parametrize(
    "name", ["attention/3pass.einsum", "attention/mha.einsum", "linalg/attention.mlir"]
)
def test_fusemax_mapped_nests_run(name: str) -> None:
    """The pipeline as users write it (map-fusemax with its default 256-query tiles): the
    1-pass cascade's loop nests, mapped the FuseMax way, run through MLIR."""
    module = example(name)
    api.set_rank_sizes(module, {"P": 256})
    reference = run_cascade(module, seed=6)
    api.apply(module, "pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest")
    nests = [op for op in module.walk() if op.name == "loopnest.nest"]
    assert any(nest.iterative_rank() == "m1" for nest in nests)  # the running values
    assert_same(reference, run_cascade_with_mlir(module, seed=6), rtol=1e-5)
