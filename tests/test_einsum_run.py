"""`einsum-run`: outputs, npz round trips, options, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from einsum_opt.frontends.loading import load_file
from einsum_opt.interpreters.einsum import run_cascade
from einsum_opt.tools.einsum_run import main
from einsum_opt.transforms.set_ranks import parse_rank_sizes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "attention"
ONE_PASS = str(EXAMPLES / "1pass.mlir")
THREE_PASS = str(EXAMPLES / "3pass.mlir")
SMALL = "M=64,M0=16,P=5,E=3,F=2"
SMALL_SIZES = {"M": 64, "M0": 16, "P": 5, "E": 3, "F": 2}
EINSUM_RUN = Path(sys.executable).parent / "einsum-run"

TWO_CASCADES = """
einsum.cascade @double(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 3) {
  %Y = einsum.einsum Y[m] = %X[m] * 2.0 : !einsum.tensor<[M], f32>
  einsum.return %Y : !einsum.tensor<[M], f32>
}
einsum.cascade @total(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 3) {
  %S = einsum.einsum S[m+1] = S[m] + %X[m] init(0.0) : !einsum.tensor<[M], f32>
  einsum.return %S : !einsum.tensor<[M], f32>
}
"""


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an .npz file."""
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def assert_one_error_line(stderr: str) -> str:
    """The single stderr line, checked to be an `error:` diagnostic."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") or ": error: " in lines[0], stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- successful runs ----------------------------------------------------------------------------


def test_output_file_holds_the_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.npz"
    assert main([ONE_PASS, "--ranks", SMALL, "-o", str(out)]) == 0
    assert capsys.readouterr().out == ""
    arrays = load_npz(out)
    assert list(arrays) == ["AV"] and arrays["AV"].shape == (2, 5)
    expected = run_cascade(load_file(ONE_PASS), ranks=SMALL_SIZES, seed=0)["AV"]
    np.testing.assert_array_equal(arrays["AV"], expected)
    assert [p.name for p in tmp_path.iterdir()] == ["out.npz"]  # no temporary left behind


def test_inputs_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (3, 64), (2, 64)))
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v)
    for name, ranks in (("1pass", SMALL), ("3pass", "M=64,P=5,E=3,F=2")):
        out = tmp_path / f"{name}.npz"
        args = [
            str(EXAMPLES / f"{name}.mlir"),
            "--inputs",
            str(tmp_path / "in.npz"),
            "--ranks",
            ranks,
            "-o",
            str(out),
        ]
        assert main(args) == 0
        qk = q.T @ k
        a = np.exp(qk - qk.max(axis=1, keepdims=True))
        expected = (a / a.sum(axis=1, keepdims=True)) @ v.T
        np.testing.assert_allclose(load_npz(out)["AV"], expected.T, rtol=1e-5, atol=1e-5)


def test_partial_inputs_and_seed(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", K=np.zeros((3, 64), dtype=np.float32))
    runs = {}
    for tag, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / f"{tag}.npz"
        args = [
            THREE_PASS,
            "--inputs",
            str(tmp_path / "in.npz"),
            "--seed",
            seed,
            "--ranks",
            "M=64,P=5",
            "--ranks",
            "E=3,F=2",
            "-o",
            str(out),
        ]
        assert main(args) == 0
        runs[tag] = load_npz(out)["AV"]
    np.testing.assert_array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])


def test_summary_and_print(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([THREE_PASS, "--ranks", "M=8,P=3,E=2,F=2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("AV shape=(2, 3) dtype=float32 min=")
    for word in ("max=", "mean=", "std="):
        assert word in lines[0]
    assert main([THREE_PASS, "--ranks", "M=8,P=3,E=2,F=2", "--print"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == lines[0] and printed[1].startswith("[[")


def test_cascade_choice_and_iterative_output(tmp_path: Path) -> None:
    source = tmp_path / "two.mlir"
    source.write_text(TWO_CASCADES)
    np.savez(tmp_path / "x.npz", X=np.array([1, 2, 3], dtype=np.float32))
    out = tmp_path / "out.npz"
    args = [str(source), "--inputs", str(tmp_path / "x.npz"), "-o", str(out)]
    assert main([*args, "--cascade", "total"]) == 0
    np.testing.assert_array_equal(load_npz(out)["S"], [0, 1, 3, 6])  # as stored: M + 1 entries
    assert main([*args, "--cascade", "@double"]) == 0
    np.testing.assert_array_equal(load_npz(out)["Y"], [2, 4, 6])


# -- errors -------------------------------------------------------------------------------------


def bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Named bad command lines and a piece of their expected message."""
    (tmp / "garbage.mlir").write_text("einsum.cascade @x(\n")
    (tmp / "unverified.mlir").write_text(
        "einsum.cascade @u(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> "
        "ranks(P = 3) {\n  einsum.return %X : !einsum.tensor<[M], f32>\n}\n"
    )
    (tmp / "two.mlir").write_text(TWO_CASCADES)
    (tmp / "text.npz").write_text("not an archive")
    np.savez(tmp / "extra.npz", Q=np.zeros((64, 1024), np.float32), W=np.zeros(3))
    np.savez(tmp / "shape.npz", K=np.zeros((64, 100), np.float32))
    out = str(tmp / "out.npz")
    return {
        "missing file": ([str(tmp / "nope.mlir")], "cannot read"),
        # no loader for the extension: the content decides (here: not MLIR)
        "unknown kind": ([str(tmp / "text.npz")], "text.npz:1:5: error: Operation not is not"),
        "unknown -f": ([str(tmp / "garbage.mlir"), "-f", "c"], "argument -f/--frontend: invalid"),
        "parse error": ([str(tmp / "garbage.mlir")], "garbage.mlir:"),
        "verify error": ([str(tmp / "unverified.mlir")], "rank M is not declared"),
        "two cascades": (
            [str(tmp / "two.mlir")],
            "holds 2 cascades (@double, @total): choose one with --cascade",
        ),
        "unknown cascade": ([ONE_PASS, "--cascade", "nope"], "no cascade @nope"),
        "not npz": ([ONE_PASS, "--inputs", str(tmp / "text.npz")], "not an .npz archive"),
        "missing npz": ([ONE_PASS, "--inputs", str(tmp / "none.npz")], "no such file"),
        "unknown input": ([THREE_PASS, "--inputs", str(tmp / "extra.npz")], "holds 'W'"),
        "wrong shape": (
            [THREE_PASS, "--inputs", str(tmp / "shape.npz"), "-o", out],
            "input K: rank M (dimension 1) has size 100 in the array but 1024",
        ),
        "unknown rank": ([ONE_PASS, "--ranks", "X=3"], "undeclared rank X"),
        "bad ranks": ([ONE_PASS, "--ranks", "M:3"], "expected NAME=SIZE"),
        "zero rank": ([ONE_PASS, "--ranks", "M=0"], "positive size"),
        "split mismatch": ([ONE_PASS, "--ranks", "M=1000"], "einsum BK: index m1*M0+m0"),
        "negative seed": ([ONE_PASS, "--seed", "-2"], "non-negative"),
        "bad seed": ([ONE_PASS, "--seed", "x"], "invalid int value"),
        "unknown option": ([ONE_PASS, "--bogus"], "unrecognized arguments: --bogus"),
        "no file": ([], "required: FILE"),
        "output dir": ([ONE_PASS, "-o", str(tmp / "no" / "out.npz")], "does not exist"),
    }


CASES = [
    "missing file",
    "unknown kind",
    "unknown -f",
    "parse error",
    "verify error",
    "two cascades",
    "unknown cascade",
    "not npz",
    "missing npz",
    "unknown input",
    "wrong shape",
    "unknown rank",
    "bad ranks",
    "zero rank",
    "split mismatch",
    "negative seed",
    "bad seed",
    "unknown option",
    "no file",
    "output dir",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args, message = bad_inputs(tmp_path)[case]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert message in assert_one_error_line(captured.err)
    assert captured.out == ""
    assert not (tmp_path / "out.npz").exists()


def test_parse_error_names_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args, _ = bad_inputs(tmp_path)["parse error"]
    assert main(args) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert line.startswith(f"{tmp_path / 'garbage.mlir'}:")
    assert ": error: " in line


def test_failed_run_keeps_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    assert main([THREE_PASS, "--ranks", "M=8,P=3,E=2,F=2", "-o", str(out)]) == 0
    before = out.read_bytes()
    np.savez(tmp_path / "shape.npz", Q=np.zeros((2, 4), np.float32))
    args = [
        THREE_PASS,
        "--ranks",
        "M=8,P=3,E=2,F=2",
        "--inputs",
        str(tmp_path / "shape.npz"),
        "-o",
        str(out),
    ]
    assert main(args) == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz", "shape.npz"]


@pytest.mark.parametrize("case", ["parse error", "wrong shape", "bad ranks", "unknown option"])
def test_console_script_reports_one_line(case: str, tmp_path: Path) -> None:
    args, message = bad_inputs(tmp_path)[case]
    result = subprocess.run(
        [str(EINSUM_RUN), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert message in assert_one_error_line(result.stderr)
    assert result.stdout == ""


def test_console_script_runs(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    result = subprocess.run(
        [str(EINSUM_RUN), ONE_PASS, "--ranks", SMALL, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and load_npz(out)["AV"].shape == (2, 5)


# -- --ranks ------------------------------------------------------------------------------------


def test_parse_rank_sizes() -> None:
    assert parse_rank_sizes("M=512,P=256") == {"M": 512, "P": 256}
    assert parse_rank_sizes(" M0 = 16 , Big_1=3 ") == {"M0": 16, "Big_1": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty value"),
        ("M=3,", "empty entry"),
        ("M", "expected NAME=SIZE"),
        ("m=3", "'m' is not a rank name"),
        ("M=x", "size 'x' is not an integer"),
        ("M=1.5", "is not an integer"),
        ("M=-1", "positive size"),
        ("M=1,M=2", "rank M is given twice"),
    ],
)
def test_parse_rank_sizes_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rank_sizes(text)
