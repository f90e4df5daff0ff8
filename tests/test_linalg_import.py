"""`linalg-to-einsum`: upstream linalg functions imported as einsum cascades.

The attention written by hand in linalg (examples/linalg/attention.mlir) needs 3 passes over
its keys, pass-fusion brings it to 1, and both give numpy's attention. Every imported
function also computes what MLIR itself computes from the same text: with the MLIR tools on
PATH the upstream function is compiled and run by mlir-opt-22 / mlir-runner-22 and compared
with the reference interpreter's run of the cascade.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlir_tools import mlir  # noqa: F401 (the fixture MLIR uses)
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.interpreters.einsum import find_cascade, random_inputs, run_cascade
from einsum_opt.interpreters.mlir_runner import run_function

ROOT = Path(__file__).resolve().parent.parent
ATTENTION = ROOT / "examples" / "linalg" / "attention.mlir"
NAMED = ROOT / "tests" / "filecheck" / "transforms" / "Inputs" / "linalg-named.mlir"


MLIR = pytest.mark.usefixtures("mlir")
"""Marks a test that runs the MLIR tools (skipped, by name, without them)."""


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """numpy attention in the example's layout: q[e, p], k[e, m], v[f, m] -> av[f, p]."""
    qk = np.einsum("ep,em->mp", q.astype(np.float64), k.astype(np.float64))
    a = np.exp(qk - qk.max(axis=0))
    a /= a.sum(axis=0)
    return np.einsum("mp,fm->fp", a, v.astype(np.float64))


def imported(source: str | Path) -> ModuleOp:
    """The cascades of upstream MLIR text or a file."""
    module = api.load(source) if isinstance(source, Path) else api.parse(source)
    return api.apply(module, "linalg-to-einsum")


def upstream_inputs(module: ModuleOp, seed: int) -> list[np.ndarray]:
    """Random arrays for the arguments of the module's only function."""
    fn = next(op for op in module.body.block.ops if isinstance(op, func.FuncOp))
    rng = np.random.default_rng(seed)
    arrays = []
    for t in fn.function_type.inputs.data:
        assert isinstance(t, TensorType)
        shape = tuple(t.get_shape())
        if "i" in str(t.element_type):
            arrays.append(rng.integers(-4, 5, size=shape).astype(f"int{t.element_type.width.data}"))
        else:
            dtype = np.float64 if "f64" in str(t.element_type) else np.float32
            arrays.append(rng.standard_normal(shape).astype(dtype))
    return arrays


def check_against_mlir(text: str, seed: int = 0) -> None:
    """The imported cascade and MLIR's own run of the upstream function agree."""
    upstream = api.parse(text)
    arrays = upstream_inputs(upstream, seed)
    fn = next(op for op in upstream.body.block.ops if isinstance(op, func.FuncOp))
    expected = run_function(upstream, fn.sym_name.data, arrays)
    module = imported(text)
    cascade = find_cascade(module)
    names = [n for n, _ in cascade.inputs()]
    got = list(run_cascade(module, dict(zip(names, arrays, strict=True))).values())
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape and have.dtype == want.dtype
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


# -- the hand-written attention ---------------------------------------------------------------


def test_attention_counts_three_passes_fuses_to_one_and_is_attention() -> None:
    module = imported(ATTENTION)
    assert api.passes(module) == {"E": 1, "P": 1, "M": 3, "F": 1}
    cascade = find_cascade(module)
    assert [n for n, _ in cascade.inputs()] == ["q", "k", "v"]
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((64, 128), (64, 512), (64, 512)))
    expected = attention(q, k, v)
    before = run_cascade(module, {"q": q, "k": k, "v": v})["av"]
    np.testing.assert_allclose(before, expected, rtol=1e-5, atol=1e-5)
    api.apply(module, "pass-fusion{rank=M tile=64}")
    assert api.passes(module) == {"E": 1, "P": 1, "F": 1, "M0": 2, "M1": 1}
    after = run_cascade(module, {"q": q, "k": k, "v": v})["av"]
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-5)


def test_named_ops_attention_fuses_too() -> None:
    module = imported(NAMED)
    assert api.passes(module)["C"] == 3
    before = module.clone()
    api.apply(module, "pass-fusion{rank=C tile=16}")
    assert api.passes(module)["C1"] == 1
    api.check_equivalent(before, module)


@MLIR
@pytest.mark.parametrize("path", [ATTENTION, NAMED], ids=["generic", "named"])
def test_attention_means_what_mlir_computes(path: Path) -> None:
    check_against_mlir(path.read_text(), seed=3)


# -- other linalg ------------------------------------------------------------------------------


MAC = """^bb0(%a: f32, %b: f32, %c: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %c, %m : f32
    linalg.yield %r : f32"""
"""A multiply-accumulate body."""

MHA = """
func.func @mha(%q: tensor<2x3x8x4xf32>, %k: tensor<2x3x16x4xf32>, %v: tensor<2x3x16x5xf32>) -> tensor<2x3x8x5xf32> {
  %zero = arith.constant 0.0 : f32
  %e4 = tensor.empty() : tensor<2x3x8x16xf32>
  %z4 = linalg.fill ins(%zero : f32) outs(%e4 : tensor<2x3x8x16xf32>) -> tensor<2x3x8x16xf32>
  %s = linalg.generic {indexing_maps = [affine_map<(b, h, p, m, e) -> (b, h, p, e)>, affine_map<(b, h, p, m, e) -> (b, h, m, e)>, affine_map<(b, h, p, m, e) -> (b, h, p, m)>],
      iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<2x3x8x4xf32>, tensor<2x3x16x4xf32>) outs(%z4 : tensor<2x3x8x16xf32>) {
  MAC
  } -> tensor<2x3x8x16xf32>
  %p = linalg.softmax dimension(3) ins(%s : tensor<2x3x8x16xf32>) outs(%e4 : tensor<2x3x8x16xf32>) -> tensor<2x3x8x16xf32>
  %eo = tensor.empty() : tensor<2x3x8x5xf32>
  %zo = linalg.fill ins(%zero : f32) outs(%eo : tensor<2x3x8x5xf32>) -> tensor<2x3x8x5xf32>
  %o = linalg.generic {indexing_maps = [affine_map<(b, h, p, f, m) -> (b, h, p, m)>, affine_map<(b, h, p, f, m) -> (b, h, m, f)>, affine_map<(b, h, p, f, m) -> (b, h, p, f)>],
      iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}
      ins(%p, %v : tensor<2x3x8x16xf32>, tensor<2x3x16x5xf32>) outs(%zo : tensor<2x3x8x5xf32>) {
  MAC
  } -> tensor<2x3x8x5xf32>
  return %o : tensor<2x3x8x5xf32>
}
""".replace("MAC", MAC)
"""Multi-head attention with batch and head dimensions (softmax along the keys)."""


def test_multi_head_attention_fuses_over_its_keys() -> None:
    module = imported(MHA)
    passes = api.passes(module)
    keys = max(passes, key=passes.__getitem__)
    assert passes[keys] == 3
    assert find_cascade(module).rank_sizes()[keys] == 16
    before = module.clone()
    api.apply(module, f"pass-fusion{{rank={keys} tile=4}}")
    assert api.passes(module)[f"{keys}1"] == 1
    api.check_equivalent(before, module)


MIXED = """
func.func @mixed(%x: tensor<6x5xf32>, %c: tensor<6x4xf32>, %w: tensor<5x4xf32>, %n: tensor<6xi32>)
    -> (tensor<6xf32>, tensor<6xf32>, tensor<6x4xf32>, tensor<6xf32>, tensor<6xi32>, tensor<3x2xf32>) {
  %zero = arith.constant 0.0 : f32
  %two = arith.constant 2.0 : f32
  %e6 = tensor.empty() : tensor<6xf32>
  %z6 = linalg.fill ins(%zero : f32) outs(%e6 : tensor<6xf32>) -> tensor<6xf32>
  %stats:2 = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>, affine_map<(i, j) -> (i)>],
      iterator_types = ["parallel", "reduction"]}
      ins(%x : tensor<6x5xf32>) outs(%z6, %z6 : tensor<6xf32>, tensor<6xf32>) {
  ^bb0(%a: f32, %hi: f32, %sq: f32):
    %m = arith.maxnumf %hi, %a : f32
    %s = arith.mulf %a, %a : f32
    %t = arith.addf %s, %sq : f32
    linalg.yield %m, %t : f32, f32
  } -> (tensor<6xf32>, tensor<6xf32>)
  %acc = linalg.matmul ins(%x, %w : tensor<6x5xf32>, tensor<5x4xf32>) outs(%c : tensor<6x4xf32>) -> tensor<6x4xf32>
  %scaled = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>], iterator_types = ["parallel"]}
      ins(%stats#1 : tensor<6xf32>) outs(%stats#0 : tensor<6xf32>) {
  ^bb0(%a: f32, %o: f32):
    %d = arith.divf %a, %two : f32
    %r = arith.subf %o, %d : f32
    linalg.yield %r : f32
  } -> tensor<6xf32>
  %zi = arith.constant 0 : i32
  %ei = tensor.empty() : tensor<6xi32>
  %neg = linalg.generic {indexing_maps = [affine_map<(i) -> (i)>, affine_map<(i) -> (i)>], iterator_types = ["parallel"]}
      ins(%n : tensor<6xi32>) outs(%ei : tensor<6xi32>) {
  ^bb0(%a: i32, %o: i32):
    %r = arith.subi %zi, %a : i32
    %m = arith.maxsi %r, %a : i32
    linalg.yield %m : i32
  } -> tensor<6xi32>
  %e32 = tensor.empty() : tensor<3x2xf32>
  %blocked = linalg.generic {indexing_maps = [affine_map<(a, b) -> (a * 2 + b, 1)>, affine_map<(a, b) -> (a, b)>], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<6x5xf32>) outs(%e32 : tensor<3x2xf32>) {
  ^bb0(%a: f32, %o: f32):
    linalg.yield %a : f32
  } -> tensor<3x2xf32>
  return %stats#0, %stats#1, %acc, %scaled, %neg, %blocked : tensor<6xf32>, tensor<6xf32>, tensor<6x4xf32>, tensor<6xf32>, tensor<6xi32>, tensor<3x2xf32>
}
"""
"""A two-result generic (a max and a sum of squares over j, from a fill of 0, which is not
the identity of max), a matmul accumulating into an argument, a parallel generic reading its
initial value and a captured constant, an integer body, a blocked index."""


NAMED_OPS = """
func.func @f(%x: tensor<4x8xf32>, %y: tensor<8xf32>) -> (tensor<8x4xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>) {
  %e = tensor.empty() : tensor<8x4xf32>
  %t = linalg.transpose ins(%x : tensor<4x8xf32>) outs(%e : tensor<8x4xf32>) permutation = [1, 0]
  %zero = arith.constant 0.0 : f32
  %e4 = tensor.empty() : tensor<4xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e4 : tensor<4xf32>) -> tensor<4xf32>
  %r = linalg.reduce ins(%x : tensor<4x8xf32>) outs(%z : tensor<4xf32>) dimensions = [1]
    (%in: f32, %init: f32) {
      %s = arith.addf %in, %init : f32
      linalg.yield %s : f32
    }
  %e48 = tensor.empty() : tensor<4x8xf32>
  %b = linalg.broadcast ins(%y : tensor<8xf32>) outs(%e48 : tensor<4x8xf32>) dimensions = [0]
  %a = linalg.add ins(%x, %b : tensor<4x8xf32>, tensor<4x8xf32>) outs(%e48 : tensor<4x8xf32>) -> tensor<4x8xf32>
  %ex = linalg.exp ins(%a : tensor<4x8xf32>) outs(%e48 : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %t, %r, %b, %a, %ex : tensor<8x4xf32>, tensor<4xf32>, tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>
}
"""
"""linalg.transpose, linalg.reduce, linalg.broadcast and elementwise named ops."""


ONLINE = """
// 2-pass attention: the running max and the rescaled running sum in one generic.
func.func @attention(%q: tensor<8x16xf32>, %k: tensor<8x32xf32>, %v: tensor<4x32xf32>) -> tensor<4x16xf32> {
  %zero = arith.constant 0.0 : f32
  %minf = arith.constant 0xFF800000 : f32
  %e2 = tensor.empty() : tensor<32x16xf32>
  %z2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<32x16xf32>) -> tensor<32x16xf32>
  %qk = linalg.generic {indexing_maps = [affine_map<(m, p, e) -> (e, p)>, affine_map<(m, p, e) -> (e, m)>, affine_map<(m, p, e) -> (m, p)>], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%q, %k : tensor<8x16xf32>, tensor<8x32xf32>) outs(%z2 : tensor<32x16xf32>) {
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %s = arith.addf %acc, %m : f32
    linalg.yield %s : f32
  } -> tensor<32x16xf32>
  %e1 = tensor.empty() : tensor<16xf32>
  %max0 = linalg.fill ins(%minf : f32) outs(%e1 : tensor<16xf32>) -> tensor<16xf32>
  %sum0 = linalg.fill ins(%zero : f32) outs(%e1 : tensor<16xf32>) -> tensor<16xf32>
  %stats:2 = linalg.generic {indexing_maps = [affine_map<(p, m) -> (m, p)>, affine_map<(p, m) -> (p)>, affine_map<(p, m) -> (p)>], iterator_types = ["parallel", "reduction"]}
      ins(%qk : tensor<32x16xf32>) outs(%max0, %sum0 : tensor<16xf32>, tensor<16xf32>) {
  ^bb0(%x: f32, %old_max: f32, %old_sum: f32):
    %new_max = arith.maximumf %old_max, %x : f32
    %d = arith.subf %old_max, %new_max : f32
    %scale = math.exp %d : f32
    %rescaled = arith.mulf %old_sum, %scale : f32
    %dx = arith.subf %x, %new_max : f32
    %ex = math.exp %dx : f32
    %new_sum = arith.addf %rescaled, %ex : f32
    linalg.yield %new_max, %new_sum : f32, f32
  } -> (tensor<16xf32>, tensor<16xf32>)
  %eo = tensor.empty() : tensor<4x16xf32>
  %zo = linalg.fill ins(%zero : f32) outs(%eo : tensor<4x16xf32>) -> tensor<4x16xf32>
  %av = linalg.generic {indexing_maps = [affine_map<(f, p, m) -> (m, p)>, affine_map<(f, p, m) -> (p)>, affine_map<(f, p, m) -> (p)>, affine_map<(f, p, m) -> (f, m)>, affine_map<(f, p, m) -> (f, p)>], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%qk, %stats#0, %stats#1, %v : tensor<32x16xf32>, tensor<16xf32>, tensor<16xf32>, tensor<4x32xf32>) outs(%zo : tensor<4x16xf32>) {
  ^bb0(%x: f32, %mx: f32, %sm: f32, %w: f32, %acc: f32):
    %dx = arith.subf %x, %mx : f32
    %ex = math.exp %dx : f32
    %p = arith.divf %ex, %sm : f32
    %pw = arith.mulf %p, %w : f32
    %s = arith.addf %acc, %pw : f32
    linalg.yield %s : f32
  } -> tensor<4x16xf32>
  return %av : tensor<4x16xf32>
}
"""
"""2-pass attention: the running max and the rescaled running sum in one two-result generic,
a recurrence over the keys rather than a reduction with one operator."""


def test_online_softmax_is_a_recurrence() -> None:
    module = imported(ONLINE)
    text = str(module)
    assert "stats_run[c+1, b] = max(stats_run[c, b], %qk[c, b]) init(-inf)" in text
    assert (
        "stats_1_run[c+1, b] = stats_1_run[c, b] * exp(%stats_run[c, b] - %stats_run[c+1, b]) "
        "+ exp(%qk[c, b] - %stats_run[c+1, b]) init(0.0)"
    ) in text
    assert "stats[b] = %stats_run[C, b]" in text
    assert api.passes(module)["C"] == 2
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((8, 16), (8, 32), (4, 32)))
    got = run_cascade(module, {"q": q, "k": k, "v": v})["av"]
    np.testing.assert_allclose(got, attention(q, k, v), rtol=1e-5, atol=1e-5)


def test_mixed_linalg_imports() -> None:
    module = imported(MIXED)
    text = str(module)
    assert "stats_part = einsum.einsum stats_part[a] = %x[a, b] :: max(b)" in text
    assert "stats = einsum.einsum stats[a] = max(%z6[a], %stats_part[a])" in text
    assert "stats_1 = einsum.einsum stats_1[a] = %x[a, b] * %x[a, b]" in text
    assert "acc = einsum.einsum acc[a, c] = %c[a, c] + %acc_part[a, c]" in text
    assert "blocked[e, f] = %x[2*e+f, 1]" in text


@MLIR
@pytest.mark.parametrize(
    "text", [MHA, MIXED, NAMED_OPS, ONLINE], ids=["mha", "mixed", "named-ops", "online"]
)
def test_imports_mean_what_mlir_computes(text: str) -> None:
    check_against_mlir(text, seed=5)


@pytest.mark.parametrize("name", ["softmax.einsum", "layernorm.einsum", "matmul_chain.einsum"])
def test_export_then_import_is_the_same_cascade(name: str) -> None:
    """Cascades without blocked or iterative ranks export to generics and fills only, which
    import back as they were (the export names the ranks in `einsum.ranks`), but for rank
    sizes used as values, which the export writes as constants."""
    module = api.load(ROOT / "examples" / name)
    cascade = find_cascade(module)
    api.set_rank_sizes(module, {r: 8 for r in cascade.ranks.names})
    inputs = random_inputs(cascade, seed=2)
    expected = run_cascade(module, inputs)
    back = api.apply(module.clone(), "lower-to-linalg,linalg-to-einsum")
    assert str(back) == str(module).replace("/ N ", "/ 8.0 ")
    got = run_cascade(back, inputs)
    for (_, want), have in zip(expected.items(), got.values(), strict=True):
        np.testing.assert_allclose(have, want, rtol=1e-6)


def test_square_matrix_product_has_no_einsum_form() -> None:
    text = """
    func.func @square(%a: tensor<4x4xf32>, %c: tensor<4x4xf32>) -> tensor<4x4xf32> {
      %sq = linalg.matmul ins(%a, %a : tensor<4x4xf32>, tensor<4x4xf32>) outs(%c : tensor<4x4xf32>) -> tensor<4x4xf32>
      return %sq : tensor<4x4xf32>
    }"""
    with pytest.raises(PassFailedException, match="would both be rank A"):
        imported(text)
