"""pass-fusion beyond the one example: it reproduces the hand-written 1-pass cascade, and it
matches structure, not names, so renamed tensors and ranks, batch and head ranks, a folded
scale factor and f16 all fuse to 1 pass with the same results."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_syntax import IndexExpr, Size, rank_of
from einsum_opt.support.errors import UserError
from einsum_opt.transforms.rewriting import RCall, Read, Tree, resolved

ATTENTION = Path(__file__).resolve().parent.parent / "examples" / "attention"

# 3-pass attention in the notation; names, ranks, extra ranks and the element type are filled in.
THREE_PASS = """\
cascade attention
ranks {E}={sE}, {F}={sF}, {M}={sM}, {P}={sP}{XR}
input {Q}[{E},{P}{X}]{dt}, {K}[{E},{M}{X}]{dt}, {V}[{F},{M}{X}]{dt}
output {AV}
{QK}[{m},{p}{x}] = {Q}[{e},{p}{x}] * {K}[{e},{m}{x}]{scale}
{GM}[{p}{x}] = {QK}[{m},{p}{x}] :: max({m})
{SN}[{m},{p}{x}] = exp({QK}[{m},{p}{x}] - {GM}[{p}{x}])
{SD}[{p}{x}] = {SN}[{m},{p}{x}]
{A}[{m},{p}{x}] = {SN}[{m},{p}{x}] / {SD}[{p}{x}]
{AV}[{f},{p}{x}] = {A}[{m},{p}{x}] * {V}[{f},{m}{x}]
"""

# The 1-pass (FuseMax) cascade written by hand with the same placeholders.
ONE_PASS = """\
cascade attention
ranks {E}={sE}, {F}={sF}, {M}={sM}, {P}={sP}{XR}
ranks {M}0={tile}, {M}1={M}/{M}0
input {Q}[{E},{P}{X}]{dt}, {K}[{E},{M}{X}]{dt}, {V}[{F},{M}{X}]{dt}
output {AV}
RM[{m}1=0,{p}{x}] = {lowest}
RD[{m}1=0,{p}{x}] = 0
RNV[{m}1=0,{f},{p}{x}] = 0
B{K}[{e},{m}1,{m}0{x}] = {K}[{e}, {m}1*{M}0+{m}0{x}]
B{V}[{f},{m}1,{m}0{x}] = {V}[{f}, {m}1*{M}0+{m}0{x}]
{contraction}
LM[{m}1,{p}{x}] = {QK}[{m}1,{m}0,{p}{x}] :: max({m}0)
RM[{m}1+1,{p}{x}] = max(RM[{m}1,{p}{x}], LM[{m}1,{p}{x}])
SLN[{m}1,{m}0,{p}{x}] = exp({QK}[{m}1,{m}0,{p}{x}] - RM[{m}1+1,{p}{x}])
PRM[{m}1,{p}{x}] = exp(RM[{m}1,{p}{x}] - RM[{m}1+1,{p}{x}])
SPD[{m}1,{p}{x}] = PRM[{m}1,{p}{x}] * RD[{m}1,{p}{x}]
SLD[{m}1,{p}{x}] = SLN[{m}1,{m}0,{p}{x}]
RD[{m}1+1,{p}{x}] = SPD[{m}1,{p}{x}] + SLD[{m}1,{p}{x}]
SPNV[{m}1,{f},{p}{x}] = PRM[{m}1,{p}{x}] * RNV[{m}1,{f},{p}{x}]
SLNV[{m}1,{f},{p}{x}] = SLN[{m}1,{m}0,{p}{x}] * B{V}[{f},{m}1,{m}0{x}]
RNV[{m}1+1,{f},{p}{x}] = SPNV[{m}1,{f},{p}{x}] + SLNV[{m}1,{f},{p}{x}]
{AV}[{f},{p}{x}] = RNV[{M}1,{f},{p}{x}] / RD[{M}1,{p}{x}]
"""

TENSORS = {n: n for n in ("Q", "K", "V", "QK", "GM", "SN", "SD", "A", "AV")}
RANKS = {"E": "E", "F": "F", "M": "M", "P": "P"}
RENAMED_TENSORS = {
    "Q": "Qry",
    "K": "Key",
    "V": "Val",
    "QK": "S",
    "GM": "MX",
    "SN": "EX",
    "SD": "DEN",
    "A": "PR",
    "AV": "OUT",
}
RENAMED_RANKS = {"E": "D", "F": "G", "M": "N", "P": "T"}
SMALL = {"E": 16, "F": 8, "M": 256, "P": 32}


def render(
    template: str,
    tensors: dict[str, str] = TENSORS,
    ranks: dict[str, str] = RANKS,
    sizes: dict[str, int] = SMALL,
    tile: int = 64,
    extra: dict[str, int] | None = None,
    dtype: str = "",
    scale: str = "",
) -> str:
    """The template with tensor and rank names, sizes, extra (batch) ranks, type and scale."""
    extra = extra or {}
    fields: dict[str, object] = dict(tensors)
    for rank, new in ranks.items():
        fields[rank], fields[rank.lower()] = new, new.lower()
        fields[f"s{rank}"] = sizes[rank]
    fields["XR"] = "".join(f", {r}={s}" for r, s in extra.items())
    fields["X"] = "".join(f",{r}" for r in extra)
    fields["x"] = "".join(f",{r.lower()}" for r in extra)
    fields.update(tile=tile, dt=f": {dtype}" if dtype else "", scale=scale)
    fields["lowest"] = LOWEST[dtype or "f32"]
    # The 1-pass form sums the products alone and scales once per score (cleanup hoists it).
    product = "{Q}[{e},{p}{x}] * B{K}[{e},{m}1,{m}0{x}]".format(**fields)
    tile_ix = "[{m}1,{m}0,{p}{x}]".format(**fields)
    qk = fields["QK"]
    fields["contraction"] = (
        f"{qk}S{tile_ix} = {product}\n{qk}{tile_ix} = {qk}S{tile_ix}{scale}"
        if scale
        else f"{qk}{tile_ix} = {product}"
    )
    return template.format(**fields)


LOWEST = {"f32": "-3.4028235e38", "f16": "-65504"}
"""The running max's initial value: the lowest finite value of the element type."""


def fuse(text: str, pipeline: str) -> tuple[ModuleOp, ModuleOp]:
    """(the parsed cascade, a copy of it after `pipeline`)."""
    before = api.parse(text, kind="einsum")
    return before, api.apply(before.clone(), pipeline)


def the_cascade(module: ModuleOp) -> CascadeOp:
    """The only cascade of a module."""
    (cascade,) = cascades_in(module)
    return cascade


def structure(module: ModuleOp) -> list[tuple[object, ...]]:
    """Per Einsum: output indices, reduce operators, iterative variable, initial value and the
    map's expression shape, with every tensor, rank and variable name replaced by the order in
    which it first appears (so renamed but otherwise equal cascades compare equal)."""
    cascade = the_cascade(module)
    einsums = cascade.einsums()
    tensor_ids: dict[SSAValue, int] = {}
    for value in [*cascade.body.block.args, *(op.result for op in einsums)]:
        tensor_ids[value] = len(tensor_ids)
    rank_ids: dict[str, str] = {}

    def rank_id(rank: str) -> str:
        return rank_ids.setdefault(rank, f"R{len(rank_ids)}")

    def name(n: str) -> str:
        return rank_id(n) if n[:1].isupper() else rank_id(rank_of(n)).lower()

    def index(ix: IndexExpr) -> str:
        return str(ix.renamed(name))

    def shape(tree: Tree) -> object:
        if isinstance(tree, Read):
            source = "self" if tree.value is None else tensor_ids[tree.value]
            return ("read", source, tuple(index(ix) for ix in tree.indices))
        if isinstance(tree, RCall):
            return (tree.fn, *(shape(a) for a in tree.args))
        if isinstance(tree, Size):
            return ("size", rank_id(tree.rank))
        return tree

    out: list[tuple[object, ...]] = []
    for op in einsums:
        tree = resolved(op)
        assert tree is not None, f"{op.tensor_name} has a map that is not an expression"
        iterative = op.iterative_rank()
        out.append(
            (
                tuple(index(ix) for ix in op.output_indices),
                tuple((name(v), o) for v, o in op.reduce.data),
                None if iterative is None else name(iterative),
                None if op.init is None else str(op.init),
                shape(tree),
                str(op.result_type.element_type),
            )
        )
    return out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Plain numpy softmax(QK^T)V over the leading ranks, batched over any trailing ones."""
    qk = np.einsum("ep...,em...->mp...", q, k) * scale
    a = np.exp(qk - qk.max(axis=0))
    a /= a.sum(axis=0)
    return np.einsum("mp...,fm...->fp...", a, v)


# -- the reference ---------------------------------------------------------------------------


def test_pass_fusion_on_3pass_prints_the_1pass_reference() -> None:
    """pass-fusion{rank=M tile=256} on 3pass.einsum prints exactly what 1pass.mlir prints."""
    module = api.load(ATTENTION / "3pass.einsum")
    api.apply(module, "pass-fusion{rank=M tile=256}")
    assert str(module) == str(api.load(ATTENTION / "1pass.mlir"))


def test_pass_fusion_on_smaller_sizes_matches_the_input_and_numpy() -> None:
    """With M=512, P=64 and tiles of 128 the fused cascade computes softmax(QK^T)V."""
    before = api.load(ATTENTION / "3pass.einsum")
    api.set_rank_sizes(before, {"M": 512, "P": 64, "E": 32, "F": 32})
    after = api.apply(before.clone(), "pass-fusion{rank=M tile=128}")
    assert api.passes(after)["M1"] == 1
    assert the_cascade(after).rank_sizes()["M1"] == 4
    api.check_equivalent(before, after, rtol=1e-5)
    inputs = api.random_inputs(the_cascade(before), seed=11)
    got = api.run(after, inputs)["AV"]
    want = attention(inputs["Q"], inputs["K"], inputs["V"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_check_equivalent_rejects_a_wrong_correction_factor() -> None:
    """The equivalence oracle the other tests rely on catches a subtly wrong fused cascade."""
    before = api.parse(render(THREE_PASS), kind="einsum")
    fused = api.apply(before.clone(), "pass-fusion{rank=M tile=64}")
    text = str(fused)
    wrong = text.replace("exp(%RM[m1, p] - %RM[m1+1, p])", "exp(%RM[m1+1, p] - %RM[m1, p])")
    assert wrong != text
    api.check_equivalent(before, api.parse(text), rtol=1e-5)
    with pytest.raises(UserError, match="outputs differ"):
        api.check_equivalent(before, api.parse(wrong), rtol=1e-4)


def test_structure_abstracts_names_but_not_shape() -> None:
    """`structure` equates a renamed cascade and tells 1-pass from 3-pass attention."""
    one = api.parse(render(ONE_PASS), kind="einsum")
    renamed = api.parse(render(ONE_PASS, RENAMED_TENSORS, RENAMED_RANKS), kind="einsum")
    three = api.parse(render(THREE_PASS), kind="einsum")
    assert structure(one) == structure(renamed)
    assert structure(one) != structure(three)
    changed = render(ONE_PASS).replace("RM[m1+1,p] = max(", "RM[m1+1,p] = min(")
    assert structure(api.parse(changed, kind="einsum")) != structure(one)


# -- generality --------------------------------------------------------------------------------


def test_renamed_tensors_and_ranks_fuse_like_the_reference() -> None:
    """Renaming every tensor and rank changes nothing: 1 pass over N1, equivalent, and the
    same Einsums (operators, iteration, expressions) as the renamed 1-pass reference."""
    text = render(THREE_PASS, RENAMED_TENSORS, RENAMED_RANKS)
    assert re.search(r"\bQK\b|\bM\b|\bAV\b", text) is None
    before, after = fuse(text, "pass-fusion{rank=N tile=64}")
    counts = api.passes(after)
    assert counts["N1"] == 1
    assert "N" not in counts
    api.check_equivalent(before, after, rtol=1e-5)
    reference = api.parse(render(ONE_PASS, RENAMED_TENSORS, RENAMED_RANKS), kind="einsum")
    assert structure(after) == structure(reference)
    assert the_cascade(after).output_names() == ["OUT"]
    assert [n for n, _ in the_cascade(after).inputs()] == ["Qry", "Key", "Val"]


def test_renamed_cascade_fuses_without_naming_the_rank() -> None:
    """Without options pass-fusion finds the renamed key rank itself (the busiest one)."""
    text = render(THREE_PASS, RENAMED_TENSORS, RENAMED_RANKS)
    before, after = fuse(text, "pass-fusion")
    assert api.passes(before)["N"] == 3
    assert api.passes(after)["N1"] == 1
    api.check_equivalent(before, after, rtol=1e-5)


BATCH = {"B": 2, "H": 3}
BATCH_SIZES = {"E": 8, "F": 4, "M": 128, "P": 16}


def test_batch_and_head_ranks_fuse_to_one_pass() -> None:
    """With batch and head ranks on every tensor: 1 pass over M1, equal to the input and numpy."""
    text = render(THREE_PASS, sizes=BATCH_SIZES, extra=BATCH)
    before, after = fuse(text, "pass-fusion{rank=M tile=32}")
    counts = api.passes(after)
    assert counts["M1"] == 1
    assert counts["B"] == counts["H"] == 1
    api.check_equivalent(before, after, rtol=1e-5)
    inputs = api.random_inputs(the_cascade(before), seed=2)
    got = api.run(after, inputs)["AV"]
    assert got.shape == (4, 16, 2, 3)
    want = attention(inputs["Q"], inputs["K"], inputs["V"])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_and_head_ranks_fuse_to_the_reference_structure() -> None:
    """With batch and head ranks the fused cascade has exactly the 1-pass reference's Einsums."""
    text = render(THREE_PASS, sizes=BATCH_SIZES, extra=BATCH)
    _, after = fuse(text, "pass-fusion{rank=M tile=32}")
    reference = api.parse(render(ONE_PASS, sizes=BATCH_SIZES, extra=BATCH, tile=32), "einsum")
    assert structure(after) == structure(reference)


def test_folded_scale_factor_fuses_to_one_pass() -> None:
    """A scale factor folded into QK is carried along: 1 pass, equivalent, scaled softmax."""
    text = render(THREE_PASS, scale=" * 0.125")
    before, after = fuse(text, "pass-fusion{rank=M tile=64}")
    assert api.passes(after)["M1"] == 1
    api.check_equivalent(before, after, rtol=1e-5)
    reference = api.parse(render(ONE_PASS, scale=" * 0.125"), kind="einsum")
    assert structure(after) == structure(reference)
    inputs = api.random_inputs(the_cascade(before), seed=4)
    got = api.run(after, inputs)["AV"]
    want = attention(inputs["Q"], inputs["K"], inputs["V"], scale=0.125)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_f16_fuses_to_one_pass_in_f16() -> None:
    """f16 inputs give an f16 cascade throughout; it fuses to 1 pass and agrees to f16 accuracy."""
    text = render(THREE_PASS, dtype="f16")
    before, after = fuse(text, "pass-fusion{rank=M tile=64}")
    assert api.passes(after)["M1"] == 1
    assert {s[-1] for s in structure(after)} == {"f16"}
    assert structure(after) == structure(api.parse(render(ONE_PASS, dtype="f16"), "einsum"))
    api.check_equivalent(before, after, rtol=2e-2)
    out = api.run(after, seed=1)["AV"]
    assert out.dtype == np.float16


def test_division_written_inside_the_reduction_fuses_to_one_pass() -> None:
    """AV[f,p] = SN[m,p] / SD[p] * V[f,m] (no separate A) still reaches 1 pass."""
    text = render(THREE_PASS).replace(
        "A[m,p] = SN[m,p] / SD[p]\nAV[f,p] = A[m,p] * V[f,m]", "AV[f,p] = SN[m,p] / SD[p] * V[f,m]"
    )
    assert "A[m,p]" not in text
    before, after = fuse(text, "pass-fusion{rank=M tile=64}")
    api.check_equivalent(before, after, rtol=1e-5)
    assert api.passes(after)["M1"] == 1
