"""Every example cascade fuses to its minimum pass count and computes what an independent numpy
float64 reference computes, on adversarial inputs (masks with whole masked tiles and rows, large
magnitudes, constant rows) and on realistic masks (causal, padded sequences): wherever the input
cascade is finite the fused one is, within a tolerance derived from how far the input cascade
itself is from the reference; it is finite exactly where the input cascade is; and no fused
cascade computes the same exponential twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.interpreters.adversarial import adversarial_inputs
from einsum_opt.transforms.cse import computation_key
from einsum_opt.transforms.fusion_remarks import minimum_passes
from einsum_opt.transforms.rewriting import RCall, Tree, resolved

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

Arrays = dict[str, np.ndarray]
Reference = Callable[[Arrays], Arrays]


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 in float64 (NaN on a row of -inf, as mathematics leaves it)."""
    with np.errstate(invalid="ignore"):
        shifted = np.exp(x - x.max(axis=0))
        return shifted / shifted.sum(axis=0)


def f64(arrays: Arrays) -> Arrays:
    """The inputs in float64."""
    return {k: np.asarray(a, dtype=np.float64) for k, a in arrays.items()}


def ref_causal(x: Arrays) -> Arrays:
    e = x["Q"].shape[0]
    s = np.einsum("ep,em->mp", x["Q"], x["K"]) / np.sqrt(e) + x["MASK"]
    return {"AV": np.einsum("mp,fm->fp", softmax(s), x["V"])}


def ref_key_padding(x: Arrays) -> Arrays:
    s = np.einsum("epb,emb->mpb", x["Q"], x["K"]) * 0.125 + x["PAD"][:, None, :]
    return {"AV": np.einsum("mpb,fmb->fpb", softmax(s), x["V"])}


def ref_bias(x: Arrays) -> Arrays:
    s = np.einsum("eph,emh->mph", x["Q"], x["K"]) * 0.125 + x["BIAS"]
    return {"AV": np.einsum("mph,fmh->fph", softmax(s), x["V"])}


def ref_gqa(x: Arrays) -> Arrays:
    e = x["Q"].shape[0]
    s = np.einsum("ephg,emg->mphg", x["Q"], x["K"]) / np.sqrt(e)
    return {"AV": np.einsum("mphg,fmg->fphg", softmax(s), x["V"])}


def ref_mqa(x: Arrays) -> Arrays:
    e = x["Q"].shape[0]
    s = np.einsum("eph,em->mph", x["Q"], x["K"]) / np.sqrt(e)
    return {"AV": np.einsum("mph,fm->fph", softmax(s), x["V"])}


def ref_cross(x: Arrays) -> Arrays:
    e = x["Q"].shape[0]
    s = np.einsum("ep,em->mp", x["Q"], x["K"]) / np.sqrt(e)
    return {"AV": np.einsum("mp,fm->fp", softmax(s) * x["DROP"] / 0.9, x["V"])}


def ref_attention(x: Arrays) -> Arrays:
    s = np.einsum("ep,em->mp", x["Q"], x["K"])
    return {"AV": np.einsum("mp,fm->fp", softmax(s), x["V"])}


def ref_softmax(x: Arrays) -> Arrays:
    return {"A": softmax(x["X"])}


def ref_logsoftmax(x: Arrays) -> Arrays:
    with np.errstate(invalid="ignore", divide="ignore"):
        m = x["X"].max(axis=0)
        return {"Y": x["X"] - m - np.log(np.exp(x["X"] - m).sum(axis=0))}


def ref_logsumexp(x: Arrays) -> Arrays:
    with np.errstate(invalid="ignore", divide="ignore"):
        m = x["X"].max(axis=0)
        return {"LSE": np.log(np.exp(x["X"] - m).sum(axis=0)) + m}


def ref_layernorm(x: Arrays) -> Arrays:
    with np.errstate(invalid="ignore"):
        d = x["X"] - x["X"].mean(axis=0)
        y = d / np.sqrt((d * d).mean(axis=0) + 1e-5) * x["G"][:, None] + x["B"][:, None]
    return {"Y": y}


def ref_rmsnorm(x: Arrays) -> Arrays:
    with np.errstate(invalid="ignore"):
        ms = (x["X"] * x["X"]).mean(axis=0)
        return {"Y": x["X"] / np.sqrt(ms + 1e-5) * x["G"][:, None]}


def ref_variance(x: Arrays) -> Arrays:
    with np.errstate(invalid="ignore"):
        var = ((x["X"] - x["X"].mean(axis=0)) ** 2).mean(axis=0)
        return {"VAR": var, "STD": np.sqrt(var)}


def causal_mask(sizes: dict[str, int]) -> Arrays:
    """MASK[m, p]: a decoder's mask, key m visible to query p when m <= p (scaled)."""
    m, p = np.meshgrid(np.arange(sizes["M"]), np.arange(sizes["P"]), indexing="ij")
    return {"MASK": np.where(m * sizes["P"] <= p * sizes["M"], 0.0, -np.inf)}


def padding(sizes: dict[str, int]) -> Arrays:
    """PAD[m, b]: batch 0 unpadded, 1 padded after one tile, 2 after a few keys, 3 all padding."""
    pad = np.zeros((sizes["M"], sizes["B"]))
    pad[16:, 1] = -np.inf
    pad[3:, 2] = -np.inf
    pad[:, 3] = -np.inf
    return {"PAD": pad}


def dropout(sizes: dict[str, int]) -> Arrays:
    """DROP[m, p]: a 0/1 dropout mask."""
    rng = np.random.default_rng(5)
    return {"DROP": (rng.random((sizes["M"], sizes["P"])) < 0.9).astype(np.float64)}


@dataclass(frozen=True)
class Example:
    """An example, its small sizes and tile, its reference and its passes after fusion."""

    path: str
    sizes: dict[str, int]
    tile: int
    reference: Reference
    fused_passes: int
    masks: Callable[[dict[str, int]], Arrays] | None = None
    rank: str = "M"
    unchanged: bool = False


ATTENTION = {"E": 8, "F": 4, "M": 64, "P": 8}
EXAMPLES_UNDER_TEST = [
    Example("attention/3pass.einsum", ATTENTION, 16, ref_attention, 1),
    Example("attention/causal.einsum", {**ATTENTION, "P": 64}, 16, ref_causal, 1, causal_mask),
    Example("attention/key_padding.einsum", {**ATTENTION, "B": 4}, 16, ref_key_padding, 1, padding),
    Example("attention/bias.einsum", {**ATTENTION, "H": 2}, 16, ref_bias, 1),
    Example("attention/gqa.einsum", {**ATTENTION, "H": 2, "G": 2}, 16, ref_gqa, 1),
    Example("attention/mqa.einsum", {**ATTENTION, "H": 3}, 16, ref_mqa, 1),
    Example("attention/cross.einsum", {"E": 8, "F": 3, "M": 96, "P": 5}, 32, ref_cross, 1, dropout),
    Example("softmax.einsum", {"M": 64, "P": 6}, 16, ref_softmax, 2),
    Example("logsoftmax.einsum", {"M": 64, "P": 6}, 16, ref_logsoftmax, 2),
    Example("logsumexp.einsum", {"M": 64, "P": 6}, 16, ref_logsumexp, 1),
    Example("layernorm.einsum", {"N": 64, "T": 6}, 16, ref_layernorm, 2, rank="N"),
    Example("norm/variance.einsum", {"N": 64, "T": 6}, 16, ref_variance, 1, rank="N"),
    Example("norm/rmsnorm.einsum", {"N": 64, "T": 6}, 16, ref_rmsnorm, 2, rank="N", unchanged=True),
]


def load(example: Example) -> ModuleOp:
    """The example at its small sizes."""
    module = api.load(EXAMPLES / example.path)
    api.set_rank_sizes(module, example.sizes)
    return module


def the_cascade(module: ModuleOp) -> CascadeOp:
    """The only cascade of a module."""
    (cascade,) = cascades_in(module)
    return cascade


def input_sets(example: Example, before: ModuleOp, after: ModuleOp) -> Iterator[tuple[str, Arrays]]:
    """The adversarial sets, and the example's own masks on normal values."""
    cascade = the_cascade(before)
    sets = adversarial_inputs(cascade, seed=3, rewritten=the_cascade(after))
    for s in sets:
        yield s.label, s.values
    if example.masks is not None:
        values = dict(sets[0].values)
        for name, mask in example.masks(cascade.rank_sizes()).items():
            values[name] = mask.astype(values[name].dtype)
        yield "the example's own mask", values


def has_exp(tree: Tree | None) -> bool:
    """Whether an expression computes an exponential."""
    return isinstance(tree, RCall) and (tree.fn == "exp" or any(has_exp(a) for a in tree.args))


@pytest.mark.parametrize("example", EXAMPLES_UNDER_TEST, ids=lambda e: e.path)
def test_example_fuses_to_its_minimum(example: Example) -> None:
    """pass-fusion reaches the minimum pass count over the tiles (or leaves a cascade already at
    its minimum unchanged), and that minimum is the one the example states."""
    before = load(example)
    after = api.apply(before.clone(), f"pass-fusion{{rank={example.rank} tile={example.tile}}}")
    cascade = the_cascade(after)
    counts = api.passes(after)
    if example.unchanged:
        assert str(after) == str(before)
        assert counts[example.rank] == example.fused_passes
    else:
        assert counts[f"{example.rank}1"] == example.fused_passes
        assert cascade.rank_sizes()[f"{example.rank}0"] == example.tile
    assert minimum_passes(cascade, example.rank) == example.fused_passes
    assert api.passes(before)[example.rank] >= example.fused_passes


@pytest.mark.parametrize("example", EXAMPLES_UNDER_TEST, ids=lambda e: e.path)
def test_example_matches_a_float64_reference_on_adversarial_inputs(example: Example) -> None:
    """On every input set: finite exactly where the input cascade is, and as close to the numpy
    float64 reference as the input cascade is (plus float32 rounding)."""
    before = load(example)
    after = api.apply(before.clone(), f"pass-fusion{{rank={example.rank} tile={example.tile}}}")
    for label, values in input_sets(example, before, after):
        want = example.reference(f64(values))
        original = api.run(before, values)
        fused = api.run(after, values)
        for name, expected in want.items():
            got = fused[name].astype(np.float64)
            base = original[name].astype(np.float64)
            assert np.array_equal(np.isfinite(got), np.isfinite(base)), (label, name)
            finite = np.isfinite(got) & np.isfinite(expected)
            assert np.array_equal(finite, np.isfinite(base) & np.isfinite(expected)), label
            if not finite.any():
                continue
            scale = np.abs(expected[finite]).max()
            base_error = np.abs(base[finite] - expected[finite]).max()
            error = np.abs(got[finite] - expected[finite]).max()
            assert error <= 2 * base_error + 1e-5 * scale, (label, name, error, base_error)


@pytest.mark.parametrize("example", EXAMPLES_UNDER_TEST, ids=lambda e: e.path)
def test_no_fused_cascade_computes_an_exponential_twice(example: Example) -> None:
    """Every Einsum computing an exponential computes a different value (written out through
    the elementwise Einsums it reads)."""
    after = api.apply(load(example), f"pass-fusion{{rank={example.rank} tile={example.tile}}}")
    keys = [computation_key(op) for op in the_cascade(after).einsums() if has_exp(resolved(op))]
    assert None not in keys
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    "example", [e for e in EXAMPLES_UNDER_TEST if not e.unchanged], ids=lambda e: e.path
)
def test_fused_example_maps_and_lowers(example: Example) -> None:
    """Nothing pass-fusion produces is unmappable: the fused cascade (assembled outputs, hoisted
    scales, Chan's statistics included) takes FuseMax's mapping, lowers to loop nests that
    compute the same values on adversarial inputs, and lowers to a dataflow program."""
    before = load(example)
    fused = api.apply(before.clone(), f"pass-fusion{{rank={example.rank} tile={example.tile}}}")
    lowered = api.apply(fused, "map-fusemax{tile=1},lower-to-loopnest")
    api.check_equivalent(before, lowered)
    api.apply(lowered, "lower-to-dataflow")
