"""Inputs at the edges: deep nesting, long sums, huge or over-long numbers, bad bytes, long
values, sizes beyond 64 bits, mixed precision. Each either works or is refused with one
`error:` line that names the place; none ends in a traceback or a wrong number."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from einsum_opt import api
from einsum_opt.dialects.einsum_syntax import MAX_DEPTH, MAX_NESTING
from einsum_opt.frontends.teaal_yaml import MAX_YAML_NESTING
from einsum_opt.interpreters.einsum import ExecutionError
from einsum_opt.interpreters.footprint import check_fits_in_memory
from einsum_opt.support.diagnostics import cut_long_values
from einsum_opt.tools.einsum_opt import main as opt_main
from einsum_opt.tools.einsum_run import main as run_main
from einsum_opt.transforms.mapping_roles import divisors, largest_divisor_at_most

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "attention"
HEADER = "ranks M=4, P=4\ninput X[M,P]\noutput S\n"


def opt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = opt_main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    status, out, err = opt(capsys, *args)
    assert (status, out) == (1, ""), err
    (line,) = err.splitlines()
    return line


# -- depth ---------------------------------------------------------------------------------


@pytest.mark.parametrize("operator", ["+", "*", "-"])
def test_a_sum_at_the_depth_limit_runs_and_one_beyond_is_refused_at_its_place(
    operator: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "flat.einsum"
    terms = f" {operator} ".join(["X[m,p]"] * (MAX_DEPTH + 1))
    source.write_text(HEADER + f"S[p] = {terms}\n")
    status, _, err = opt(capsys, str(source), "--check-equivalence", "-p", "count-passes")
    assert status == 0, err
    assert run_main([str(source)]) == 0
    assert capsys.readouterr().err == ""
    source.write_text(HEADER + f"S[p] = {terms} {operator} X[m,p]\n")
    line = one_error(capsys, str(source))
    column = len(f"S[p] = {terms} {operator} X[m,p]") + 1  # where the operation too many ends
    assert line.startswith(f"{source}:4:{column}: error: expression is more than {MAX_DEPTH}")


@pytest.mark.parametrize(
    ("opening", "closing"),
    [("(", ")"), ("exp(", ")"), ("-", ""), ("max(X[m,p], ", ")")],
)
def test_nesting_beyond_the_limit_is_refused_at_its_place(
    opening: str, closing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "nested.einsum"
    deep = MAX_NESTING + 200
    source.write_text(HEADER + f"S[p] = {opening * deep}X[m,p]{closing * deep}\n")
    line = one_error(capsys, str(source))
    assert " error: expression nests more than 100 levels" in line
    assert line.startswith(f"{source}:4:")
    source.write_text(HEADER + f"S[p] = {opening * MAX_NESTING}X[m,p]{closing * MAX_NESTING}\n")
    assert opt(capsys, str(source))[0] == 0


def test_deep_nesting_in_mlir_is_refused_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = api.parse((EXAMPLES / "3pass.einsum").read_text(), "einsum", "a")
    source = tmp_path / "nested.mlir"
    expression = "(" * 300 + "%QK[m, p]" + ")" * 300
    source.write_text(str(text).replace("exp(%QK[m, p] - %GM[p])", f"exp({expression} - %GM[p])"))
    assert "(((" in source.read_text()
    assert "error: expression nests more than 100 levels" in one_error(capsys, str(source))
    generic = tmp_path / "generic.mlir"
    generic.write_text("builtin.module {" * 2000 + "}" * 2000 + "\n")
    line = one_error(capsys, str(generic))
    assert line.startswith(f"{generic}:1:") and "nests too deeply here to be parsed" in line


def test_deep_yaml_is_refused_at_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    deep = "[" * 500 + "K" + "]" * 500
    spec.write_text(f"einsum:\n  declaration:\n    A: {deep}\n")
    line = one_error(capsys, str(spec))
    assert line == (
        # three mappings enclose the list: the document, einsum's and declaration's
        f"{spec}:3:{len('    A: ') + MAX_YAML_NESTING + 1 - 3}: error: lists and mappings nest more than "
        f"{MAX_YAML_NESTING} levels deep here"
    )
    expression = "(" * 500 + "A[k]" + ")" * 500
    spec.write_text(
        f"einsum:\n  declaration: {{A: [K], Z: [K]}}\n  expressions:\n    - Z[k] = {expression}\n"
    )
    assert "error: expression nests more than 100 levels" in one_error(capsys, str(spec))


# -- places and messages -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "place"),
    [
        ("bad.einsum", b"ranks M=4\ninput X[M]\noutput Y\nY[m] = X[m] \xff\n", "4:13"),
        ("bad.mlir", b"// a comment \xc3\x28\n", "1:14"),
        ("bad.yaml", b"einsum:\n  declaration: {A: [\xfe]}\n", "2:21"),
    ],
)
def test_invalid_utf8_names_the_file_and_the_place(
    name: str, text: bytes, place: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / name
    source.write_bytes(text)
    byte = next(b for b in text if b >= 0x80)
    message = f"{source}:{place}: error: not valid UTF-8 (byte 0x{byte:02x})"
    assert one_error(capsys, str(source)) == message
    assert run_main([str(source)]) == 1
    assert capsys.readouterr().err.strip() == message


def test_over_long_integers_are_refused_at_their_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digits = "9" * 5000
    source = tmp_path / "big.einsum"
    source.write_text(f"ranks M={digits}, P=4\ninput X[M,P]\noutput S\nS[p] = X[m,p]\n")
    assert one_error(capsys, str(source)) == (
        f"{source}:1:9: error: integer with 5000 digits (at most 4300 are supported)"
    )
    mlir = tmp_path / "big.mlir"
    small = (ROOT / "tests" / "filecheck" / "tools" / "Inputs" / "small.mlir").read_text()
    mlir.write_text(small.replace("M = 8", f"M = {digits}"))
    line = one_error(capsys, str(mlir))
    assert line.startswith(f"{mlir}:1:") and "more than 4300 digits" in line
    line = one_error(capsys, str(EXAMPLES / "1pass.mlir"), "--ranks", f"M={digits}")
    assert (
        line
        == "error: --ranks rank M: size is an integer with 5000 digits (at most 4300 are supported)"
    )


def test_a_zero_trip_count_is_refused_where_it_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "loops.mlir"
    nest = (
        "  %G = loopnest.nest on pe1d loops [p = 16, m = 0] levels [DRAM, GLB] G[p] = "
        "%X[m, p] :: max(m) : !einsum.tensor<[P], f32>\n"
    )
    source.write_text(
        "einsum.cascade @c(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> "
        "ranks(M = 8, P = 16) {\n" + nest + "  einsum.return %G : !einsum.tensor<[P], f32>\n}\n"
    )
    column = nest.index("0]") + 1
    assert one_error(capsys, str(source)) == (
        f"{source}:2:{column}: error: loop m must have a positive trip count, got 0"
    )


def test_long_values_are_cut_in_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = "x" * 200_000
    assert len(cut_long_values(f"got '{value}' here")) < 200
    assert cut_long_values("short words stay") == "short words stay"
    arch = (ROOT / "hardware" / "architectures" / "edge.yaml").read_text()
    lines = [
        f"clock_mhz: {value}" if ln.startswith("clock_mhz:") else ln for ln in arch.splitlines()
    ]
    (tmp_path / "long.yaml").write_text("\n".join(lines) + "\n")
    pipeline = f'map-fusemax,lower-to-loopnest,lower-to-dataflow{{arch="{tmp_path / "long.yaml"}"}}'
    line = one_error(capsys, str(EXAMPLES / "1pass.mlir"), "-p", pipeline)
    assert "clock_mhz" in line and "200002 characters" in line and len(line) < 500


# -- sizes ---------------------------------------------------------------------------------


def test_ranks_beyond_64_bits_in_the_einsum_and_loopnest_dialects(
    capsys: pytest.CaptureFixture[str],
) -> None:
    huge = 2**64 + 1
    module = api.load(EXAMPLES / "3pass.einsum")
    api.set_rank_sizes(module, {"M": huge, "P": huge})
    text = str(module)
    assert f"M = {huge}" in text
    again = api.parse(text)
    generic = api.parse(_generic(again))
    assert str(generic) == text
    assert api.passes(module)["M"] == 3
    api.apply(module, "fuse-max-sum,fuse-numerator,cleanup,count-passes")  # unsplit: any size
    assert api.passes(module)["M"] == 1
    huge_tiles = 2**64  # divisible by the tile: a whole number of tiles
    mapped = api.load(EXAMPLES / "3pass.einsum")
    api.set_rank_sizes(mapped, {"M": huge_tiles, "P": huge_tiles})
    api.apply(mapped, "pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest")
    assert f"m1 = {huge_tiles // 256}" in str(mapped)
    # 2**64 + 1 = 274177 * 67280421310721: no divisor fits the 256-wide array but 1, so FLAT's
    # tiles are whole rows of one element each (legal, if slow), found by factorization.
    status, out, err = opt(
        capsys, str(EXAMPLES / "3pass.einsum"), "--ranks", f"M={huge},P={huge}", "-p", "map-flat"
    )
    assert (status, err) == (0, ""), err
    assert "partition = {P = [1, 1], M = [1]}" in out


def _generic(module: object) -> str:
    from io import StringIO

    from xdsl.printer import Printer

    out = StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)  # type: ignore[arg-type]
    return out.getvalue()


def test_einsum_run_refuses_sizes_that_do_not_fit_before_allocating(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [str(EXAMPLES / "3pass.einsum"), "--ranks", f"M={2**64 + 1},P=1048576"]
    assert run_main(args) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cascade @attention needs ")
    assert f"M = {2**64 + 1}, P = 1048576] of f32" in line and "of memory" in line
    module = api.load(EXAMPLES / "3pass.einsum")
    (cascade,) = [op for op in module.walk() if op.name == "einsum.cascade"]
    sizes = {"E": 64, "F": 64, "M": 1024, "P": 1024}
    check_fits_in_memory(cascade, sizes, limit=64 * 2**20)  # QK, SN, A: 4 MiB each
    with pytest.raises(ExecutionError, match=r"needs 13\.\d MiB .* QK \[M = 1024, P = 1024\]"):
        check_fits_in_memory(cascade, sizes, limit=2**20)


@given(st.integers(1, 3000), st.integers(1, 600))
def test_divisors_are_the_brute_force_answer(count: int, limit: int) -> None:
    assert divisors(count) == [d for d in range(1, count + 1) if count % d == 0]
    fits = [d for d in range(1, count + 1) if count % d == 0 and d <= limit]
    assert largest_divisor_at_most(count, limit) == max(fits)


def test_choosing_a_block_does_not_depend_on_the_length() -> None:
    """The divisors come from the factorization: 2^80 tokens have 81, a large prime two."""
    assert divisors(2**80) == [2**k for k in range(81)]
    assert divisors(2**61 - 1) == [1, 2**61 - 1]
    assert largest_divisor_at_most(2**80, 2**24 // 512) == 2**15


# -- mixed precision -----------------------------------------------------------------------


def test_mixed_precision_attention_is_costed_like_f32() -> None:
    text = (EXAMPLES / "3pass.einsum").read_text()
    assert "input Q[E,P], K[E,M], V[F,M]" in text
    mixed = api.parse(text.replace("input Q[E,P],", "input Q[E,P]: f16,"), "einsum", "m")
    assert "arith.extf" in _generic(mixed)
    plain = api.parse(text, "einsum", "p")
    for pipeline in (
        "pass-fusion,map-fusemax,lower-to-loopnest,lower-to-dataflow",
        "map-unfused,lower-to-loopnest,lower-to-dataflow{arch=flat}",
    ):
        costs = [api.cost(api.apply(m.clone(), pipeline)) for m in (mixed, plain)]
        assert costs[0].cycles == costs[1].cycles
        assert costs[0].energy_pj == pytest.approx(costs[1].energy_pj)


def test_a_cast_only_copy_is_a_view() -> None:
    from einsum_opt.dialects.loopnest import NestOp
    from einsum_opt.lowering.op_counts import count_ops, is_copy

    source = """
einsum.cascade @c(%X: !einsum.tensor<[M, P], f16>) -> !einsum.tensor<[P], f32> ranks(M = 256, P = 256) {
  %Y = einsum.einsum Y[m, p] = map(%X[m, p]) {
  ^bb0(%x: f16):
    %y = arith.extf %x : f16 to f32
    einsum.yield %y : f32
  } : !einsum.tensor<[M, P], f32>
  %S = einsum.einsum S[p] = %Y[m, p] :: max(m) : !einsum.tensor<[P], f32>
  einsum.return %S : !einsum.tensor<[P], f32>
}
"""
    module = api.apply(api.parse(source), "map-unfused,lower-to-loopnest")
    nests = {op.tensor_name: op for op in module.walk() if isinstance(op, NestOp)}
    assert is_copy(nests["Y"]) and count_ops(nests["Y"]) == {}
    assert count_ops(nests["S"]) == {"max": 1}
    out = api.run(module, seed=0)
    assert out["S"].dtype == np.float32 and math.isfinite(float(out["S"].max()))
    report = api.cost(api.apply(module, "lower-to-dataflow"))
    assert report.per_einsum["S"].unit == "pe1d" and "Y" not in report.per_einsum


# -- --check-equivalence and set-ranks ------------------------------------------------------


def test_check_equivalence_after_set_ranks_compares_at_the_new_sizes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for source in ("3pass.mlir", "3pass.einsum"):
        args = [str(EXAMPLES / source), "-p", 'set-ranks{sizes="M=512"},pass-fusion']
        status, out, err = opt(capsys, *args, "--check-equivalence")
        assert status == 0, err
        lines = err.splitlines()
        assert lines[0] == (
            "check-equivalence: @attention: compared at the sizes after the pipeline: "
            "M = 512 (was 1024)"
        )
        assert lines[-1].endswith(": ok") and "M = 512" in out


def test_equal_infinities_are_equivalent() -> None:
    from einsum_opt.interpreters.equivalence import compare_outputs

    before = np.array([np.inf, -np.inf, 1.0, np.nan])
    assert compare_outputs(before, before.copy()) == (0.0, 1.0)
    assert compare_outputs(before, np.array([np.inf, np.inf, 1.0, np.nan]))[0] == math.inf
