"""count-passes on the examples, before and after pass-fusion: 3 -> 1 for attention and
log-sum-exp, 3 -> 2 (and no lower) for softmax and layer norm, nothing to do for matmul_chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleOp:
    """An example cascade by its path under `examples/`."""
    return api.load(EXAMPLES / name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("attention/3pass.einsum", {"E": 1, "F": 1, "M": 3, "P": 1}),
        ("attention/3pass.mlir", {"E": 1, "F": 1, "M": 3, "P": 1}),
        ("attention/2pass.einsum", {"E": 1, "F": 1, "M": 2, "P": 1}),
        ("attention/2pass.mlir", {"E": 1, "F": 1, "M": 2, "P": 1}),
        ("attention/1pass.einsum", {"E": 1, "F": 1, "P": 1, "M0": 2, "M1": 1}),
        ("attention/1pass.mlir", {"E": 1, "F": 1, "P": 1, "M0": 2, "M1": 1}),
        ("softmax.einsum", {"M": 3, "P": 1}),
        ("logsumexp.einsum", {"M": 2, "P": 1}),  # max, then sum: the header says 3
        ("layernorm.einsum", {"N": 3, "T": 1}),
        ("matmul_chain.einsum", {"M": 1, "K": 1, "N": 1, "L": 1}),
    ],
)
def test_example_pass_counts(name: str, expected: dict[str, int]) -> None:
    """The examples need the documented number of passes over each rank (in declaration order)."""
    counts = api.passes(load(name))
    assert counts == expected
    assert list(counts) == list(expected)


def test_count_passes_pass_annotates_what_api_passes_computes() -> None:
    """`count-passes` writes the same counts as an attribute that `api.passes` returns."""
    module = load("attention/3pass.einsum")
    api.apply(module, "count-passes")
    (cascade,) = cascades_in(module)
    attr = cascade.attributes["passes"]
    assert isinstance(attr, DictionaryAttr)
    written = {}
    for rank, value in attr.data.items():
        assert isinstance(value, IntegerAttr)
        written[rank] = value.value.data
    assert written == api.passes(module) == {"E": 1, "F": 1, "M": 3, "P": 1}


def test_count_passes_is_recomputed_after_a_rewrite() -> None:
    """A rewrite drops the stale `passes` attribute; `api.passes` reflects the new cascade."""
    module = load("attention/3pass.einsum")
    api.apply(module, "count-passes,fuse-max-sum")
    (cascade,) = cascades_in(module)
    assert "passes" not in cascade.attributes
    assert api.passes(module)["M"] == 2


def test_attention_pass_fusion_reaches_one_pass_over_the_outer_rank() -> None:
    """pass-fusion takes 3-pass attention to 1 pass over M1 (M0 keeps the local max's 2)."""
    module = load("attention/3pass.einsum")
    api.apply(module, "pass-fusion")
    assert api.passes(module) == {"E": 1, "F": 1, "P": 1, "M0": 2, "M1": 1}


def test_softmax_pass_fusion_stops_at_two_passes() -> None:
    """Softmax goes 3 -> 2 over the tiles of M, and running pass-fusion again neither lowers it
    nor changes the IR."""
    module = load("softmax.einsum")
    api.apply(module, "pass-fusion")
    assert api.passes(module) == {"P": 1, "M0": 3, "M1": 2}
    fused = str(module)
    api.apply(module, "pass-fusion,fuse-max-sum,fuse-numerator,cleanup")
    assert api.passes(module) == {"P": 1, "M0": 3, "M1": 2}
    assert str(module) == fused


def test_logsumexp_pass_fusion_reaches_one_pass() -> None:
    """Log-sum-exp goes from 2 passes over M to 1 pass over M1."""
    module = load("logsumexp.einsum")
    api.apply(module, "pass-fusion")
    counts = api.passes(module)
    assert counts["M1"] == 1
    assert "M" not in counts


def test_logsumexp_unsplit_pass_fusion_reaches_one_pass() -> None:
    """Log-sum-exp kept whole (M = 257 has no divisor between 2 and 256) needs 1 pass over M."""
    module = load("logsumexp.einsum")
    api.set_rank_sizes(module, {"M": 257})
    api.apply(module, "pass-fusion")
    assert api.passes(module) == {"M": 1, "P": 1}


def test_layernorm_pass_fusion_reaches_two_passes() -> None:
    """Layer norm goes from 3 passes over N to 2 over its tiles (the normalised output needs
    the statistics)."""
    module = load("layernorm.einsum")
    api.apply(module, "pass-fusion")
    assert api.passes(module) == {"T": 1, "N0": 3, "N1": 2}


def test_matmul_chain_is_left_byte_identical() -> None:
    """Every rank of matmul_chain needs 1 pass and pass-fusion prints the very same IR."""
    module = load("matmul_chain.einsum")
    printed = str(module)
    api.apply(module, "pass-fusion")
    assert str(module) == printed
    assert set(api.passes(module).values()) == {1}
