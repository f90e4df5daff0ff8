"""`einsum-opt` as users run it: one-line errors, untouched outputs on failure, flags that work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EINSUM_OPT = str(Path(sys.executable).parent / "einsum-opt")
SMALL = """\
einsum.cascade @scale(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 8, P = 4) {
  %S = einsum.einsum S[p] = %X[m, p] * 2.0 : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
"""


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EINSUM_OPT, *args], capture_output=True, text=True, input=stdin, timeout=120
    )


BAD_INPUTS = {
    "truncated": "builtin.module {\n  einsum.cascade @x(\n",
    "unknown op": "%x = einsum.nope : () -> ()\n",
    "garbage": "this is not MLIR at all\n",
    "undeclared rank": SMALL.replace("ranks(M = 8, P = 4)", "ranks(M = 8)"),
    "wrong index count": SMALL.replace("%X[m, p]", "%X[m]"),
    "bad reduce": SMALL.replace(" * 2.0 :", " :: mean(m) :"),
    "two sizes": SMALL.replace("ranks(M = 8, P = 4)", "ranks(M = 8, P = 4, M = 2)"),
    "no element type": SMALL.replace("-> !einsum.tensor<[P], f32>", "-> !einsum.tensor<[P]>"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_status_1(case: str, tmp_path: Path) -> None:
    source = tmp_path / "bad.mlir"
    source.write_text(BAD_INPUTS[case])
    result = run(str(source))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith(f"{source}:") or lines[0].startswith("error:")
    assert "error: " in lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "nonsense"],
        ["-p", "set-ranks{sizes=}"],
        ["-p", "set-ranks{"],
        ["--ranks", "M"],
        ["--ranks", "M=-3"],
        ["-t", "nope"],
    ],
)
def test_bad_options_give_one_error_line(args: list[str], tmp_path: Path) -> None:
    source = tmp_path / "ok.mlir"
    source.write_text(SMALL)
    result = run(str(source), *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr.splitlines()[-1]


def test_missing_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nowhere.mlir"))
    assert result.returncode == 1
    assert (
        result.stderr.strip() == f"error: cannot read '{tmp_path / 'nowhere.mlir'}': no such file"
    )


def test_failed_run_leaves_output_file_untouched(tmp_path: Path) -> None:
    source = tmp_path / "bad.mlir"
    source.write_text(BAD_INPUTS["undeclared rank"])
    out = tmp_path / "out.mlir"
    out.write_text("previous contents\n")
    assert run(str(source), "-o", str(out)).returncode == 1
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mlir", "out.mlir"]


def test_output_file_and_stdin(tmp_path: Path) -> None:
    out = tmp_path / "out.mlir"
    result = run("-o", str(out), stdin=SMALL)
    assert result.returncode == 0, result.stderr
    assert "einsum.einsum S[p] = %X[m, p] * 2.0" in out.read_text()


def test_generic_output_pipes_back_in() -> None:
    example = str(ROOT / "examples" / "attention" / "1pass.mlir")
    generic = run(example, "--print-op-generic")
    assert generic.returncode == 0
    assert '"einsum.einsum"' in generic.stdout
    again = run(stdin=generic.stdout)
    assert again.returncode == 0
    assert again.stdout == run(example).stdout


def test_split_input_file_keeps_chunks_and_diagnostics_in_order(tmp_path: Path) -> None:
    source = tmp_path / "chunks.mlir"
    bad = BAD_INPUTS["wrong index count"].replace(
        "  %S", "  // expected-error @+1 {{has 1 indices but X has 2 ranks}}\n  %S"
    )
    source.write_text(SMALL + "// -----\n" + bad + "// -----\n" + SMALL)
    result = run(str(source), "--split-input-file", "--verify-diagnostics")
    assert (result.returncode, result.stderr) == (0, "")
    chunks = result.stdout.split("// -----")
    assert len(chunks) == 3
    assert "einsum.cascade @scale" in chunks[0] and "einsum.cascade @scale" in chunks[2]
    assert chunks[1] == "\n"  # the chunk that failed as expected prints nothing


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("einsum-opt ")


def test_check_equivalence_reports_each_output() -> None:
    example = str(ROOT / "examples" / "attention" / "1pass.einsum")
    result = run(example, "--ranks", "M=512,P=64", "--check-equivalence", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("check-equivalence: @attention AV: max abs error 0")
    assert result.stderr.rstrip().endswith(": ok")


def test_check_equivalence_fails_on_different_cascades() -> None:
    from einsum_opt.frontends.loading import load_file
    from einsum_opt.interpreters.equivalence import check_equivalence
    from einsum_opt.support.errors import UserError

    three = load_file(ROOT / "examples" / "attention" / "3pass.einsum")
    one = load_file(ROOT / "examples" / "attention" / "1pass.einsum")
    for module in (three, one):
        from einsum_opt.transforms.set_ranks import set_rank_sizes

        set_rank_sizes(module, {"M": 256, "P": 32})
    lines: list[str] = []
    check_equivalence(three, one, seed=0, rtol=1e-5, atol=0.0, report=lines.append)
    assert len(lines) == 1 and lines[0].endswith("ok")
    # The same attention without its normalisation differs from the original.
    from einsum_opt.frontends.notation import parse_einsum_notation

    text = (ROOT / "examples" / "attention" / "3pass.einsum").read_text()
    assert "SN[m,p] / SD[p]" in text
    broken = parse_einsum_notation(text.replace("SN[m,p] / SD[p]", "SN[m,p] / GM[p]"), "b")
    set_rank_sizes(broken, {"M": 256, "P": 32})
    with pytest.raises(UserError, match="outputs differ: @attention output AV"):
        check_equivalence(three, broken, seed=0, rtol=1e-5, atol=0.0, report=lines.append)
    assert lines[-1].endswith("DIFFERENT")
