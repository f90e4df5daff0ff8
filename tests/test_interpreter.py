"""The numpy reference interpreter: attention cascades against numpy, and hand-checked semantics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt.frontends.loading import load_file, parse_mlir
from einsum_opt.interpreters.einsum import (
    ExecutionError,
    find_cascade,
    random_inputs,
    rank_sizes,
    run_cascade,
)
from einsum_opt.interpreters.einsum_kernel import EinsumKernel, Layout
from einsum_opt.interpreters.einsum_schedule import execution_order
from einsum_opt.interpreters.einsum_values import round_to_bfloat16

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "attention"
CASCADES = ("3pass", "2pass", "1pass")


def parse(text: str) -> ModuleOp:
    """A verified module from MLIR text."""
    module = parse_mlir(text, "<test>")
    module.verify()
    return module


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plain numpy attention: AV[f,p] = sum_m softmax_m(QK[m,p]) V[f,m]."""
    qk = np.einsum("ep,em->mp", q, k)
    a = np.exp(qk - qk.max(axis=0))
    a /= a.sum(axis=0)
    return np.einsum("mp,fm->fp", a, v)


LOWEST = {"f16": "-65504.0", "bf16": "-3.38953139e+38", "f64": "-1.7976931348623157e+308"}
"""The lowest finite value per element type: where the running max starts."""


def example(name: str, element: str = "f32") -> ModuleOp:
    """An attention example, optionally with another element type (the running max then
    starts at that type's lowest finite value)."""
    if element == "f32":
        return load_file(EXAMPLES / f"{name}.mlir")
    text = (EXAMPLES / f"{name}.mlir").read_text().replace("f32", element)
    return parse(text.replace("-3.4028235e+38", LOWEST[element]))


def tile(name: str, ranks: dict[str, int], m0: int) -> dict[str, int]:
    """`ranks`, plus the key tile size for the blocked (1-pass) cascade."""
    return {**ranks, "M0": m0} if name == "1pass" else ranks


# -- attention ----------------------------------------------------------------------------------

SHAPES = [
    ({}, 256),
    ({"M": 512, "P": 100, "E": 17, "F": 33}, 128),
    ({"M": 96, "P": 7, "E": 5, "F": 3}, 32),
    ({"M": 3, "P": 1, "E": 1, "F": 2}, 1),
]


@pytest.mark.parametrize("name", CASCADES)
@pytest.mark.parametrize(("ranks", "m0"), SHAPES)
def test_attention_matches_numpy(name: str, ranks: dict[str, int], m0: int) -> None:
    module = example(name)
    sizes = tile(name, ranks, m0)
    inputs = random_inputs(find_cascade(module), seed=3, ranks=sizes)
    out = run_cascade(module, inputs, ranks=sizes)
    assert list(out) == ["AV"]
    assert out["AV"].dtype == np.float32
    np.testing.assert_allclose(
        out["AV"], attention(inputs["Q"], inputs["K"], inputs["V"]), rtol=1e-5, atol=1e-5
    )


def test_three_cascades_agree_on_default_sizes() -> None:
    outs = [run_cascade(example(name), seed=5)["AV"] for name in CASCADES]
    assert outs[0].shape == (64, 1024)
    for other in outs[1:]:
        np.testing.assert_allclose(other, outs[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", CASCADES)
def test_attention_f16(name: str) -> None:
    module = example(name, "f16")
    sizes = tile(name, {"M": 200, "P": 30, "E": 16, "F": 8}, 40)
    inputs = random_inputs(find_cascade(module), seed=1, ranks=sizes)
    assert all(a.dtype == np.float16 for a in inputs.values())
    inputs["Q"] = inputs["Q"] / np.float16(4)  # the 1/sqrt(E) scaling folded into Q
    out = run_cascade(module, inputs, ranks=sizes)["AV"]
    assert out.dtype == np.float16
    expected = attention(*(inputs[n].astype(np.float64) for n in "QKV"))
    np.testing.assert_allclose(out, expected, rtol=1e-2, atol=5e-3)


def test_bfloat16_rounding() -> None:
    # bfloat16 keeps 7 fraction bits: the spacing just above 1 is 2^-7
    values = np.array(
        [
            1.0,
            1 + 2**-8,
            1 + 3 * 2**-8,
            1 + 2**-8 + 2**-10,
            1 + 2**-7 + 2**-9,
            -np.inf,
            np.nan,
            3.4e38,
        ],
        dtype=np.float32,
    )
    rounded = round_to_bfloat16(values)
    # ties go to even (1 + 2^-8 -> 1, 1 + 3*2^-8 -> 1 + 2^-6), others to nearest; overflow -> inf
    assert rounded[:6].tolist() == [1.0, 1.0, 1 + 2**-6, 1 + 2**-7, 1 + 2**-7, -np.inf]
    assert np.isnan(rounded[6]) and np.isinf(rounded[7])
    assert rounded.dtype == np.float32


def test_bf16_attention_is_close_and_rounded() -> None:
    module = example("3pass", "bf16")
    sizes = {"M": 64, "P": 8, "E": 8, "F": 4}
    inputs = random_inputs(find_cascade(module), seed=2, ranks=sizes)
    for a in inputs.values():
        np.testing.assert_array_equal(a, round_to_bfloat16(a))
    out = run_cascade(module, inputs, ranks=sizes)["AV"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, round_to_bfloat16(out))
    np.testing.assert_allclose(
        out, attention(inputs["Q"], inputs["K"], inputs["V"]), rtol=5e-2, atol=2e-2
    )


def test_contraction_fast_path() -> None:
    cascade = find_cascade(example("3pass"))
    layout = Layout(rank_sizes(cascade), {})
    kernels = {op.tensor_name: EinsumKernel(op, layout) for op in cascade.einsums()}
    assert kernels["QK"].uses_contraction and kernels["AV"].uses_contraction
    assert kernels["SD"].uses_contraction
    assert not kernels["GM"].uses_contraction and not kernels["SN"].uses_contraction


# -- iterative ranks ----------------------------------------------------------------------------

RUNNING = """
einsum.cascade @running(%X: !einsum.tensor<[M, P], f32>)
    -> (!einsum.tensor<[M, P], f32>, !einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>,
        !einsum.tensor<[M, P], f32>) ranks(M = 4, P = 2) {
  %S = einsum.einsum S[m+1, p] = S[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  %R = einsum.einsum R[m+1, p] = max(R[m, p], %X[m, p]) init(-inf) : !einsum.tensor<[M, P], f32>
  %T = einsum.einsum T[p] = %S[M, p] : !einsum.tensor<[P], f32>
  %N = einsum.einsum N[m, p] = %X[m, p] / %S[M, p] - %R[m+1, p] : !einsum.tensor<[M, P], f32>
  einsum.return %S, %R, %T, %N : !einsum.tensor<[M, P], f32>, !einsum.tensor<[M, P], f32>,
      !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>
}
"""


def test_running_sum_and_max_by_hand() -> None:
    x = np.array([[1, 5], [3, -2], [-4, 7], [2, 0]], dtype=np.float32)
    out = run_cascade(parse(RUNNING), {"X": x})
    # iterative outputs keep their initial value at index 0: M + 1 entries along M
    np.testing.assert_array_equal(out["S"], [[0, 0], [1, 5], [4, 3], [0, 10], [2, 10]])
    np.testing.assert_array_equal(out["R"], [[-np.inf, -np.inf], [1, 5], [3, 5], [3, 7], [3, 7]])
    np.testing.assert_array_equal(out["T"], [2, 10])  # the final value S[M, p]
    np.testing.assert_allclose(out["N"], x / [2, 10] - [[1, 5], [3, 5], [3, 7], [3, 7]])


def test_iterative_output_shape_follows_rank_overrides() -> None:
    out = run_cascade(parse(RUNNING), ranks={"M": 9, "P": 3}, seed=4)
    assert out["S"].shape == (10, 3) and out["T"].shape == (3,)
    np.testing.assert_allclose(out["T"], out["S"][-1])


READ_AHEAD = """
einsum.cascade @cycle(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 5) {
  %D = einsum.einsum D[m] = %R[m] * 2.0 : !einsum.tensor<[M], f32>
  %R = einsum.einsum R[m+1] = %D[m] + %X[m] init(1.0) : !einsum.tensor<[M], f32>
  einsum.return %R : !einsum.tensor<[M], f32>
}
"""


def test_read_ahead_cycle_runs_in_one_loop() -> None:
    x = np.array([1, -1, 0.5, 2, -3], dtype=np.float32)
    out = run_cascade(parse(READ_AHEAD), {"X": x})["R"]
    expected = [1.0]
    for value in x:
        expected.append(2 * expected[-1] + value)
    np.testing.assert_allclose(out, expected)


def test_one_pass_groups_cycles() -> None:
    cascade = find_cascade(example("1pass"))
    groups = [[op.tensor_name for op in g] for g in execution_order(cascade.einsums())]
    assert ["SPD", "RD"] in groups and ["SPNV", "RNV"] in groups
    assert ["RM"] in groups
    flat = [n for g in groups for n in g]
    assert flat.index("RM") < flat.index("PRM") < flat.index("SPD") < flat.index("AV")


def test_loop_read_of_unavailable_index_is_an_error() -> None:
    module = parse("""
einsum.cascade @bad(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 3) {
  %D = einsum.einsum D[m] = %R[m] * %X[m] : !einsum.tensor<[M], f32>
  %R = einsum.einsum R[m+1] = %D[0] + %X[m] init(1.0) : !einsum.tensor<[M], f32>
  einsum.return %R : !einsum.tensor<[M], f32>
}
""")
    with pytest.raises(ExecutionError, match=r"einsum R: reads D\[0\] inside the loop over M"):
        run_cascade(module)


# -- indexing and reductions --------------------------------------------------------------------

AFFINE = """
einsum.cascade @affine(%X: !einsum.tensor<[M], f32>, %Y: !einsum.tensor<[M, M2], f32>)
    -> (!einsum.tensor<[M1, M0], f32>, !einsum.tensor<[M0], f32>, !einsum.tensor<[M1, M0], f32>,
        !einsum.tensor<[M1], f32>, !einsum.tensor<[M1, M0], f32>)
    ranks(M = 12, M2 = 12, M0 = 4, M1 = M / M0) {
  %B = einsum.einsum B[m1, m0] = %X[m1*M0+m0] : !einsum.tensor<[M1, M0], f32>
  %C = einsum.einsum C[m0] = %X[m1*M0+m0] :: max(m1) : !einsum.tensor<[M0], f32>
  %D = einsum.einsum D[m1, m0] = %Y[m1*M0+m0, 2*m0] : !einsum.tensor<[M1, M0], f32>
  %S = einsum.einsum S[m1] = %Y[m1*M0+1, 2*m1+3] : !einsum.tensor<[M1], f32>
  %T = einsum.einsum T[m1, m0] = %Y[3*m0, m1*M0+1] : !einsum.tensor<[M1, M0], f32>
  einsum.return %B, %C, %D, %S, %T : !einsum.tensor<[M1, M0], f32>, !einsum.tensor<[M0], f32>,
      !einsum.tensor<[M1, M0], f32>, !einsum.tensor<[M1], f32>, !einsum.tensor<[M1, M0], f32>
}
"""


def test_affine_indices() -> None:
    x = np.arange(12, dtype=np.float32) * np.float32(1.5) - 4
    y = np.arange(144, dtype=np.float32).reshape(12, 12)
    out = run_cascade(parse(AFFINE), {"X": x, "Y": y})
    np.testing.assert_array_equal(out["B"], x.reshape(3, 4))
    np.testing.assert_array_equal(out["C"], x.reshape(3, 4).max(axis=0))
    np.testing.assert_array_equal(
        out["D"], [[y[4 * i + j, 2 * j] for j in range(4)] for i in range(3)]
    )
    np.testing.assert_array_equal(out["S"], [y[1, 3], y[5, 5], y[9, 7]])
    np.testing.assert_array_equal(
        out["T"], [[y[3 * j, 4 * i + 1] for j in range(4)] for i in range(3)]
    )


def test_out_of_range_index_after_rank_override() -> None:
    with pytest.raises(ExecutionError, match=r"einsum BK: index m1\*M0\+m0 of K.*rank M"):
        run_cascade(example("1pass"), ranks={"M": 1000})


MIXED = """
einsum.cascade @mixed(%X: !einsum.tensor<[M, E, P], f32>)
    -> (!einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>, !einsum.tensor<[M, P], f32>,
        !einsum.tensor<[P], f32>) ranks(M = 3, E = 4, P = 2) {
  %A = einsum.einsum A[p] = %X[m, e, p] :: max(m) : !einsum.tensor<[P], f32>
  %B = einsum.einsum B[p] = exp(%X[m, e, p]) :: min(e), mul(m) : !einsum.tensor<[P], f32>
  %Z = einsum.einsum Z[m, p] = %A[p] : !einsum.tensor<[M, P], f32>
  %C = einsum.einsum C[p] = map(%X[m, e, p]) {
  ^bb0(%x: f32):
    %one = arith.constant 1.0 : f32
    einsum.yield %one : f32
  } : !einsum.tensor<[P], f32>
  einsum.return %A, %B, %Z, %C : !einsum.tensor<[P], f32>, !einsum.tensor<[P], f32>,
      !einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>
}
"""


def test_reductions_apply_in_listed_order() -> None:
    x = np.random.default_rng(7).standard_normal((3, 4, 2)).astype(np.float32)
    out = run_cascade(parse(MIXED), {"X": x})
    # A: reduce m (first use) with max, then e with +
    np.testing.assert_allclose(out["A"], x.max(axis=0).sum(axis=0), rtol=1e-6)
    # B: m first (mul), then e (min)
    np.testing.assert_allclose(out["B"], np.exp(x).prod(axis=0).min(axis=0), rtol=1e-6)
    # Z: an output rank no access uses is broadcast
    np.testing.assert_array_equal(out["Z"], np.broadcast_to(out["A"], (3, 2)))
    # C: a map ignoring its access still sums over every point of the reduced ranks
    np.testing.assert_array_equal(out["C"], [12, 12])


INTEGERS = """
einsum.cascade @ints(%A: !einsum.tensor<[M], i32>, %B: !einsum.tensor<[M], i32>)
    -> (!einsum.tensor<[M], i32>, !einsum.tensor<[], i32>, !einsum.tensor<[M], i32>,
        !einsum.tensor<[M], i32>) ranks(M = 6) {
  %Q = einsum.einsum Q[m] = %A[m] / %B[m] - 1 : !einsum.tensor<[M], i32>
  %S = einsum.einsum S[] = %A[m] * %B[m] : !einsum.tensor<[], i32>
  %C = einsum.einsum C[m+1] = max(C[m], -%A[m]) init(-100) : !einsum.tensor<[M], i32>
  %W = einsum.einsum W[m] = map(%A[m]) {
  ^bb0(%a: i32):
    %abs = math.absi %a : i32
    %k = arith.constant 3 : i32
    %r = arith.minsi %abs, %k : i32
    einsum.yield %r : i32
  } : !einsum.tensor<[M], i32>
  einsum.return %Q, %S, %C, %W : !einsum.tensor<[M], i32>, !einsum.tensor<[], i32>,
      !einsum.tensor<[M], i32>, !einsum.tensor<[M], i32>
}
"""


def test_integer_cascade() -> None:
    a = np.array([7, -7, 7, -7, 0, 9], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 5, 3], dtype=np.int32)
    out = run_cascade(parse(INTEGERS), {"A": a, "B": b})
    np.testing.assert_array_equal(out["Q"], [2, -4, -4, 2, -1, 2])  # division rounds to zero
    assert out["S"].shape == () and out["S"].dtype == np.int32 and int(out["S"]) == 27
    np.testing.assert_array_equal(out["C"], [-100, -7, 7, 7, 7, 7, 7])


def test_integer_map_ops_and_random_integers() -> None:
    module = parse(INTEGERS)
    inputs = random_inputs(find_cascade(module), seed=9)
    assert inputs["A"].dtype == np.int32
    assert inputs["A"].min() >= -4 and inputs["A"].max() <= 4
    out = run_cascade(
        module, {"A": np.array([-5, 2, 0, 4, -1, 3], np.int32), "B": np.ones(6, np.int32)}
    )
    np.testing.assert_array_equal(out["W"], [3, 2, 0, 3, 1, 3])


def test_integer_division_by_zero() -> None:
    b = np.array([1, 1, 0, 1, 1, 1], dtype=np.int32)
    with pytest.raises(ExecutionError, match="einsum Q: integer division by zero"):
        run_cascade(parse(INTEGERS), {"A": np.ones(6, np.int32), "B": b})


# -- inputs, errors and API behaviour -----------------------------------------------------------


def test_missing_inputs_are_drawn_reproducibly() -> None:
    module = example("3pass")
    ranks = {"M": 16, "P": 4, "E": 3, "F": 2}
    drawn = random_inputs(find_cascade(module), seed=11, ranks=ranks)
    again = random_inputs(find_cascade(module), seed=11, ranks=ranks)
    other = random_inputs(find_cascade(module), seed=12, ranks=ranks)
    for name in "QKV":
        np.testing.assert_array_equal(drawn[name], again[name])
        assert not np.array_equal(drawn[name], other[name])
    assert drawn["K"].shape == (3, 16) and drawn["K"].dtype == np.float32
    # K given: Q and V are drawn exactly as random_inputs draws them
    k = np.zeros((3, 16), dtype=np.float32)
    out = run_cascade(module, {"K": k}, ranks=ranks, seed=11)["AV"]
    np.testing.assert_allclose(out, attention(drawn["Q"], k, drawn["V"]), rtol=1e-5, atol=1e-6)


def test_unknown_input() -> None:
    with pytest.raises(ExecutionError, match=r"unknown input X .*takes Q, K, V"):
        run_cascade(example("3pass"), {"X": np.zeros(3)})


def test_wrong_shape_names_input_rank_and_sizes() -> None:
    q = np.zeros((64, 100), dtype=np.float32)
    with pytest.raises(ExecutionError, match=r"input Q: rank P .* size 100 .* but 1024"):
        run_cascade(example("3pass"), {"Q": q})
    with pytest.raises(ExecutionError, match=r"input Q: expected 2 dimension"):
        run_cascade(example("3pass"), {"Q": np.zeros(64)})
    with pytest.raises(ExecutionError, match=r"input Q: expected f32 values"):
        run_cascade(example("3pass"), {"Q": np.zeros((64, 1024), dtype=complex)})


def test_inputs_of_other_numeric_types_are_converted() -> None:
    module = parse(RUNNING)
    out = run_cascade(module, {"X": np.ones((4, 2), dtype=np.int64)})
    np.testing.assert_array_equal(out["T"], [4, 4])


def test_cascade_selection() -> None:
    two = parse(RUNNING + READ_AHEAD)
    with pytest.raises(ExecutionError, match=r"2 cascades \(@running, @cycle\)"):
        run_cascade(two)
    with pytest.raises(ExecutionError, match=r"no cascade @nope \(found: @running, @cycle\)"):
        run_cascade(two, cascade="nope")
    assert list(run_cascade(two, cascade="@cycle")) == ["R"]
    assert find_cascade(two, "running").cascade_name == "running"


def test_bad_rank_overrides() -> None:
    with pytest.raises(ExecutionError, match="undeclared rank X"):
        run_cascade(example("3pass"), ranks={"X": 3})
    with pytest.raises(ExecutionError, match="rank M must have a positive integer size"):
        run_cascade(example("3pass"), ranks={"M": 0})


def test_unsupported_map_op() -> None:
    module = parse("""
einsum.cascade @sin(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 4) {
  %Y = einsum.einsum Y[m] = map(%X[m]) {
  ^bb0(%x: f32):
    %s = math.sin %x : f32
    einsum.yield %s : f32
  } : !einsum.tensor<[M], f32>
  einsum.return %Y : !einsum.tensor<[M], f32>
}
""")
    with pytest.raises(ExecutionError, match="einsum Y: .*cannot run 'math.sin'"):
        run_cascade(module)


def test_rank_overrides_do_not_change_the_ir() -> None:
    module = example("1pass")
    before = str(module)
    sizes = find_cascade(module).rank_sizes()
    out = run_cascade(module, ranks={"M": 64, "M0": 16, "P": 5, "E": 3, "F": 2})
    assert out["AV"].shape == (2, 5)
    assert str(module) == before and find_cascade(module).rank_sizes() == sizes
    assert rank_sizes(find_cascade(module), {"M": 64, "M0": 16})["M1"] == 4


def test_outputs_are_fresh_arrays() -> None:
    module = parse("""
einsum.cascade @id(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> ranks(M = 3) {
  %Y = einsum.einsum Y[m] = %X[m] : !einsum.tensor<[M], f32>
  einsum.return %Y : !einsum.tensor<[M], f32>
}
""")
    x = np.array([1, 2, 3], dtype=np.float32)
    y = run_cascade(module, {"X": x})["Y"]
    y[0] = 9
    assert x[0] == 1
