"""Equivalence checking on adversarial inputs: the input sets it draws (masks with whole -inf
tiles and rows, large magnitudes, constant rows), the rule for non-finite values, the tolerance
by element type stated in the message, and that it catches the NaN an unguarded online softmax
computes on a masked tile, which standard-normal inputs never show."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.interpreters.adversarial import additive_inputs, adversarial_inputs
from einsum_opt.interpreters.equivalence import check_equivalence, nonfinite_mismatch
from einsum_opt.support.errors import UserError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SMALL = {"E": 4, "F": 4, "M": 32, "P": 32}


def causal() -> tuple[ModuleOp, ModuleOp]:
    """Causal attention at small sizes and its fused form (tiles of 8)."""
    before = api.load(EXAMPLES / "attention" / "causal.einsum")
    api.set_rank_sizes(before, SMALL)
    return before, api.apply(before.clone(), "pass-fusion{rank=M tile=8}")


def test_masks_go_to_the_additive_inputs_only() -> None:
    """The mask is added to the logits; Q, K and V are factors of products."""
    before, _ = causal()
    (cascade,) = cascades_in(before)
    assert additive_inputs(cascade) == {"MASK"}


def test_the_sets_hold_masked_tiles_rows_and_first_elements() -> None:
    """Along M: -inf at m = 0 everywhere, on the whole first tile of 8 (the rewritten cascade's
    tile), on whole rows, and above the diagonal; plus large and constant inputs."""
    before, after = causal()
    sets = {
        s.label: s.values
        for s in adversarial_inputs(*cascades_in(before), 0, None, *cascades_in(after))
    }
    assert {"normal", "large", "constant along E", "constant along M"} <= set(sets)
    first = sets["MASK: -inf at the first element along M"]["MASK"]
    assert np.isneginf(first[0]).all() and np.isfinite(first[1:]).all()
    tile = sets["MASK: -inf on the first tile of 8 along M (and the last, every other row)"]["MASK"]
    assert np.isneginf(tile[:8]).all() and np.isfinite(tile[8:-8, 0]).all()
    rows = sets["MASK: -inf on whole rows along M (every other row; the rest at random)"]["MASK"]
    assert np.isneginf(rows[:, 0]).all() and not np.isneginf(rows[:, 1]).all()
    triangle = sets["MASK: -inf above the diagonal of M and P"]["MASK"]
    assert np.isneginf(triangle[1, 0]) and np.isfinite(np.diag(triangle)).all()
    assert np.abs(sets["large"]["Q"]).max() > 50 * np.abs(sets["normal"]["Q"]).max() / 2
    assert (sets["constant along M"]["K"] == sets["constant along M"]["K"][:, :1]).all()


def test_an_unguarded_running_max_is_caught_on_masked_tiles_only() -> None:
    """A running max started at -inf computes exp(-inf - (-inf)) = NaN after a masked tile: the
    normal inputs agree, the masked ones do not."""
    before, after = causal()
    text = str(after)
    assert "init(-3.4028235e+38)" in text
    unguarded = api.parse(text.replace("init(-3.4028235e+38)", "init(-inf)"))
    normal = api.random_inputs(*cascades_in(before), seed=0)
    np.testing.assert_allclose(
        api.run(unguarded, normal)["AV"], api.run(before, normal)["AV"], rtol=1e-5, atol=1e-6
    )
    api.check_equivalent(before, after)
    with pytest.raises(UserError, match="MASK: -inf .* not finite where the input cascade"):
        api.check_equivalent(before, unguarded)


@pytest.mark.parametrize(("dtype", "rtol"), [("f16", "0.01"), ("bf16", "0.05"), ("f32", "1e-05")])
def test_the_tolerance_follows_the_element_type_and_is_stated(dtype: str, rtol: str) -> None:
    """f16 and bf16 attention pass at their own tolerance, which the message states."""
    text = (EXAMPLES / "attention" / "3pass.einsum").read_text()
    text = text.replace("V[F,M]", f"V[F,M]: {dtype}").replace("K[E,M]", f"K[E,M]: {dtype}")
    text = text.replace("Q[E,P]", f"Q[E,P]: {dtype}")
    before = api.parse(text, kind="einsum")
    api.set_rank_sizes(before, SMALL)
    after = api.apply(before.clone(), "pass-fusion{rank=M tile=8}")
    lines: list[str] = []
    check_equivalence(before, after, 0, report=lines.append)
    assert len(lines) == 1
    assert f"({dtype}, default rtol {rtol}, default atol 0" in lines[0]
    assert lines[0].endswith(": ok")


def test_non_finite_values_must_match() -> None:
    """NaN in the input cascade admits any non-finite value; an infinity must be the same one;
    a finite value must stay finite."""
    before = np.array([np.nan, np.inf, -np.inf, 1.0, 2.0])
    assert nonfinite_mismatch(before, np.array([np.inf, np.inf, -np.inf, 1.0, 2.0])) == 0
    assert nonfinite_mismatch(before, np.array([np.nan, -np.inf, -np.inf, 1.0, 2.0])) == 1
    assert nonfinite_mismatch(before, np.array([np.nan, np.inf, -np.inf, np.nan, 2.0])) == 1
    assert nonfinite_mismatch(before, np.array([0.0, np.inf, -np.inf, 1.0, 2.0])) == 1
