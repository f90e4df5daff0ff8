"""`--verify-diagnostics`: mlir-opt's expected-error/warning/remark/note annotations, checked
against the diagnostics a run produces (exit 0 when they match exactly, 1 otherwise)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from einsum_opt.support.diagnostics import Diagnostic
from einsum_opt.tools.einsum_opt import main
from einsum_opt.tools.verify_diagnostics import expectations_in, verify

ROOT = Path(__file__).resolve().parent.parent

TEXT = """\
line 1 // expected-error {{on this line}}
// expected-warning @+2 {{two below}}
// expected-remark @-2 {{two above}}
line 4
// expected-note @below {{next line without an annotation}}
// expected-error @above {{previous line without an annotation}}
line 7
// expected-remark @unknown {{no place}}
// expected-error-re @+1 {{value {{[0-9]+}} is {{(big|small)}}}}
line 10 // expected-error {{first}} expected-warning {{second}}
"""


def test_annotations_and_their_lines() -> None:
    found = expectations_in(TEXT, first_line=1)
    assert [(e.severity, e.line, e.text) for e in found] == [
        ("error", 1, "on this line"),
        ("warning", 4, "two below"),
        ("remark", 1, "two above"),
        ("note", 7, "next line without an annotation"),
        ("error", 4, "previous line without an annotation"),
        ("remark", None, "no place"),
        ("error", 10, "value {{[0-9]+}} is {{(big|small)}}"),
        ("error", 10, "first"),
        ("warning", 10, "second"),
    ]
    assert [e.annotation_line for e in found][:3] == [1, 2, 3]


def test_lines_count_from_the_chunk_start() -> None:
    (found,) = expectations_in("x\n// expected-error @-1 {{m}}\n", first_line=41)
    assert (found.line, found.annotation_line) == (41, 42)


def test_regex_parts_and_literal_parts() -> None:
    *_, regex, _, _ = expectations_in(TEXT)
    assert regex.matches(Diagnostic("error", "the value 42 is big, really", "f", 10, 3))
    assert not regex.matches(Diagnostic("error", "the value x is big", "f", 10, 3))
    (literal,) = expectations_in("x // expected-error {{a.b (c)}}\n")
    assert literal.matches(Diagnostic("error", "say a.b (c) twice", "f", 1))
    assert not literal.matches(Diagnostic("error", "say axb (c)", "f", 1))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("// expected-error @+1 {{unclosed\n", "line 1: malformed expected-* annotation"),
        ("// expected-error @+3 {{too far}}\nx\n", "line 1: expected-* @+3 refers to a line"),
        ("// expected-error @above {{nothing above}}\n", "refers to a line outside the input"),
    ],
)
def test_malformed_annotations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        expectations_in(text)


def test_text_that_only_mentions_annotations_is_not_one() -> None:
    assert expectations_in("// RUN: sed 's/expected-error/x/' %s\n") == []


def test_every_mismatch_is_reported_once() -> None:
    expected = expectations_in("a // expected-error {{wanted}}\nb // expected-warning {{w}}\n")
    produced = [
        Diagnostic("error", "something wanted here", "f.mlir", 1, 5),  # matches the first
        Diagnostic("error", "not announced", "f.mlir", 2, 1),  # wrong severity for line 2
        Diagnostic("remark", "floating", None),
    ]
    assert verify(expected, produced, "f.mlir") == [
        "f.mlir:2:1: error: unexpected error: not announced",
        "f.mlir: error: unexpected remark: floating",
        'f.mlir:2:6: error: expected warning "w" was not produced',
    ]
    assert verify(expected, produced[:1] + [Diagnostic("warning", "w!", "f.mlir", 2)], "x") == []


# -- through einsum-opt -----------------------------------------------------------------------

GOOD = """\
einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  %S = einsum.einsum S[p] = %X[m, p] : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
"""
BAD = GOOD.replace("ranks(M = 4, P = 4)", "ranks(M = 4)")


def opt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_expected_error_found_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "t.mlir"
    annotated = "// expected-error @+1 {{input X: rank P is not declared}}\n" + BAD
    source.write_text(GOOD + "// -----\n" + annotated)
    status, out, err = opt(capsys, str(source), "--split-input-file", "--verify-diagnostics")
    assert (status, err) == (0, "")
    assert out.count("einsum.cascade @c") == 1  # the chunk that verified is printed


def test_missing_and_unexpected_diagnostics_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "t.mlir"
    annotated = GOOD.replace("  %S", "  // expected-error @+1 {{never happens}}\n  %S")
    source.write_text(annotated + "// -----\n" + BAD)
    status, _, err = opt(capsys, str(source), "--split-input-file", "--verify-diagnostics")
    assert status == 1
    assert err.splitlines() == [
        f'{source}:2:6: error: expected error "never happens" was not produced',
        f"{source}:7:16: error: unexpected error: cascade @c: input X: rank P is not declared "
        "in cascade @c ranks(M = 4)",
        "error: 2 diagnostic(s) did not match",
    ]


def test_remarks_of_passes_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "t.mlir"
    source.write_text("// expected-remark @unknown {{every rank already needs 1 pass}}\n" + GOOD)
    args = [str(source), "-p", "pass-fusion", "--verify-diagnostics"]
    assert opt(capsys, *args)[0] == 0
    source.write_text(GOOD)
    status, _, err = opt(capsys, *args)
    assert status == 1 and "unexpected remark: pass-fusion: @c: every rank" in err


def test_warnings_of_the_teaal_frontend_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = (ROOT / "tests" / "teaal" / "gemm.yaml").read_text()
    source = tmp_path / "spec.yaml"
    source.write_text(spec + "format: {}  # expected-warning {{section 'format'}}\n")
    assert opt(capsys, str(source), "--verify-diagnostics")[0] == 0
    source.write_text(spec + "format: {}\n")
    status, _, err = opt(capsys, str(source), "--verify-diagnostics")
    line = spec.count("\n") + 1
    assert status == 1 and f"{source}:{line}: error: unexpected warning: section 'format'" in err


def test_parse_errors_are_diagnostics_at_their_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "t.mlir"
    bad = (
        "%x = einsum.nope : () -> ()  // expected-error {{Operation einsum.nope is not registered}}"
    )
    source.write_text(GOOD + "// -----\n" + bad + "\n")
    status, out, err = opt(capsys, str(source), "--split-input-file", "--verify-diagnostics")
    assert (status, err) == (0, "")
    assert out.count("einsum.cascade @c") == 1 and out.rstrip().endswith("// -----")
