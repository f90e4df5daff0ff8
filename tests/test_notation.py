"""The Extended Einsum notation frontend: statement forms, examples, diagnostics, renaming."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xdsl.dialects import arith
from xdsl.dialects.builtin import ModuleOp, bf16, f16, f32, f64, i32, i64

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_map import extract_expr
from einsum_opt.dialects.einsum_syntax import IndexExpr, is_variable_name
from einsum_opt.dialects.locations import location_of
from einsum_opt.frontends.errors import NotationError
from einsum_opt.frontends.loading import load_file, parse_mlir
from einsum_opt.frontends.notation import parse_einsum_notation

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ATTENTION = ("3pass", "2pass", "1pass")


def parse(text: str, filename: str = "t.einsum") -> ModuleOp:
    """Parse notation text."""
    return parse_einsum_notation(text, filename)


def cascade_of(module: ModuleOp) -> CascadeOp:
    """The module's only cascade."""
    (cascade,) = [op for op in module.ops if isinstance(op, CascadeOp)]
    return cascade


def einsum(module: ModuleOp, name: str) -> EinsumOp:
    """The Einsum producing `name`."""
    (op,) = [e for e in cascade_of(module).einsums() if e.tensor_name == name]
    return op


def idx(text: str) -> tuple[IndexExpr, ...]:
    """Indices as the dialect parses them, e.g. `idx("m1+1, p")`."""
    module = parse(f"ranks M1=4, P=2, M=4, M0=2\ninput X[M1,P]\noutput Y\nY[{text}] = X[m1,p]\n")
    return einsum(module, "Y").output_indices


# ---------------------------------------------------------------------------------------------
# Statement forms


def test_cascade_name_line() -> None:
    module = parse("cascade softmax_1\nranks M=4\ninput X[M]\noutput X\n")
    assert cascade_of(module).cascade_name == "softmax_1"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [("dir/my_kernel.einsum", "my_kernel"), ("examples/3pass.einsum", "main"), ("<stdin>", "main")],
)
def test_default_cascade_name(filename: str, expected: str) -> None:
    module = parse("ranks M=4\ninput X[M]\noutput X\n", filename)
    assert cascade_of(module).cascade_name == expected


def test_ranks_in_declaration_order_with_derived_sizes() -> None:
    text = "ranks M=1000, P=3\nranks M0=64, M1=M/M0\ninput X[M,P]\noutput X\n"
    cascade = cascade_of(parse(text))
    assert cascade.ranks.data == (("M", 1000), ("P", 3), ("M0", 64), ("M1", ("M", "M0")))
    assert cascade.rank_sizes()["M1"] == 16


@pytest.mark.parametrize(
    ("spelling", "element"),
    [
        ("", f32),
        (": f16", f16),
        (": bf16", bf16),
        (": f32", f32),
        (": f64", f64),
        (": i32", i32),
        (":i64", i64),
    ],
)
def test_input_element_types(spelling: str, element: Any) -> None:
    cascade = cascade_of(parse(f"ranks M=4\ninput X[M]{spelling}, S[]\noutput X\n"))
    (_, x), (_, s) = cascade.inputs()
    assert x.rank_names == ("M",) and x.element_type == element
    assert s.rank_names == () and s.element_type == f32


def test_einsum_with_default_add_reduction() -> None:
    module = parse(
        "ranks E=2, M=3, P=4\ninput Q[E,P], K[E,M]\noutput QK\nQK[m,p] = Q[e,p] * K[e,m]\n"
    )
    op = einsum(module, "QK")
    assert op.result_type.rank_names == ("M", "P")
    assert op.reduce.data == (("e", "add"),)
    assert [str(ix) for _, ixs in op.accesses() for ix in ixs] == ["e", "p", "e", "m"]


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("", (("m", "add"), ("n", "add"))),
        (":: max(m)", (("m", "max"), ("n", "add"))),
        (":: max(m), mul(n)", (("m", "max"), ("n", "mul"))),
        (":: min(n, m)", (("m", "min"), ("n", "min"))),
        (":: add(n), max(m)", (("m", "max"), ("n", "add"))),
    ],
)
def test_reduce_operators(suffix: str, expected: tuple[tuple[str, str], ...]) -> None:
    text = f"ranks M=3, N=2, P=4\ninput X[M,N,P]\noutput Y\nY[p] = X[m,n,p] {suffix}\n"
    assert einsum(parse(text), "Y").reduce.data == expected


def test_iterative_rank_with_initial_value_and_final_read() -> None:
    text = """
ranks M=8, P=2
input X[M,P]
output A
RM[m=0,p] = -inf
RM[m+1,p] = max(RM[m,p], X[m,p])
A[m,p] = X[m,p] - RM[M,p]
"""
    module = parse(text)
    rm = einsum(module, "RM")
    assert rm.iterative_rank() == "m"
    assert rm.init is not None and rm.init.value.data == float("-inf")
    assert rm.self_read_positions() == (0,)
    assert rm.result_type.rank_names == ("M", "P")
    a = einsum(module, "A")
    assert a.accesses()[1][1][0].as_extent() == "M"
    assert a.inputs[1] == rm.result


def test_affine_index() -> None:
    text = "ranks M=8, M0=4, M1=M/M0, E=2\ninput K[E,M]\noutput BK\nBK[e,m1,m0] = K[e, m1*M0+m0]\n"
    op = einsum(parse(text), "BK")
    assert op.result_type.rank_names == ("E", "M1", "M0")
    assert str(op.accesses()[0][1][1]) == "m1*M0+m0"


def test_read_ahead_is_resolved_to_the_later_einsum() -> None:
    module = load_file(EXAMPLES / "attention" / "1pass.einsum")
    spd, rd = einsum(module, "SPD"), einsum(module, "RD")
    assert spd.inputs[1] == rd.result
    ops = list(cascade_of(module).body.block.ops)
    assert ops.index(spd) < ops.index(rd)


def test_same_access_twice_is_one_access() -> None:
    text = "ranks N=4, T=2\ninput D[N,T]\noutput SQ\nSQ[t] = D[n,t] * D[n,t] + D[n,t]\n"
    op = einsum(parse(text), "SQ")
    assert len(op.inputs) == 1 and len(op.body.block.args) == 1


def test_narrower_floats_are_widened() -> None:
    text = "ranks M=4\ninput A[M]: f16, B[M]: f32\noutput C\nC[m] = A[m] * B[m]\n"
    op = einsum(parse(text), "C")
    assert op.result_type.element_type == f32
    assert any(isinstance(o, arith.ExtFOp) for o in op.body.block.ops)


def test_integer_einsum() -> None:
    text = "ranks M=4\ninput A[M]: i32, B[M]: i32\noutput C\nC[m] = A[m] + 2 * -B[m]\n"
    op = einsum(parse(text), "C")
    assert op.result_type.element_type == i32
    assert any(isinstance(o, arith.AddiOp) for o in op.body.block.ops)


def test_constants() -> None:
    text = "ranks M=4\ninput A[M]\noutput C\nC[m] = max(A[m], -inf) + 1e-5 * 2.5 - inf / 3\n"
    printed = str(parse(text))
    assert "max(%A[m], -inf) + 1.0e-05 * 2.5 - inf / 3.0" in printed


def test_comments_blank_lines_and_crlf() -> None:
    text = "# header\r\n\r\n  cascade c   # name\r\nranks M=4#x\r\n\r\ninput A[M]\r\noutput A\r\n"
    assert cascade_of(parse(text)).cascade_name == "c"


def test_several_output_lines_in_order() -> None:
    text = "ranks M=4\ninput A[M]\noutput B\noutput A, C\nB[m] = A[m]\nC[] = A[m]\n"
    assert cascade_of(parse(text)).output_names() == ["B", "A", "C"]


def test_keyword_followed_by_bracket_is_a_tensor_name() -> None:
    text = "ranks M=4\ninput A[M]\noutput input\ninput[m] = A[m]\n"
    assert cascade_of(parse(text)).output_names() == ["input"]


def test_ops_remember_their_statement_lines() -> None:
    module = load_file(EXAMPLES / "attention" / "2pass.einsum")
    lines = (EXAMPLES / "attention" / "2pass.einsum").read_text().split("\n")
    for op in cascade_of(module).einsums():
        loc = location_of(op)
        assert loc is not None
        assert lines[loc.line - 1].startswith(f"{op.tensor_name}[")
        assert loc.column == 1
    cascade = location_of(cascade_of(module))
    assert cascade is not None and lines[cascade.line - 1].startswith("cascade")


# ---------------------------------------------------------------------------------------------
# Examples


@pytest.mark.parametrize("name", ATTENTION)
def test_attention_notation_prints_like_the_mlir(name: str) -> None:
    folder = EXAMPLES / "attention"
    from_notation = load_file(folder / f"{name}.einsum")
    mlir_path = folder / f"{name}.mlir"
    from_mlir = parse_mlir(mlir_path.read_text(), str(mlir_path))
    assert str(from_notation) == str(from_mlir)


ALL_EXAMPLES = sorted(EXAMPLES.rglob("*.einsum"))


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_parses_and_verifies(path: Path) -> None:
    module = parse_einsum_notation(path.read_text(), str(path))
    module.verify()
    assert path.read_text().startswith("#"), "examples start with a comment header"


def test_all_examples_present() -> None:
    names = {str(p.relative_to(EXAMPLES)) for p in ALL_EXAMPLES}
    assert {"softmax.einsum", "layernorm.einsum", "matmul_chain.einsum"} <= names
    assert {f"attention/{n}.einsum" for n in ATTENTION} <= names


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=0))
    return e / e.sum(axis=0)


def _attention(a: Mapping[str, np.ndarray]) -> np.ndarray:
    return a["V"] @ _softmax(a["K"].T @ a["Q"])


def _layernorm(a: Mapping[str, np.ndarray]) -> np.ndarray:
    x = a["X"]
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return (x - mu) / np.sqrt(var + 1e-5) * a["G"][:, None] + a["B"][:, None]


NUMERIC_CASES: list[tuple[str, str, dict[str, int], Callable[[Mapping[str, np.ndarray]], Any]]] = [
    ("attention/3pass.einsum", "AV", {"E": 8, "F": 4, "M": 16, "P": 6}, _attention),
    ("attention/2pass.einsum", "AV", {"E": 8, "F": 4, "M": 16, "P": 6}, _attention),
    ("attention/1pass.einsum", "AV", {"E": 8, "F": 4, "M": 16, "P": 6, "M0": 4}, _attention),
    ("softmax.einsum", "A", {"M": 16, "P": 5}, lambda a: _softmax(a["X"])),
    ("layernorm.einsum", "Y", {"T": 3}, _layernorm),  # N stays 1024: the file divides by it
    (
        "matmul_chain.einsum",
        "Z",
        {"M": 3, "K": 5, "N": 4, "L": 2},
        lambda a: a["A"] @ a["B"] @ a["C"],
    ),
]


@pytest.mark.parametrize(
    ("path", "output", "ranks", "reference"), NUMERIC_CASES, ids=[c[0] for c in NUMERIC_CASES]
)
def test_example_computes_what_it_says(
    path: str,
    output: str,
    ranks: dict[str, int],
    reference: Callable[[Mapping[str, np.ndarray]], Any],
) -> None:
    interpreter = pytest.importorskip("einsum_opt.interpreters.einsum")
    module = load_file(EXAMPLES / path)
    cascade = cascade_of(module)
    sizes = {**cascade.rank_sizes(), **ranks}
    rng = np.random.default_rng(7)
    inputs = {
        name: rng.standard_normal([sizes[r] for r in t.rank_names]).astype(np.float32)
        for name, t in cascade.inputs()
    }
    got = interpreter.run_cascade(module, inputs, ranks=ranks)[output]
    want = reference({k: v.astype(np.float64) for k, v in inputs.items()})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Diagnostics

HEAD = "ranks E=2, M=8, P=4\ninput Q[E,P], K[E,M]\noutput X\n"  # statements start on line 4

BAD_INPUTS: list[tuple[str, str, int, int, str]] = [
    # (id, text, line, column, message fragment)
    ("syntax", HEAD + "X[m,p] = Q[e,p] *\n", 4, 18, "expected an expression, got end of line"),
    (
        "junk after expression",
        HEAD + "X[m,p] = Q[e,p] K[e,m]\n",
        4,
        17,
        "expected an operator, '::' or the end of the line, got 'K'",
    ),
    ("not a statement", "inptu Q[E,P]\n", 1, 1, "expected a statement"),
    ("bad character", "ranks M=8 $\n", 1, 11, "unexpected character '$'"),
    ("unknown function", HEAD + "X[m,p] = foo(Q[e,p])\n", 4, 10, "unknown function 'foo'"),
    ("function arity", HEAD + "X[m,p] = max(K[e,m])\n", 4, 21, "max takes 2 argument(s)"),
    ("missing bracket", HEAD + "X[m,p] = K + 1\n", 4, 10, "expected '[' after tensor name 'K'"),
    (
        "undeclared rank in input",
        "ranks M=8\ninput Q[E,M]\noutput Q\n",
        2,
        9,
        "rank E is not declared",
    ),
    (
        "undeclared rank in index",
        HEAD + "X[m,p] = Q[e,q] * K[e,m]\n",
        4,
        14,
        "rank Q (of index q) is not declared",
    ),
    (
        "undeclared rank in output",
        HEAD + "X[m,z] = K[e,m]\n",
        4,
        5,
        "rank Z (of index z) is not declared",
    ),
    ("undeclared size in index", HEAD + "X[m,p] = K[e, m*M0]\n", 4, 17, "rank M0 is not declared"),
    ("undeclared rank in size", "ranks M=8, M1=M/M0\n", 1, 17, "rank M0 is not declared before M1"),
    ("lower-case input rank", "ranks M=8\ninput Q[m]\noutput Q\n", 2, 9, "write M, not m"),
    (
        "bad element type",
        "ranks M=8\ninput Q[M]: f8\noutput Q\n",
        2,
        13,
        "unknown element type 'f8'",
    ),
    ("unknown tensor", HEAD + "X[m,p] = Q[e,p] * W[e,m]\n", 4, 19, "unknown tensor 'W'"),
    (
        "duplicate definition",
        HEAD + "X[m,p] = K[e,m]\nX[m,p] = K[e,m]\n",
        5,
        1,
        "tensor X is already defined on line 4",
    ),
    ("redefined input", HEAD + "Q[m,p] = K[e,m]\n", 4, 1, "tensor Q is already defined on line 2"),
    (
        "unknown output",
        HEAD.replace("output X", "output Z") + "X[m,p] = K[e,m]\n",
        3,
        8,
        "output names unknown tensor 'Z'",
    ),
    (
        "output twice",
        HEAD.replace("output X", "output X, X") + "X[m,p] = K[e,m]\n",
        3,
        11,
        "output X listed twice",
    ),
    ("no outputs", "ranks M=8\ninput Q[M]\n", 1, 1, "the cascade has no outputs"),
    (
        "missing init",
        HEAD + "X[m+1,p] = X[m,p] + Q[e,p]\n",
        4,
        1,
        "X iterates rank M but no earlier line gives its initial value (write X[m=0, p] = value",
    ),
    (
        "init after recurrence",
        HEAD + "X[m+1,p] = X[m,p] + Q[e,p]\nX[m=0,p] = 0\n",
        4,
        1,
        "no earlier line gives its initial value",
    ),
    (
        "init for non-iterative",
        HEAD + "X[m=0,p] = 0\nX[m,p] = K[e,m]\n",
        4,
        1,
        "definition on line 5 is not iterative",
    ),
    (
        "init for undefined",
        HEAD + "Z[m=0,p] = 0\nX[m,p] = K[e,m]\n",
        4,
        1,
        "initial value for Z, which is not defined by any line",
    ),
    (
        "init does not match",
        HEAD + "X[p=0,m] = 0\nX[m+1,p] = X[m,p] + Q[e,p]\n",
        4,
        1,
        "initial value X[p=0, m] does not match the iterative definition X[m+1, p] on line 5",
    ),
    (
        "init not constant",
        HEAD + "X[m=0,p] = Q[e,p]\n",
        4,
        12,
        "an initial value must be a constant",
    ),
    ("init not at zero", HEAD + "X[m=1,p] = 0\n", 4, 5, "an iterative rank starts at index 0"),
    (
        "reduce an output rank",
        HEAD + "X[m,p] = Q[e,p] * K[e,m] :: max(m)\n",
        4,
        33,
        "cannot reduce m: it is an output index of X",
    ),
    (
        "reduce an unused rank",
        HEAD + "X[m,p] = Q[e,p] * K[e,m] :: max(e), max(f)\n",
        4,
        41,
        "cannot reduce f: it is not used on the right of X",
    ),
    (
        "unknown reduce operator",
        HEAD + "X[m,p] = Q[e,p] * K[e,m] :: sum(e)\n",
        4,
        29,
        "unknown reduce operator 'sum'",
    ),
    (
        "read ahead with wrong type",
        "ranks M=8, P=4\ninput Q[M,P]: f16, Z[M,P]\noutput R\nR[m=0,p] = 0\n"
        "Y[m,p] = R[m,p] * Q[m,p]\nR[m+1,p] = R[m,p] + Z[m,p] + Y[m,p]\n",
        5,
        10,
        "R[m, p] is read by Y before its definition as !einsum.tensor<[M, P], f16>",
    ),
    (
        "read ahead with wrong ranks",
        "ranks M=8, P=4, E=2\ninput Q[M,P,E]\noutput R\nR[m=0,p,e] = 0\n"
        "Y[m,p] = R[m,p] * Q[m,p,e]\nR[m+1,p,e] = R[m,p,e] + Q[m,p,e]\n",
        5,
        10,
        "but line 6 defines it as !einsum.tensor<[M, P, E], f32>",
    ),
    (
        "read ahead of a non-iterative tensor",
        HEAD + "X[m,p] = Y[m,p]\nY[m,p] = K[e,m]\n",
        4,
        1,
        "reads Y[m, p] before Y is defined",
    ),
    (
        "mixed int and float",
        "ranks M=8\ninput A[M]: i32, B[M]\noutput C\nC[m] = A[m] + B[m]\n",
        4,
        15,
        "C mixes floating-point and integer operands",
    ),
    (
        "f16 with bf16",
        "ranks M=8\ninput A[M]: f16, B[M]: bf16\noutput C\nC[m] = A[m] + B[m]\n",
        4,
        15,
        "neither converts to the other",
    ),
    (
        "exp of an integer",
        "ranks M=8\ninput A[M]: i32\noutput C\nC[m] = exp(A[m])\n",
        4,
        1,
        "C: exp is not defined on i32",
    ),
    (
        "integer init not integral",
        "ranks M=8\ninput A[M]: i32\noutput C\nC[m=0] = 0.5\nC[m+1] = C[m] + A[m]\n",
        4,
        1,
        "bad initial value of C",
    ),
    (
        "output index not a variable",
        HEAD + "X[m+2,p] = K[e,m]\n",
        4,
        3,
        "output index 'm+2' must be a rank variable",
    ),
    ("two iterative ranks", HEAD + "X[m+1,p+1] = K[e,m]\n", 4, 7, "X iterates two ranks"),
    ("rank used twice in output", HEAD + "X[m,m] = K[e,m]\n", 4, 5, "rank M appears twice"),
    (
        "access indexes the wrong rank",
        HEAD + "X[m,p] = Q[p,e] * K[e,m]\n",
        4,
        1,
        "access Q[p, e] indexes rank E with variable p of rank P",
    ),
    ("index out of range", HEAD + "X[m,p] = K[e,m+1]\n", 4, 1, "ranges over [1, 8]"),
    ("zero rank size", "ranks M=0\n", 1, 9, "rank M must have a positive size"),
    ("rank declared twice", "ranks M=8\nranks M=4\n", 2, 7, "rank M declared twice"),
    ("lower-case rank name", "ranks m=8\n", 1, 7, "rank names are upper case"),
    ("cascade named twice", "cascade a\ncascade b\n", 2, 9, "cascade name given twice"),
]


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [c[1:] for c in BAD_INPUTS],
    ids=[c[0] for c in BAD_INPUTS],
)
def test_bad_input_is_one_located_error(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(NotationError) as info:
        parse(text, "bad.einsum")
    message = str(info.value)
    assert message.startswith(f"bad.einsum:{line}:{column}: error: "), message
    assert fragment in message
    assert "\n" not in message
    assert (info.value.line, info.value.column) == (line, column)


def test_error_table_is_varied() -> None:
    assert len({c[4] for c in BAD_INPUTS}) >= 12


MUTATION_TEXT = (EXAMPLES / "attention" / "1pass.einsum").read_text()
PIECES = [
    "[",
    "]",
    "(",
    ")",
    ",",
    "=",
    "+",
    "-",
    "*",
    "/",
    ":",
    "::",
    "#",
    "0",
    "1.5",
    " ",
    "\n",
    "m1",
    "M1",
    "p",
    "RD",
    "inf",
    "exp(",
    "max(",
    ": f16",
    "m1=0",
    "m1+1",
    "$",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(MUTATION_TEXT)), st.integers(0, 3), st.sampled_from(PIECES)),
        min_size=1,
        max_size=3,
    )
)
def test_mangled_input_gives_notation_error_or_ir(edits: list[tuple[int, int, str]]) -> None:
    text = MUTATION_TEXT
    for at, delete, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + delete :]
    try:
        parse(text, "m.einsum")
    except NotationError as e:
        assert str(e).startswith("m.einsum:")


# ---------------------------------------------------------------------------------------------
# Renaming

TEMPLATE = """\
cascade attention
ranks {E}=64, {F}=64, {M}=1024, {P}=1024
input {Q}[{E},{P}], {K}[{E},{M}], {V}[{F},{M}]
output {AV}
{QK}[{m},{p}] = {Q}[{e},{p}] * {K}[{e},{m}]
{GM}[{p}]   = {QK}[{m},{p}] :: max({m})
{SN}[{m},{p}] = exp({QK}[{m},{p}] - {GM}[{p}])
{SD}[{p}]   = {SN}[{m},{p}]
{A}[{m},{p}]  = {SN}[{m},{p}] / {SD}[{p}]
{AV}[{f},{p}] = {A}[{m},{p}] * {V}[{f},{m}]
"""
TENSORS = ("Q", "K", "V", "QK", "GM", "SN", "SD", "A", "AV")
RANKS = ("E", "F", "M", "P")


def render(tensors: Mapping[str, str], ranks: Mapping[str, str]) -> str:
    """The 3-pass text with tensors and ranks (and their variables) renamed."""
    variables = {r.lower(): n.lower() for r, n in ranks.items()}
    return TEMPLATE.format(**tensors, **ranks, **variables)


def test_template_is_the_3pass_example() -> None:
    same = render({t: t for t in TENSORS}, {r: r for r in RANKS})
    example = load_file(EXAMPLES / "attention" / "3pass.einsum")
    assert str(parse(same)) == str(example)


def signature(module: ModuleOp, tensor: Callable[[str], str], rank: Callable[[str], str]) -> Any:
    """The cascade's structure with every tensor and rank name passed through the renamings."""
    cascade = cascade_of(module)

    def name(n: str) -> str:
        return rank(n.upper()).lower() if is_variable_name(n) else rank(n)

    def indices(ixs: tuple[IndexExpr, ...]) -> tuple[IndexExpr, ...]:
        return tuple(ix.renamed(name) for ix in ixs)

    ranks = tuple(
        (rank(n), s if isinstance(s, int) else tuple(rank(p) for p in s))
        for n, s in cascade.ranks.data
    )
    inputs = tuple(
        (tensor(n), tuple(rank(r) for r in t.rank_names), t.element_type)
        for n, t in cascade.inputs()
    )
    einsums = tuple(
        (
            tensor(op.tensor_name),
            indices(op.output_indices),
            tuple((tensor(op.access_name(v)), indices(ixs)) for v, ixs in op.accesses()),
            tuple((name(v), o) for v, o in op.reduce.data),
            tuple(rank(r) for r in op.result_type.rank_names),
            op.result_type.element_type,
            op.init,
            op.merge.data,
            extract_expr(op.body),
        )
        for op in cascade.einsums()
    )
    return ranks, inputs, einsums, tuple(tensor(n) for n in cascade.output_names())


tensor_names = st.lists(
    st.from_regex(r"[A-Z][A-Za-z0-9_]{0,3}", fullmatch=True),
    min_size=len(TENSORS),
    max_size=len(TENSORS),
    unique=True,
)
rank_names = st.lists(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,2}", fullmatch=True),
    min_size=len(RANKS),
    max_size=len(RANKS),
    unique=True,
)


@settings(max_examples=40, deadline=None)
@given(tensor_names, rank_names)
def test_consistent_renaming_gives_the_same_structure(
    new_tensors: list[str], new_ranks: list[str]
) -> None:
    tensors = dict(zip(TENSORS, new_tensors, strict=True))
    ranks = dict(zip(RANKS, new_ranks, strict=True))
    original = parse(render({t: t for t in TENSORS}, {r: r for r in RANKS}))
    renamed = parse(render(tensors, ranks))
    assert signature(original, tensors.__getitem__, ranks.__getitem__) == signature(
        renamed, lambda n: n, lambda n: n
    )
