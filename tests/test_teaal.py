"""The TeAAL frontend: every corpus spec imports (or fails with one line), our own specs'
numerics, mappings, default sizes, warnings and diagnostics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.frontends.errors import NotationError
from einsum_opt.frontends.loading import load_file, parse_mlir
from einsum_opt.frontends.teaal import DEFAULT_RANK_SIZE, parse_teaal
from einsum_opt.interpreters.einsum import run_cascade
from einsum_opt.transforms.set_ranks import set_rank_sizes

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "teaal"
OWN = Path(__file__).resolve().parent / "teaal"
BIN = Path(sys.executable).parent
CORPUS_SPECS = sorted(CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus/teaal is absent")


def quiet(text: str, name: str = "t.yaml") -> ModuleOp:
    """Import spec text, dropping warnings."""
    return parse_teaal(text, name, warn=lambda _: None)


def warnings_of(text: str, name: str = "t.yaml") -> list[str]:
    """The warnings importing spec text gives."""
    lines: list[str] = []
    parse_teaal(text, name, warn=lines.append)
    return lines


def error_of(text: str, name: str = "t.yaml") -> str:
    """The one-line error importing spec text gives."""
    with pytest.raises(NotationError) as info:
        quiet(text, name)
    message = str(info.value)
    assert "\n" not in message
    return message


def cascade_of(module: ModuleOp) -> CascadeOp:
    """The module's only cascade."""
    (cascade,) = [op for op in module.ops if isinstance(op, CascadeOp)]
    return cascade


def einsum(module: ModuleOp, name: str) -> EinsumOp:
    """The Einsum producing `name`."""
    (op,) = [e for e in cascade_of(module).einsums() if e.tensor_name == name]
    return op


def mapping_of(module: ModuleOp, name: str) -> MappingAttr:
    """The mapping attribute of an Einsum."""
    attr = einsum(module, name).attributes[MAPPING_ATTR]
    assert isinstance(attr, MappingAttr)
    return attr


def spec(expressions: str, declaration: str, rest: str = "") -> str:
    """A spec from its declaration lines, expression lines and further sections."""
    return (
        "einsum:\n  declaration:\n"
        + "".join(f"    {line.strip()}\n" for line in declaration.split(";"))
        + "  expressions:\n"
        + "".join(f"    - {line.strip()}\n" for line in expressions.split(";"))
        + rest
    )


GEMM_DECL = "A: [K, M]; B: [K, N]; Z: [M, N]"
GEMM = "Z[m, n] = A[k, m] * B[k, n]"


def assert_round_trips(module: ModuleOp) -> None:
    """Custom and generic forms print, parse back and print the same."""
    text = str(module)
    again = parse_mlir(text, "x")
    again.verify()
    assert str(again) == text
    from io import StringIO

    from xdsl.printer import Printer

    out = StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)
    generic = parse_mlir(out.getvalue(), "x")
    generic.verify()
    assert str(generic) == text


def has_einsum(path: Path) -> bool:
    """Whether a corpus spec has an einsum section."""
    data = yaml.safe_load(path.read_text())
    return isinstance(data, dict) and "einsum" in data


# ---------------------------------------------------------------------------------------------
# The corpus


@needs_corpus
@pytest.mark.parametrize("path", CORPUS_SPECS, ids=lambda p: p.stem)
def test_corpus_spec(path: Path) -> None:
    if not has_einsum(path):
        with pytest.raises(NotationError) as info:
            parse_teaal(path.read_text(), str(path), warn=lambda _: None)
        assert str(info.value) == (
            f"{path}: error: no einsum section (the spec holds "
            f"{', '.join(yaml.safe_load(path.read_text()))}); there is no cascade to import"
        )
        return
    module = parse_teaal(path.read_text(), str(path), warn=lambda _: None)
    module.verify()
    assert_round_trips(module)
    outputs = run_cascade(module, seed=1)
    assert outputs
    for array in outputs.values():
        assert np.all(np.isfinite(array))


@needs_corpus
@pytest.mark.parametrize("name", ["test_arch", "cnn", "extensor", "example7", "sigma"])
def test_corpus_cli_never_tracebacks(name: str) -> None:
    path = CORPUS / f"{name}.yaml"
    result = subprocess.run(
        [str(BIN / "einsum-opt"), str(path)], capture_output=True, text=True, check=False
    )
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if "error:" in ln]
    if has_einsum(path):
        assert result.returncode == 0 and not errors
        assert "einsum.cascade" in result.stdout
    else:
        assert result.returncode == 1 and len(errors) == 1 and not result.stdout


@needs_corpus
def test_corpus_quirks() -> None:
    # `expression:` (cnn, example8) is read like `expressions:`; example8's list-form
    # loop-order is read as one mapping; example9's unknown `partitions:` only warns.
    example8 = load_file(CORPUS / "example8.yaml")
    assert mapping_of(example8, "T1").loop_order == ["J", "I", "L", "K"]
    lines: list[str] = []
    parse_teaal((CORPUS / "example9.yaml").read_text(), "example9.yaml", warn=lines.append)
    assert lines == [
        "warning: example9.yaml:15: mapping.partitions is not a TeAAL mapping key (known: "
        "rank-order, partitioning, loop-order, spacetime); ignored"
    ]
    # sigma: uniform_shape(128) is kept, the flatten/occupancy partitionings are not, and the
    # loop order and spacetime naming their ranks are dropped.
    sigma = quiet((CORPUS / "sigma.yaml").read_text(), "sigma.yaml")
    assert mapping_of(sigma, "Z") == MappingAttr.make("Accelerator", (), {"K": [128]})
    assert cascade_of(sigma).rank_sizes()["K"] == 128


# ---------------------------------------------------------------------------------------------
# Our specs


def test_own_gemm_mapping_and_numerics() -> None:
    module = load_file(OWN / "gemm.yaml")
    assert mapping_of(module, "Z") == MappingAttr.make(
        "pe2d", ["M1", "N", "K1", "M0", "K0"], {"M": [4], "K": [2]}, {"M0": 0, "K0": 1}
    )
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, 8)).astype(np.float32)
    b = rng.standard_normal((8, 8)).astype(np.float32)
    out = run_cascade(module, {"A": a, "B": b})
    np.testing.assert_allclose(out["Z"], a.T @ b, rtol=1e-5, atol=1e-5)
    sizes = {"K": 6, "M": 12, "N": 5}
    a, b = rng.standard_normal((6, 12)), rng.standard_normal((6, 5))
    out = run_cascade(module, {"A": a, "B": b}, ranks=sizes)
    np.testing.assert_allclose(out["Z"], a.T @ b, rtol=1e-5, atol=1e-5)
    assert_round_trips(module)


def conv_reference(i: np.ndarray, f: np.ndarray, stride: int, p: int, q: int) -> np.ndarray:
    """O[k, p, q] = sum_{c, r, s} I[c, g*p + r, g*q + s] * F[k, c, r, s]."""
    k, _, r, s = f.shape
    out = np.zeros((k, p, q))
    for pp in range(p):
        for qq in range(q):
            window = i[:, stride * pp : stride * pp + r, stride * qq : stride * qq + s]
            out[:, pp, qq] = np.einsum("crs,kcrs->k", window, f)
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_own_conv_with_stride(stride: int) -> None:
    module = load_file(OWN / "conv.yaml")
    sizes = cascade_of(module).rank_sizes()
    assert sizes["G"] == 1 and sizes["H"] == sizes["P"] + sizes["R"] - 1
    small = {"C": 2, "K": 3, "P": 3, "Q": 4, "R": 2, "S": 3, "G": stride}
    small["H"] = stride * (small["P"] - 1) + small["R"]
    small["W"] = stride * (small["Q"] - 1) + small["S"]
    set_rank_sizes(module, small)
    module.verify()
    rng = np.random.default_rng(1)
    i = rng.standard_normal((small["C"], small["H"], small["W"]))
    f = rng.standard_normal((small["K"], small["C"], small["R"], small["S"]))
    out = run_cascade(module, {"I": i, "F": f})
    expected = conv_reference(i, f, stride, small["P"], small["Q"])
    np.testing.assert_allclose(out["O"], expected, rtol=1e-5, atol=1e-5)


def test_own_scalar_and_take() -> None:
    module = load_file(OWN / "scalar.yaml")
    names = [n for n, _ in cascade_of(module).inputs()]
    assert names == ["A", "B", "C", "alpha"]
    assert cascade_of(module).inputs()[3][1].rank_names == ()
    assert mapping_of(module, "T").unit_name == "Accelerator"
    assert mapping_of(module, "Z").unit_name == "pe1d"
    assert einsum(module, "T").merge.data.value == "intersect"
    rng = np.random.default_rng(2)
    a, b, c = (rng.standard_normal((8, 8)) for _ in range(3))
    alpha = np.array(0.5)
    out = run_cascade(module, {"A": a, "B": b, "C": c, "alpha": alpha})
    expected = 0.5 * np.einsum("kn,km->mn", b, a) - 8 * c
    np.testing.assert_allclose(out["Z"], expected, rtol=1e-5, atol=1e-5)
    assert_round_trips(module)


def test_own_bad_spec() -> None:
    with pytest.raises(NotationError) as info:
        load_file(OWN / "bad.yaml")
    assert (
        str(info.value) == f"{OWN / 'bad.yaml'}:8:27: error: unknown tensor 'X' (declared: A, B, Z)"
    )


def test_cli_runs_and_resizes() -> None:
    result = subprocess.run(
        [str(BIN / "einsum-run"), str(OWN / "gemm.yaml"), "--ranks", "M=16,N=3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Z shape=(16, 3) dtype=float32")
    result = subprocess.run(
        [str(BIN / "einsum-opt"), str(OWN / "gemm.yaml"), "--ranks", "M=6"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("error: einsum Z: partition M = [4]: 4 does not divide 6")


# ---------------------------------------------------------------------------------------------
# Cascade structure and sizes


def test_inputs_outputs_and_rewrites() -> None:
    module = quiet(
        spec(
            "T[m] = A[m] + B[m]; Z[m] = T[m] * A[m]; Y[m] = s * A[m]",
            "Z: [M]; A: [M]; T: [M]; B: [M]; Y: [M]",
        )
    )
    cascade = cascade_of(module)
    assert [n for n, _ in cascade.inputs()] == ["A", "B", "s"]
    assert cascade.output_names() == ["Z", "Y"]
    # Every written tensor read: the last expression's tensor is the output.
    module = quiet(spec("T[m] = A[m]; Z[m] = T[m]; T[m] = Z[m] * A[m]", "A: [M]; T: [M]; Z: [M]"))
    assert cascade_of(module).output_names() == ["T"]


def test_written_twice_is_renamed() -> None:
    text = spec(
        "Z[m] = A[m] + B[m]; Y[m] = Z[m] * A[m]; Z[m] = Z[m] * B[m]",
        "A: [M]; B: [M]; Y: [M]; Z: [M]",
    )
    lines = warnings_of(text)
    assert lines == [
        "warning: t.yaml:10: Z is written again (first on line 8); the earlier value is named "
        "Z_v1 and later expressions read this one"
    ]
    module = quiet(text)
    assert [e.tensor_name for e in cascade_of(module).einsums()] == ["Z_v1", "Y", "Z"]
    assert cascade_of(module).output_names() == ["Y", "Z"]
    a, b = np.arange(1.0, 9.0), np.arange(2.0, 10.0)
    out = run_cascade(module, {"A": a, "B": b})
    np.testing.assert_allclose(out["Z"], (a + b) * b)
    np.testing.assert_allclose(out["Y"], (a + b) * a)


def test_default_sizes() -> None:
    module = quiet(
        spec(
            GEMM,
            GEMM_DECL,
            "mapping:\n  partitioning:\n    Z:\n      N: [uniform_shape(6), uniform_shape(3)]\n      M: [uniform_shape(16)]\n",
        )
    )
    sizes = cascade_of(module).rank_sizes()
    assert sizes == {"K": DEFAULT_RANK_SIZE, "M": 16, "N": 18}
    # Affine indices grow the rank they index: M = X + R - 1; with a stride g, G*(X-1) + R.
    module = quiet(spec("O[x] = I[x + r] * F[r]", "I: [M]; F: [R]; O: [X]"))
    assert cascade_of(module).rank_sizes()["M"] == 15
    module = quiet(spec("O[x] = I[2*x + r + 1] * F[r]", "I: [M]; F: [R]; O: [X]"))
    assert cascade_of(module).rank_sizes()["M"] == 2 * 7 + 7 + 1 + 1


def test_rank_order_is_kept() -> None:
    module = quiet(spec(GEMM, GEMM_DECL, "mapping:\n  rank-order:\n    A: [M, K]\n"))
    assert str(cascade_of(module).attributes["teaal"]) == '{rank_order = {A = ["M", "K"]}}'


# ---------------------------------------------------------------------------------------------
# Mappings and warnings


def test_bindings_forms() -> None:
    rest = (
        "mapping:\n  loop-order:\n    Z: [N, M, K]\n    T: [M, K]\n"
        "bindings:\n  Z:\n    - config: Config0\n      prefix: tmp/Z\n    - component: Memory\n"
        "      bindings: []\n"
    )
    text = spec(
        "T[m] = A[k, m]; Z[m, n] = T[m] * B[k, n]", "A: [K, M]; B: [K, N]; T: [M]; Z: [M, N]", rest
    )
    module = quiet(text)
    assert mapping_of(module, "Z").unit_name == "Config0"
    assert mapping_of(module, "T") == MappingAttr.make("default", ["M", "K"])
    assert warnings_of(text) == [
        "warning: t.yaml:18: bindings: component bindings are not imported (each Einsum's "
        "config becomes its unit)"
    ]


def test_unrepresentable_partitioning_warns_and_drops() -> None:
    rest = (
        "mapping:\n  partitioning:\n    Z:\n      K: [uniform_shape(K1), uniform_shape(K0)]\n"
        "      M: [uniform_shape(2)]\n"
        "  loop-order:\n    Z: [K2, M1, N, K1, M0, K0]\n"
        "  spacetime:\n    Z:\n      space: [K0]\n      time: [K2, M1, N, K1, M0]\n"
        "format:\n  A: {}\narchitecture:\n  X: []\n"
    )
    lines = warnings_of(spec(GEMM, GEMM_DECL, rest))
    assert lines == [
        "warning: t.yaml:19: section 'format' (storage formats of each tensor rank) is not imported",
        "warning: t.yaml:21: section 'architecture' (the accelerator's components) is not imported",
        "warning: t.yaml:11: mapping.partitioning.Z.K: uniform_shape(K1) has a symbolic shape, "
        "which a dense mapping cannot represent; the partitioning of this rank is ignored",
        "warning: t.yaml:14: loop-order of Z names rank K2, which does not exist once the "
        "partitioning that is not represented is ignored; loop-order of Z ignored",
        "warning: t.yaml:17: spacetime of Z names rank K0, which does not exist once the "
        "partitioning that is not represented is ignored; spacetime of Z ignored",
    ]
    module = quiet(spec(GEMM, GEMM_DECL, rest))
    assert mapping_of(module, "Z") == MappingAttr.make("default", (), {"M": [2]})


def test_other_partitionings_warn() -> None:
    for part in ("nway_shape(2)", "uniform_occupancy(A.4)", "follow(K)"):
        rest = f"mapping:\n  partitioning:\n    Z:\n      K: [{part}]\n"
        (line,) = warnings_of(spec(GEMM, GEMM_DECL, rest))
        assert line.startswith(f"warning: t.yaml:11: mapping.partitioning.Z.K: {part} is not")


# ---------------------------------------------------------------------------------------------
# Errors


ERRORS: list[tuple[str, str]] = [
    ("einsum: [a", "t.yaml:1:11: error: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("", "t.yaml: error: empty TeAAL specification: there is no einsum section to import"),
    (
        "mapping: {}\n",
        "t.yaml: error: no einsum section (the spec holds mapping); there is no cascade to import",
    ),
    ("- 1\n", "t.yaml:1:1: error: a TeAAL specification must be a mapping (key: value lines)"),
    (
        "einsum:\n  expressions: []\n",
        "t.yaml:1:1: error: einsum has no declaration (tensor: [ranks] entries)",
    ),
    ("einsum:\n  declaration: {A: []}\n", "t.yaml:1:1: error: einsum has no expressions"),
    (
        spec(GEMM, "A: [K, m]; B: [K, N]; Z: [M, N]"),
        "t.yaml:3:12: error: rank 'm' of A must be upper case (its index variable is the lower-case name)",
    ),
    (
        spec(GEMM, "A: [K, M]; B: [K, N]"),
        "t.yaml:6:7: error: tensor Z is not declared in einsum.declaration",
    ),
    (
        spec("Z[m, n] = A[k, m] * Y[k, n]", GEMM_DECL),
        "t.yaml:7:27: error: unknown tensor 'Y' (declared: A, B, Z)",
    ),
    (
        spec("Z[m, n] = A[k] * B[k, n]", GEMM_DECL),
        "t.yaml:7:17: error: A has 2 ranks [K, M] but is read with 1 indices",
    ),
    (
        spec("Z[m, n] = A[m, k] * B[k, n]", GEMM_DECL),
        "t.yaml:7:19: error: index m ranges over rank M, but this position of A is rank K (write k, or an affine index)",
    ),
    (
        spec("Z[n, m] = A[k, m] * B[k, n]", GEMM_DECL),
        "t.yaml:7:8: error: Z is declared with ranks [M, N], so the expression writes Z[m, n], not Z[n, m]",
    ),
    (
        spec("Z[m, n] = A[k, m] * * B[k, n]", GEMM_DECL),
        "t.yaml:7:27: error: expected an expression, got '*'",
    ),
    (
        spec("Z[m, n] = A[k, m] B[k, n]", GEMM_DECL),
        "t.yaml:7:25: error: expected an operator or the end of the expression, got 'B'",
    ),
    (
        spec("Z[m, n] = foo(A[k, m])", GEMM_DECL),
        "t.yaml:7:17: error: unknown function 'foo' (known: exp, log, sqrt, abs, max, min, take)",
    ),
    (
        spec("Z[m, n] = take(A[k, m], B[k, n], 2)", GEMM_DECL),
        "t.yaml:7:40: error: take keeps argument 2, but its arguments are numbered 0 to 1",
    ),
    (
        spec("Z[m, n] = take(A[k, m], 2 * B[k, n], 0)", GEMM_DECL),
        "t.yaml:7:33: error: expected ')' after the number of the argument take keeps, got '*'",
    ),
    (
        spec("Z[m, n] = take(A[k, m], K, 0)", GEMM_DECL),
        "t.yaml:7:31: error: expected a tensor access (take's arguments are tensors, then the number of the one to keep)",
    ),
    (
        spec("Z[m, n] = A * B[k, n]", GEMM_DECL),
        "t.yaml:7:17: error: tensor A has ranks [K, M]: write A[...]",
    ),
    (
        spec("Z[m, n] = T[m, n]; T[m, n] = A[k, m] * B[k, n]", GEMM_DECL + "; T: [M, N]"),
        "t.yaml:8:17: error: T is read before any expression writes it (line 9 writes it); an Einsum cannot read its own result",
    ),
    (
        spec("Z[m, n] = A[k, m] * B[k, n] * Q", GEMM_DECL),
        "t.yaml:7:37: error: 'Q' is neither a declared tensor nor a rank",
    ),
    (
        "einsum:\n  declaration: {A: [M]}\n  declaration: {B: [M]}\n  expressions: ['A[m] = B[m]']\n",
        "t.yaml:3:3: error: einsum has key 'declaration' twice",
    ),
    (
        "einsum:\n  declaration: {A: [M], B: [M]}\n  expressions: ['A[m] = B[m]']\n  expression: []\n",
        "t.yaml:4:3: error: einsum has both expressions and expression",
    ),
    (
        'einsum:\n  declaration: {A: [M], B: [M]}\n  expressions: ["A[m] = B[m] +"]\n',
        "t.yaml:3:31: error: expected an expression, got end of line",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  partitioning:\n    Z: {M: [uniform_shape(0)]}\n"),
        "t.yaml:10:13: error: mapping.partitioning.Z.M: uniform_shape(0) must be positive",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  partitioning:\n    Z: {M: [uniformShape(4)]}\n"),
        "t.yaml:10:13: error: mapping.partitioning.Z.M: unknown partitioning 'uniformShape' (known: uniform_shape, nway_shape, uniform_occupancy, flatten, follow)",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  partitioning:\n    Z: {Q: [uniform_shape(4)]}\n"),
        "t.yaml:10:9: error: partitioning of Z names rank Q, which Z does not iterate (its ranks: M, N, K)",
    ),
    (
        spec(
            GEMM,
            GEMM_DECL,
            "mapping:\n  partitioning:\n    Z: {M: [uniform_shape(3), uniform_shape(2)]}\n",
        ),
        "t.yaml:10:9: error: einsum Z: partition M = [3, 2]: 2 does not divide 3",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  loop-order:\n    Z: [M, K]\n"),
        "t.yaml:10:8: error: loop-order of Z [M, K] is not a permutation of its loop ranks [M, N, K]",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  loop-order:\n    Z: [M, N, K0]\n"),
        "t.yaml:10:15: error: loop-order of Z names rank K0, which is not one of its loop ranks [M, N, K]",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  loop-order:\n    Y: [M, N, K]\n"),
        "t.yaml:10:5: error: mapping for Y, which no Einsum writes (Einsums: Z)",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  spacetime:\n    Z: {space: [M, N.pos], time: [N]}\n"),
        "t.yaml:10:35: error: spacetime of Z: rank N is both space and time",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  spacetime:\n    Z: {space: [M+1]}\n"),
        "t.yaml:10:17: error: mapping.spacetime.Z.space: expected a rank (R, R.pos or R.coord), got 'M+1'",
    ),
    (
        spec(GEMM, GEMM_DECL, "bindings:\n  Z: pe-2d\n"),
        "t.yaml:9:6: error: unit name 'pe-2d' must be an identifier (letters, digits, _, $, .)",
    ),
    (
        spec(GEMM, GEMM_DECL, "mapping:\n  partitioning: [1]\n"),
        "t.yaml:9:17: error: mapping.partitioning must be a mapping (key: value lines)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors(text: str, message: str) -> None:
    assert error_of(text) == message


def test_error_in_quoted_expression_points_into_the_quotes() -> None:
    text = "einsum:\n  declaration: {A: [M]}\n  expressions:\n    - 'A[m] = B[m]'\n"
    assert error_of(text) == "t.yaml:4:15: error: unknown tensor 'B' (declared: A)"


def test_verifier_errors_point_at_the_expression() -> None:
    # A shift that no size can keep in range: reported by the verifier at the expression.
    message = error_of(spec("Z[m] = A[m + 1]", "A: [M]; Z: [M]"))
    assert message.startswith("t.yaml:6:7: error: einsum Z: index m+1 of A[m+1] ranges over")


@pytest.mark.parametrize(
    "text",
    ["einsum: {declaration: {A: []}, expressions: ['A[] = b']}\n", "architecture: {}\n", "\t"],
)
def test_loader_reports_one_line(text: str, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = subprocess.run(
        [str(BIN / "einsum-opt"), str(path)], capture_output=True, text=True, check=False
    )
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 1


def _no_warning(_: str) -> None:
    raise AssertionError("no warning expected")


def test_no_warnings_for_plain_specs() -> None:
    warn: Callable[[str], None] = _no_warning
    parse_teaal(spec(GEMM, GEMM_DECL), "t.yaml", warn=warn)
    parse_teaal((OWN / "gemm.yaml").read_text(), "gemm.yaml", warn=warn)
