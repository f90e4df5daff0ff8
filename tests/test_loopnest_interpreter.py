"""Executing lowered cascades: `loopnest.nest` ops run from their own loops and indices.

Every example is lowered with the default mapping and with hand-made mappings (partitioned
ranks, reordered and spatial loops) and must compute what the unlowered cascade computes; nests
corrupted by text edits (a trip count, a stride, a reduction, the iterative loop) must be
rejected by the verifier or give other numbers or an ExecutionError.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_mapping import MappingAttr, einsum_ranks, loop_ranks
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.interpreters.einsum import ExecutionError, find_cascade, random_inputs, run_cascade
from einsum_opt.interpreters.einsum_kernel import EinsumKernel, Layout
from einsum_opt.interpreters.einsum_schedule import execution_order
from einsum_opt.lowering.einsum_to_loopnest import lower_einsum
from einsum_opt.support.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EINSUM_OPT = str(Path(sys.executable).parent / "einsum-opt")
EINSUM_RUN = str(Path(sys.executable).parent / "einsum-run")

SMALL_SIZES: dict[str, dict[str, int]] = {
    "attention/3pass.mlir": {"M": 64, "P": 32, "E": 8, "F": 8},
    "attention/2pass.mlir": {"M": 64, "P": 32, "E": 8, "F": 8},
    "attention/1pass.mlir": {"M": 64, "P": 32, "E": 8, "F": 8, "M0": 16},
    "softmax.einsum": {"M": 64, "P": 32},
    "layernorm.einsum": {"N": 64, "T": 32},
    "matmul_chain.einsum": {"M": 32, "K": 64, "N": 32, "L": 16},
}
"""Each example, with small rank sizes (fixed in the IR before lowering: trip counts follow)."""


def small(example: str) -> ModuleOp:
    """An example at its small sizes."""
    module = api.load(EXAMPLES / example)
    api.set_rank_sizes(module, SMALL_SIZES[example])
    return module


def cascade_of(module: ModuleOp) -> CascadeOp:
    """The only cascade of a module."""
    return find_cascade(module)


# -- mappings -----------------------------------------------------------------------------------


def looped_ranks(cascade: CascadeOp) -> set[str]:
    """Ranks that some group of the cascade loops over in Python (iterative ranks): they are
    neither partitioned nor spatial in the hand-made mappings."""
    ranks: set[str] = set()
    for group in execution_order(cascade.einsums()):
        ranks |= {v.upper() for op in group if (v := op.iterative_rank()) is not None}
    return ranks


TILED: dict[str, tuple[str, ...]] = {
    "attention/3pass.mlir": ("P",),
    "attention/2pass.mlir": ("P",),
    "attention/1pass.mlir": ("P",),
    "softmax.einsum": ("P", "M"),
    "layernorm.einsum": ("N",),
    "matmul_chain.einsum": ("K", "N"),
}
"""The ranks the tiling mappings partition in each example (reduced ones among them)."""

Mapper = Callable[[EinsumOp, CascadeOp, tuple[str, ...]], MappingAttr]
"""Makes the mapping of an Einsum of a cascade, given the ranks to tile."""


def tiled(shapes: list[int]) -> Mapper:
    """A mapping partitioning the tiled ranks (those the Einsum iterates) with `shapes`."""

    def make(op: EinsumOp, cascade: CascadeOp, ranks: tuple[str, ...]) -> MappingAttr:
        parts = {r: shapes for r in ranks if r in einsum_ranks(op)}
        return MappingAttr.make("pe2d", partition=parts)

    return make


def reversed_loops(op: EinsumOp, cascade: CascadeOp, ranks: tuple[str, ...]) -> MappingAttr:
    """The tiled ranks tiled twice ([16, 4]), the loop order reversed (an iterative loop
    innermost)."""
    parts = {r: [16, 4] for r in ranks if r in einsum_ranks(op)}
    loops = loop_ranks(op, MappingAttr.make("pe1d", partition=parts))
    return MappingAttr.make("pe1d", list(reversed(loops)), parts)


def everything(op: EinsumOp, cascade: CascadeOp, ranks: tuple[str, ...]) -> MappingAttr:
    """Halve every rank that can be halved, shuffle the loops, make two loops spatial."""
    sizes = cascade.rank_sizes()
    fixed = looped_ranks(cascade)
    parts = {r: [sizes[r] // 2] for r in einsum_ranks(op) if r not in fixed and sizes[r] % 2 == 0}
    base = MappingAttr.make("pe2d", partition=parts)
    loops = loop_ranks(op, base)
    random.Random(op.tensor_name).shuffle(loops)
    spatial = [r for r in loops if r not in fixed][:2]
    return MappingAttr.make(
        "pe2d", loops, parts, {r: axis for axis, r in enumerate(spatial)}, {op.tensor_name: "PE"}
    )


MAPPINGS: dict[str, Mapper | None] = {
    "default": None,
    "tile [8]": tiled([8]),
    "tile [16,4] reversed": reversed_loops,
    "all halved, shuffled, spatial": everything,
}


def mapped(module: ModuleOp, mapping: str, example: str) -> ModuleOp:
    """`module` (the example) with every Einsum given the named mapping (verified)."""
    make = MAPPINGS[mapping]
    if make is not None:
        cascade = cascade_of(module)
        for op in cascade.einsums():
            op.attributes["mapping"] = make(op, cascade, TILED[example])
    module.verify()
    return module


def lowered(module: ModuleOp) -> ModuleOp:
    """A lowered copy of `module`: only loop nests remain."""
    out = api.apply(module.clone(), "lower-to-loopnest")
    ops = list(cascade_of(out).body.block.ops)[:-1]
    assert ops and all(isinstance(op, NestOp) for op in ops)
    return out


def assert_same_outputs(reference: ModuleOp, other: ModuleOp, seed: int = 1) -> None:
    """Both modules compute the same outputs (to 1e-5) on the same random inputs."""
    inputs = random_inputs(cascade_of(reference), seed=seed)
    want = run_cascade(reference, inputs)
    got = run_cascade(other, inputs)
    assert list(got) == list(want)
    for name, expected in want.items():
        assert got[name].shape == expected.shape and got[name].dtype == expected.dtype
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)


# -- lowered examples compute what the cascade computes -----------------------------------------


@pytest.mark.parametrize("mapping", list(MAPPINGS))
@pytest.mark.parametrize("example", list(SMALL_SIZES))
def test_lowered_example_matches_reference(example: str, mapping: str) -> None:
    reference = mapped(small(example), mapping, example)
    nests = lowered(reference)
    assert_same_outputs(reference, nests)
    if mapping != "default":  # the hand-made mappings really do partition some loops
        loops = [
            loop.var.data
            for op in cascade_of(nests).body.block.ops
            if isinstance(op, NestOp)
            for loop in op.loop_list()
        ]
        assert any(v[:-1].upper() in TILED[example] and v[-1:] == "0" for v in loops)


def generic_text(module: ModuleOp) -> str:
    """`module` in the generic MLIR form."""
    stream = StringIO()
    Printer(stream=stream, print_generic_format=True).print_op(module)
    return stream.getvalue()


@pytest.mark.parametrize("example", SMALL_SIZES)
def test_lowered_custom_text_round_trips_and_runs(example: str) -> None:
    reference = mapped(small(example), "tile [16,4] reversed", example)
    reparsed = api.parse(str(lowered(reference)))
    assert_same_outputs(reference, reparsed, seed=2)


@pytest.mark.parametrize("example", list(SMALL_SIZES))
def test_lowered_generic_text_round_trips_and_runs(example: str) -> None:
    reference = mapped(small(example), "tile [16,4] reversed", example)
    reparsed = api.parse(generic_text(lowered(reference)))
    assert_same_outputs(reference, reparsed, seed=2)


MIXED_NESTS = {"BK", "LM", "SLN", "PRM", "SPD", "SLNV", "SPNV"}
"""The Einsums of the 1-pass cascade lowered in the mixed test: the read-ahead cycles SPD/RD
and SPNV/RNV each mix a nest with an Einsum."""


def test_mixed_cascade_of_einsums_and_nests() -> None:
    example = "attention/1pass.mlir"
    reference = mapped(small(example), "all halved, shuffled, spatial", example)
    mixed = reference.clone()
    cascade = cascade_of(mixed)
    for op in cascade.einsums():
        if op.tensor_name in MIXED_NESTS:
            nest = lower_einsum(cascade, op)
            cascade.body.block.insert_op_before(nest, op)
            op.result.replace_all_uses_with(nest.result)
            op.detach()
            op.erase()
    mixed.verify()
    kinds = [type(op) for op in cascade.body.block.ops]
    assert EinsumOp in kinds and NestOp in kinds
    assert_same_outputs(reference, mixed, seed=3)


def test_mapping_given_in_mlir_text() -> None:
    text = """
einsum.cascade @mm(%A: !einsum.tensor<[M, K], f32>, %B: !einsum.tensor<[K, N], f32>)
    -> !einsum.tensor<[M, N], f32> ranks(M = 12, K = 8, N = 16) {
  %C = einsum.einsum C[m, n] = %A[m, k] * %B[k, n] {mapping = #einsum.mapping<unit = pe2d,
      loops = [N2, K1, M, N1, K0, N0], partition = {N = [8, 2], K = [4]},
      space = {N0 = 0, K0 = 1}>} : !einsum.tensor<[M, N], f32>
  einsum.return %C : !einsum.tensor<[M, N], f32>
}
"""
    reference = api.parse(text)
    nests = lowered(reference)
    nest = cascade_of(nests).body.block.first_op
    assert isinstance(nest, NestOp)
    assert nest.extents() == {"n2": 2, "k1": 2, "m": 12, "n1": 4, "k0": 4, "n0": 2}
    assert [str(ix) for ix in nest.output_indices] == ["m", "8*n2+2*n1+n0"]
    inputs = random_inputs(cascade_of(reference), seed=4)
    out = run_cascade(nests, inputs)["C"]
    np.testing.assert_allclose(out, inputs["A"] @ inputs["B"], rtol=1e-5, atol=1e-5)


# -- nests by hand --------------------------------------------------------------------------------

HAND_WRITTEN = """
einsum.cascade @hand(%X: !einsum.tensor<[M, N], f32>)
    -> (!einsum.tensor<[N], f32>, !einsum.tensor<[M, N], f32>, !einsum.tensor<[N, M], f32>,
        !einsum.tensor<[M, N], f32>) ranks(M = 6, N = 4) {
  %Y = loopnest.nest on u loops [n1 = 2, m = 6, n0 = 2] levels [DRAM, DRAM]
      Y[2*n1+n0] = %X[m, 2*n1+n0] :: max(m) : !einsum.tensor<[N], f32>
  %S = loopnest.nest on u loops [n0 = 2 space 0, m = 6, n1 = 2] levels [DRAM, DRAM, DRAM]
      S[m+1, n1+2*n0] = S[m, n1+2*n0] + %X[m, n1+2*n0] init(0.0) : !einsum.tensor<[M, N], f32>
  %T = loopnest.nest on u loops [i = 4, j = 3, k = 2] levels [DRAM, DRAM]
      T[i, 2*j+k] = %X[5-2*j-k, i] * 2.0 : !einsum.tensor<[N, M], f32>
  %R = loopnest.nest on u loops [m = 6, n = 4] levels [DRAM, DRAM]
      R[5-m, n] = %X[m, n] : !einsum.tensor<[M, N], f32>
  einsum.return %Y, %S, %T, %R : !einsum.tensor<[N], f32>, !einsum.tensor<[M, N], f32>,
      !einsum.tensor<[N, M], f32>, !einsum.tensor<[M, N], f32>
}
"""


def test_hand_written_nests() -> None:
    x = np.arange(24, dtype=np.float32).reshape(6, 4) % 7 - 3
    out = run_cascade(api.parse(HAND_WRITTEN), {"X": x})
    np.testing.assert_array_equal(out["Y"], x.max(axis=0))
    np.testing.assert_array_equal(out["S"], np.vstack([np.zeros((1, 4)), np.cumsum(x, axis=0)]))
    np.testing.assert_array_equal(out["T"], 2 * x[::-1].T)
    np.testing.assert_array_equal(out["R"], x[::-1])


def kernels_of(module: ModuleOp) -> dict[str, EinsumKernel]:
    """A kernel for every non-iterative nest of a module's cascade."""
    cascade = cascade_of(module)
    layout = Layout(cascade.rank_sizes(), {})
    return {
        op.tensor_name: EinsumKernel(op, layout)
        for op in cascade.body.block.ops
        if isinstance(op, NestOp) and op.iterative_rank() is None
    }


def test_nests_keep_the_fast_paths() -> None:
    example = "attention/3pass.mlir"
    for mapping in ("default", "tile [8]", "tile [16,4] reversed"):
        kernels = kernels_of(lowered(mapped(small(example), mapping, example)))
        # values are written in place or by a transpose and reshape, never scattered
        assert all(k.output.direct for k in kernels.values())
        # mixed-radix indices such as 16*p2+4*p1+p0 are read as views
        assert all(plan.is_view for k in kernels.values() for plan in k.plans)
        assert kernels["QK"].uses_contraction and kernels["AV"].uses_contraction
    assert kernels["QK"].grid.variables == ("m", "p2", "p1", "p0", "e")
    hand = kernels_of(api.parse(HAND_WRITTEN))
    assert hand["Y"].output.direct and hand["T"].output.direct
    assert not hand["T"].plans[0].is_view  # X[5-2*j-k, i]: advanced indexing
    assert not hand["R"].output.direct  # R[5-m, n]: scattered


# -- corrupted nests ------------------------------------------------------------------------------


def corrupted(module: ModuleOp, old: str, new: str) -> str:
    """The text of `module` with the one occurrence of `old` replaced by `new`."""
    text = str(module)
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def lowered_text_of(example: str, mapping: str = "default") -> tuple[ModuleOp, ModuleOp]:
    """(the mapped example, its lowering)."""
    reference = mapped(small(example), mapping, example)
    return reference, lowered(reference)


ERRORS = [
    # an output loop one trip short: half of SN is never written
    (
        "attention/3pass.mlir",
        "default",
        "loops [m = 64, p = 32] levels [GLB, GLB, GLB] SN",
        "loops [m = 64, p = 16] levels [GLB, GLB, GLB] SN",
        r"nest SN: .*never writes SN\[0, 16\]",
    ),
    # a reduced loop too long: it reads past Q's rank E
    (
        "attention/3pass.mlir",
        "default",
        "e = 8]",
        "e = 16]",
        r"nest QK: index e of Q\[e, p\] ranges over \[0, 15\] but rank E of Q has indices 0..7",
    ),
    # a wrong stride in the output index: two loop points write one coordinate
    (
        "attention/3pass.mlir",
        "tile [8]",
        "QK[m, 8*p1+p0] =",
        "QK[m, 4*p1+p0] =",
        r"nest QK: .*writes QK\[0, 4\] 2 times",
    ),
    # a wrong stride in an iterative nest's output index
    (
        "attention/2pass.mlir",
        "tile [16,4] reversed",
        "RD[m+1, 16*p2+4*p1+p0] =",
        "RD[m+1, 16*p2+2*p1+p0] =",
        r"nest RD: .*writes RD\[1, 2\] 2 times",
    ),
    # the iterative loop one trip short: the final value of RM is never written
    (
        "attention/1pass.mlir",
        "default",
        "loops [m1 = 4, p = 32] levels [GLB, GLB, GLB] RM",
        "loops [m1 = 3, p = 32] levels [GLB, GLB, GLB] RM",
        r"nest RM: .*never writes RM\[4, 0\]",
    ),
]


@pytest.mark.parametrize(("example", "mapping", "old", "new", "message"), ERRORS)
def test_corrupted_nest_is_an_execution_error(
    example: str, mapping: str, old: str, new: str, message: str
) -> None:
    reference, nests = lowered_text_of(example, mapping)
    bad = api.parse(corrupted(nests, old, new))  # the verifier accepts it ...
    with pytest.raises(ExecutionError, match=message):  # ... execution does not
        api.check_equivalent(reference, bad)


WRONG_NUMBERS = [
    # a reduced loop one half short: QK sums over half of E
    ("attention/3pass.mlir", "default", "e = 8]", "e = 4]"),
    # a wrong stride in an access: QK reads the wrong columns of Q
    ("attention/3pass.mlir", "tile [8]", "%Q[e, 8*p1+p0]", "%Q[e, 4*p1+p0]"),
    # a reduction dropped: SLD reads one key per tile instead of summing over the tile
    (
        "attention/1pass.mlir",
        "default",
        "loops [m1 = 4, p = 32, m0 = 16] levels [GLB, GLB] SLD[m1, p] = %SLN[m1, m0, p]",
        "loops [m1 = 4, p = 32] levels [GLB, GLB] SLD[m1, p] = %SLN[m1, 0, p]",
    ),
    # the wrong reduce operator: SD takes the largest term instead of the sum
    ("attention/3pass.mlir", "default", "SD[p] = %SN[m, p] :", "SD[p] = %SN[m, p] :: max(m) :"),
]


@pytest.mark.parametrize(("example", "mapping", "old", "new"), WRONG_NUMBERS)
def test_corrupted_nest_gives_other_numbers(example: str, mapping: str, old: str, new: str) -> None:
    reference, nests = lowered_text_of(example, mapping)
    bad = api.parse(corrupted(nests, old, new))  # the verifier accepts it ...
    with pytest.raises(UserError, match="outputs differ"):  # ... the numbers differ
        api.check_equivalent(reference, bad)


def test_trip_counts_do_not_follow_rank_overrides() -> None:
    nests = lowered(small("attention/3pass.mlir"))
    with pytest.raises(ExecutionError, match=r"nest QK: .*never writes QK\[0, 32\]"):
        run_cascade(nests, ranks={"P": 64})


def test_partitioned_reduction_one_level_short() -> None:
    text = """
einsum.cascade @mm(%A: !einsum.tensor<[M, K], f32>, %B: !einsum.tensor<[K, N], f32>)
    -> !einsum.tensor<[M, N], f32> ranks(M = 4, K = 16, N = 8) {
  %C = einsum.einsum C[m, n] = %A[m, k] * %B[k, n] {mapping = #einsum.mapping<unit = pe2d,
      partition = {K = [4]}>} : !einsum.tensor<[M, N], f32>
  einsum.return %C : !einsum.tensor<[M, N], f32>
}
"""
    reference = api.parse(text)
    nests = lowered(reference)
    assert_same_outputs(reference, nests)
    bad = api.parse(corrupted(nests, "k1 = 4", "k1 = 2"))
    with pytest.raises(UserError, match="outputs differ"):
        api.check_equivalent(reference, bad)


REJECTED = [
    # a reduced loop dropped while an index still uses it
    (
        "attention/3pass.mlir",
        "loops [p = 32, m = 64] levels [GLB, GLB] SD",
        "loops [p = 32] levels [GLB, GLB] SD",
        "index variable m has no loop",
    ),
    # a loop no index uses
    (
        "attention/3pass.mlir",
        "loops [m = 64, p = 32] levels [GLB, GLB, GLB] SN",
        "loops [m = 64, p = 32, e = 8] levels [GLB, GLB, GLB] SN",
        "loop e is used by no index",
    ),
    # the iterative loop made spatial
    (
        "attention/1pass.mlir",
        "loops [m1 = 4, p = 32] levels [GLB, GLB, GLB] RM",
        "loops [m1 = 4 space 0, p = 32] levels [GLB, GLB, GLB] RM",
        "iterative loop m1 cannot",
    ),
    # an iterative nest without its initial value
    ("attention/1pass.mlir", " init(-3.4028235e+38)", "", "nest RM: iterative loop m1 has no initial value"),
    # RD no longer iterates m1 (but keeps its initial value)
    ("attention/1pass.mlir", "RD[m1+1, p] =", "RD[m1, p] =", "nest RD: has an initial value but"),
]


@pytest.mark.parametrize(("example", "old", "new", "message"), REJECTED)
def test_corrupted_nest_is_rejected_by_the_verifier(
    example: str, old: str, new: str, message: str
) -> None:
    _, nests = lowered_text_of(example)
    with pytest.raises(VerifyException, match=message):
        api.parse(corrupted(nests, old, new))


# -- command line ---------------------------------------------------------------------------------


def test_einsum_opt_checks_the_lowering() -> None:
    result = subprocess.run(
        [
            EINSUM_OPT,
            str(EXAMPLES / "attention" / "1pass.mlir"),
            "--ranks",
            "M=64,P=32,E=8,F=8,M0=16",
            "-p",
            "lower-to-loopnest",
            "--check-equivalence",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "loopnest.nest" in result.stdout
    assert any(
        line.startswith("check-equivalence: @attention AV:") and line.endswith(": ok")
        for line in result.stderr.splitlines()
    ), result.stderr


def test_einsum_run_runs_a_lowered_file(tmp_path: Path) -> None:
    reference = mapped(small("softmax.einsum"), "all halved, shuffled, spatial", "softmax.einsum")
    source = tmp_path / "lowered.mlir"
    source.write_text(str(lowered(reference)))
    result = subprocess.run(
        [EINSUM_RUN, str(source), "--seed", "7", "-o", str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out.npz") as got:
        np.testing.assert_allclose(
            got["A"], run_cascade(reference, seed=7)["A"], rtol=1e-5, atol=1e-6
        )
