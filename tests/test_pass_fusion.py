"""The pass-fusion rewrites one at a time: each keeps the cascade equivalent and produces its
documented form; when a precondition fails it changes nothing and says why (a remark, or a
one-line error for split-rank); and the Python API runs the whole recipe in a few lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.transforms.fuse_max_sum import FuseMaxSumPass
from einsum_opt.transforms.fuse_numerator import FuseNumeratorPass
from einsum_opt.transforms.split_rank import SplitRankPass

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EINSUM_OPT = str(Path(sys.executable).parent / "einsum-opt")

SMALL = {
    "attention/3pass.einsum": {"E": 16, "F": 16, "M": 256, "P": 32},
    "attention/2pass.einsum": {"E": 16, "F": 16, "M": 256, "P": 32},
    "softmax.einsum": {"M": 128, "P": 16},
    "logsumexp.einsum": {"M": 128, "P": 16},
    "layernorm.einsum": {"N": 64, "T": 16},
    "matmul_chain.einsum": {"M": 16, "K": 32, "N": 16, "L": 8},
}


def load(name: str) -> ModuleOp:
    """An example at small sizes."""
    module = api.load(EXAMPLES / name)
    api.set_rank_sizes(module, SMALL[name])
    return module


def the_cascade(module: ModuleOp) -> CascadeOp:
    """The only cascade of a module."""
    (cascade,) = cascades_in(module)
    return cascade


def einsums(module: ModuleOp) -> dict[str, EinsumOp]:
    """Tensor name -> Einsum, in cascade order."""
    return {op.tensor_name: op for op in the_cascade(module).einsums()}


def einsum_opt(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the `einsum-opt` console script."""
    return subprocess.run(
        [EINSUM_OPT, *args], capture_output=True, text=True, timeout=120, check=False
    )


# -- each pass alone keeps the cascade equivalent ---------------------------------------------


def test_split_rank_blocks_inputs_and_splits_every_use() -> None:
    """split-rank{rank=M tile=64} re-blocks K and V, splits every M, and still needs 3 passes."""
    before = load("attention/3pass.einsum")
    after = api.apply(before.clone(), "split-rank{rank=M tile=64}")
    api.check_equivalent(before, after, rtol=1e-5)
    ops = einsums(after)
    assert list(ops) == ["BK", "BV", "QK", "GM", "SN", "SD", "A", "AV"]
    assert the_cascade(after).rank_sizes()["M0"] == 64
    assert the_cascade(after).rank_sizes()["M1"] == 4
    assert all("M" not in op.result_type.rank_names for op in ops.values())
    assert ops["GM"].reduce.data == (("m1", "max"), ("m0", "max"))
    assert ops["AV"].reduce.data == (("m1", "add"), ("m0", "add"))
    assert api.passes(after) == {"E": 1, "F": 1, "P": 1, "M0": 3, "M1": 3}


def test_fuse_max_sum_unsplit_gives_the_online_form() -> None:
    """Unsplit, fuse-max-sum replaces GM and SD by a running max RM and running sum RD over m."""
    before = load("attention/3pass.einsum")
    after = api.apply(before.clone(), "fuse-max-sum")
    api.check_equivalent(before, after, rtol=1e-5)
    ops = einsums(after)
    assert list(ops) == ["QK", "RM", "RD", "SN", "A", "AV"]
    assert ops["RM"].iterative_rank() == "m"
    assert ops["RD"].iterative_rank() == "m"
    assert "init(-3.4028235e+38)" in str(ops["RM"])  # the lowest f32: masked inputs stay right
    assert "RD[m, p] * exp(%RM[m, p] - %RM[m+1, p])" in str(ops["RD"])
    assert "%RM[M, p]" in str(ops["SN"]) and "%RD[M, p]" in str(ops["A"])
    assert api.passes(after)["M"] == 2


def test_fuse_max_sum_split_gives_the_tiled_form() -> None:
    """On a split rank, fuse-max-sum builds a local max LM over m0 and running RM/RD over m1."""
    before = load("attention/3pass.einsum")
    after = api.apply(before.clone(), "split-rank{rank=M tile=64},fuse-max-sum")
    api.check_equivalent(before, after, rtol=1e-5)
    ops = einsums(after)
    for name in ("LM", "RM", "SLN", "PRM", "SPD", "SLD", "RD"):
        assert name in ops
    assert "GM" not in ops and "SD" not in ops
    assert ops["LM"].reduce.data == (("m0", "max"),)
    assert ops["LM"].iterative_rank() is None
    assert ops["RM"].iterative_rank() == "m1"
    assert ops["RD"].iterative_rank() == "m1"
    assert ops["SLD"].reduce.data == (("m0", "add"),)
    assert api.passes(after)["M1"] == 2


def test_fuse_numerator_unsplit_after_max_sum_gives_one_pass() -> None:
    """fuse-max-sum then fuse-numerator, unsplit: a running numerator RNV and 1 pass over M."""
    before = load("attention/3pass.einsum")
    after = api.apply(before.clone(), "fuse-max-sum,fuse-numerator")
    api.check_equivalent(before, after, rtol=1e-5)
    ops = einsums(after)
    assert list(ops) == ["QK", "RM", "RD", "PRM", "SLN", "SPNV", "SLNV", "RNV", "AV"]
    assert ops["RNV"].iterative_rank() == "m"
    assert "AV[f, p] = %RNV[M, f, p] / %RD[M, p]" in str(ops["AV"])
    assert api.passes(after)["M"] == 1


def test_fuse_numerator_on_2pass_gives_one_pass() -> None:
    """fuse-numerator alone takes the hand-written 2-pass cascade to 1 pass over M."""
    before = load("attention/2pass.einsum")
    after = api.apply(before.clone(), "fuse-numerator")
    api.check_equivalent(before, after, rtol=1e-5)
    assert api.passes(before)["M"] == 2
    assert api.passes(after)["M"] == 1
    assert "A" not in einsums(after)


def test_fuse_mean_variance_on_layernorm() -> None:
    """fuse-mean-variance turns layer norm's mean and variance into a running (Welford) pass."""
    before = load("layernorm.einsum")
    after = api.apply(before.clone(), "fuse-mean-variance")
    api.check_equivalent(before, after, rtol=1e-5)
    ops = einsums(after)
    for name in ("RC", "RMU", "RM2"):
        assert ops[name].iterative_rank() == "n"
    assert "S" not in ops and "MU" not in ops and "SQ" not in ops
    assert api.passes(after) == {"N": 2, "T": 1}


def test_fuse_mean_variance_is_accurate_for_offset_data() -> None:
    """Welford's update keeps the variance of data far from zero as accurate as two passes."""
    before = load("layernorm.einsum")
    after = api.apply(before.clone(), "fuse-mean-variance")
    rng = np.random.default_rng(0)
    inputs = {
        "X": (1000.0 + rng.standard_normal((64, 16))).astype(np.float32),
        "G": np.ones(64, np.float32),
        "B": np.zeros(64, np.float32),
    }
    x = inputs["X"].astype(np.float64)
    want = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(api.run(after, inputs)["Y"], want, atol=2e-3)
    np.testing.assert_allclose(api.run(before, inputs)["Y"], want, atol=2e-3)


CLEANUP = """\
cascade small
ranks M=8, P=4, M0=4, M1=M/M0
input X[M,P]
output S, T, C2
C[m,p] = X[m,p]
BX[m1,m0,p] = X[m1*M0+m0,p]
DEAD[p] = X[m,p] :: max(m)
TR[p,m] = X[m,p]
S[p] = C[m,p] * 2 + TR[p,m]
T[p] = BX[m1,m0,p] :: max(m1, m0)
C2[m,p] = X[m,p]
"""


def test_cleanup_removes_dead_einsums_and_forwards_plain_copies() -> None:
    """cleanup drops DEAD, forwards the plain copy C, keeps the blocking BX, the transposing TR
    and the returned copy C2."""
    before = api.parse(CLEANUP, kind="einsum")
    after = api.apply(before.clone(), "cleanup")
    api.check_equivalent(before, after, rtol=0)
    ops = einsums(after)
    assert list(ops) == ["BX", "TR", "S", "T", "C2"]
    assert "%X[m, p] * 2.0" in str(ops["S"])
    assert the_cascade(after).output_names() == ["S", "T", "C2"]


def test_cleanup_keeps_the_blocking_copies_of_the_1pass_cascade() -> None:
    """cleanup leaves the 1-pass cascade as it is: BK and BV re-block K and V."""
    module = api.load(EXAMPLES / "attention" / "1pass.mlir")
    printed = str(module)
    api.apply(module, "cleanup")
    assert str(module) == printed


# -- preconditions that fail leave the IR unchanged and say why --------------------------------


def test_fuse_numerator_on_softmax_remarks_that_two_passes_is_the_minimum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After fuse-max-sum, fuse-numerator on softmax changes nothing and explains why."""
    module = load("softmax.einsum")
    api.apply(module, "fuse-max-sum")
    capsys.readouterr()
    printed = str(module)
    api.apply(module, "fuse-numerator")
    assert str(module) == printed
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        "remark: fuse-numerator: @softmax: A reads the final value of RD per element of M and "
        "is a cascade output over M"
    )
    assert err[0].endswith("so 2 passes is the minimum")


@pytest.mark.parametrize(
    ("name", "pipeline", "message"),
    [
        ("matmul_chain.einsum", "fuse-max-sum", "remark: fuse-max-sum: @matmul_chain: nothing"),
        ("matmul_chain.einsum", "fuse-numerator", "remark: fuse-numerator: @matmul_chain: no"),
        ("matmul_chain.einsum", "pass-fusion", "every rank already needs 1 pass"),
        ("attention/3pass.einsum", "fuse-mean-variance", "remark: fuse-mean-variance: @att"),
        ("attention/3pass.einsum", "fuse-max-sum{rank=E}", "nothing to merge over rank E"),
    ],
)
def test_rewrites_without_a_match_change_nothing_and_remark(
    name: str, pipeline: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rewrite asked for where it does not apply leaves the IR alone with one remark."""
    module = load(name)
    printed = str(module)
    api.apply(module, pipeline)
    assert str(module) == printed
    err = capsys.readouterr().err
    assert message in err
    assert len(err.splitlines()) == 1


def test_einsum_opt_prints_the_remark_and_the_unchanged_ir() -> None:
    """On the command line the remark goes to stderr, the unchanged cascade to stdout."""
    source = str(EXAMPLES / "matmul_chain.einsum")
    result = einsum_opt(source, "-p", "fuse-max-sum")
    assert result.returncode == 0
    assert result.stdout == einsum_opt(source).stdout
    assert result.stderr.startswith("remark: fuse-max-sum: @matmul_chain: nothing to merge")


@pytest.mark.parametrize(
    ("name", "pipeline", "reason"),
    [
        (
            "attention/3pass.einsum",
            "split-rank{rank=M tile=100}",
            "{file}:4:9: error: split-rank: @attention: tile 100 does not divide rank M of size 1024",
        ),
        (
            "attention/2pass.einsum",
            "split-rank{rank=M tile=256}",
            "{file}:13:1: error: split-rank: @attention: rank M is iterative in einsum RM",
        ),
        (
            "softmax.einsum",
            "split-rank{rank=M tile=300}",
            "{file}:4:9: error: split-rank: @softmax: tile 300 does not divide rank M of size 1024",
        ),
        (
            "softmax.einsum",
            "pass-fusion{rank=M tile=0}",
            "{file}:4:9: error: pass-fusion: @softmax: the tile must be a positive number of coordinates",
        ),
        (
            "attention/3pass.einsum",
            "split-rank{rank=Z tile=4}",
            "error: split-rank: no cascade declares rank Z",
        ),
    ],
)
def test_split_rank_errors_are_one_line_with_no_output(
    name: str, pipeline: str, reason: str, tmp_path: Path
) -> None:
    """A rank that cannot be split is one `error:` line naming the reason (at the cascade or the
    Einsum at fault), exit 1, no output."""
    out = tmp_path / "out.mlir"
    result = einsum_opt(str(EXAMPLES / name), "-p", pipeline, "-o", str(out))
    assert result.returncode == 1
    assert result.stdout == ""
    assert not out.exists()
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(reason.format(file=EXAMPLES / name))


def test_split_rank_error_leaves_the_module_unchanged_through_the_api() -> None:
    """Through the API a failed split raises and modifies nothing."""
    module = load("attention/3pass.einsum")
    printed = str(module)
    with pytest.raises(PassFailedException, match="tile 100 does not divide rank M of size 256"):
        api.apply(module, "split-rank{rank=M tile=100}")
    assert str(module) == printed


# -- the Python API round trip -----------------------------------------------------------------


def test_python_api_round_trip() -> None:
    """load, clone, apply a pipeline as a string and as pass objects, count passes, run, compare."""
    module = api.load(EXAMPLES / "attention" / "3pass.einsum")
    api.set_rank_sizes(module, {"M": 256, "P": 32, "E": 16, "F": 16})
    before = module.clone()
    by_string = api.apply(module.clone(), "pass-fusion{rank=M tile=64}")
    by_objects = api.apply(
        module.clone(), [SplitRankPass(rank="M", tile=64), FuseMaxSumPass(), FuseNumeratorPass()]
    )
    assert str(by_objects) == str(by_string)
    assert api.passes(before)["M"] == 3
    assert api.passes(by_objects)["M1"] == 1
    inputs = api.random_inputs(the_cascade(before), seed=7)
    want = api.run(before, inputs)["AV"]
    got = api.run(by_objects, inputs)["AV"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    api.check_equivalent(before, by_string)
    assert str(module) == str(before)


TWO_SOFTMAXES = """\
cascade two
ranks M=32, N=16, P=4
input X[M,P], Z[N,P]
output A, B
GM[p] = X[m,p] :: max(m)
SN[m,p] = exp(X[m,p] - GM[p])
SD[p] = SN[m,p]
A[m,p] = SN[m,p] / SD[p]
GN[p] = Z[n,p] :: max(n)
TN[n,p] = exp(Z[n,p] - GN[p])
TD[p] = TN[n,p]
B[n,p] = TN[n,p] / TD[p]
"""


def test_pass_fusion_without_a_rank_fuses_every_rank_that_can_be() -> None:
    """Two softmaxes over different ranks: both reach 2 passes over their tiles."""
    before = api.parse(TWO_SOFTMAXES, kind="einsum")
    after = api.apply(before.clone(), "pass-fusion{tile=8}")
    assert api.passes(before) == {"M": 3, "N": 3, "P": 1}
    assert api.passes(after) == {"P": 1, "M0": 3, "M1": 2, "N0": 3, "N1": 2}
    api.check_equivalent(before, after)


def test_pass_fusion_leaves_a_cascade_without_merges_unchanged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A sum of squared deviations from the max needs 2 passes and nothing merges it: the
    cascade comes back unsplit and unchanged, and the remark names the blocking read."""
    text = "cascade t\nranks M=64, P=2\ninput X[M,P]\noutput SQ\nGM[p] = X[m,p] :: max(m)\n"
    text += "SQ[p] = (X[m,p] - GM[p]) * (X[m,p] - GM[p])\n"
    module = api.parse(text, kind="einsum")
    printed = str(module)
    api.apply(module, "pass-fusion")
    assert str(module) == printed
    err = capsys.readouterr().err
    assert "nothing merges over M; the cascade is unchanged" in err
    assert "SQ reads GM, a max over M" in err
