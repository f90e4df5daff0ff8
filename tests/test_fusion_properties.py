"""Property tests of pass-fusion on generated cascades: attention written in the many ways the
README allows (renamed tensors and ranks, batch and head ranks, an additive mask, f16, the scale
in the product, divided by sqrt(E), on its own line or inside the exponential, the normaliser
as a division, a reciprocal or deferred after the sum, intermediates listing their ranks in any
order), softmax, log-sum-exp, variance and layer norm. Each fused cascade is executed on the
adversarial inputs of `check_equivalent` (masks with whole -inf tiles and rows, large
magnitudes, constant rows) against the input cascade, reaches its minimum pass count over the
tiles, and computes no exponential twice."""

from __future__ import annotations

import string
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in
from einsum_opt.transforms.cse import computation_key
from einsum_opt.transforms.rewriting import RCall, Tree, resolved

# Tensor names: 1-3 upper-case letters, including the names the rewrites generate (RM, RD,
# LM, SLN, BX, ...) so that clashes with fresh names are exercised too.
TENSOR_NAME = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=3)
# Rank names: an upper-case letter, optionally followed by a letter or digit (M1 and M0 among
# them, which the split must then avoid).
RANK_NAME = st.builds(
    lambda a, b: a + b,
    st.sampled_from(string.ascii_uppercase),
    st.sampled_from(["", "", "0", "1", *string.ascii_uppercase]),
)


@dataclass(frozen=True)
class Generated:
    """A generated cascade, the rank to fuse, its tile and its passes after fusion."""

    text: str
    rank: str
    tile: int
    fused_passes: int


class Writer:
    """Writes the statements of a cascade over named roles, each tensor with its own rank order."""

    def __init__(self, ranks: dict[str, str], names: dict[str, str]):
        self.ranks = ranks
        self.names = names
        self.orders: dict[str, list[str]] = {}

    def declare(self, tensor: str, roles: list[str]) -> str:
        """`T[i, j]` for a tensor over `roles` in that order (its definition or an input)."""
        self.orders[tensor] = roles
        return self.read(tensor)

    def read(self, tensor: str) -> str:
        """`T[i, j]` in the tensor's own rank order."""
        variables = ",".join(self.ranks[r].lower() for r in self.orders[tensor])
        return f"{self.names[tensor]}[{variables}]"

    def input_decl(self, tensor: str, dtype: str) -> str:
        """`T[R, S]` (an input declaration)."""
        return (
            f"{self.names[tensor]}[{','.join(self.ranks[r] for r in self.orders[tensor])}]{dtype}"
        )


def names_for(draw: st.DrawFn, roles: list[str], rank_names: list[str]) -> dict[str, str]:
    """Distinct tensor names for `roles`, none a rank name."""
    names = draw(
        st.lists(
            TENSOR_NAME.filter(lambda n: n not in rank_names and n.lower() not in rank_names),
            min_size=len(roles),
            max_size=len(roles),
            unique=True,
        )
    )
    return dict(zip(roles, names, strict=True))


def rank_names_for(draw: st.DrawFn, roles: list[str]) -> dict[str, str]:
    """Distinct rank names (also distinct as index variables) for `roles`."""
    names = draw(st.lists(RANK_NAME, min_size=len(roles), max_size=len(roles), unique_by=str.lower))
    return dict(zip(roles, names, strict=True))


def ordered(draw: st.DrawFn, roles: list[str]) -> list[str]:
    """`roles` in a drawn order."""
    return draw(st.permutations(roles))


TENSORS = ["Q", "K", "V", "MASK", "QK", "S", "GM", "SN", "SD", "A", "R", "SNV", "AV"]
SCALES = ["none", "product", "sqrt", "own line", "exponent"]
NORMALISERS = ["divide", "inline", "reciprocal", "deferred"]


@st.composite
def attentions(draw: st.DrawFn) -> Generated:
    """Attention written in one of the many equivalent ways."""
    batch = [f"B{k}" for k in range(draw(st.integers(0, 2)))]
    ranks = rank_names_for(draw, ["E", "F", "M", "P", *batch])
    names = names_for(draw, TENSORS, list(ranks.values()))
    tile = draw(st.sampled_from([2, 4, 8]))
    sizes = {"E": draw(st.integers(1, 4)), "F": draw(st.integers(1, 3))}
    sizes |= {"M": tile * draw(st.integers(1, 4)), "P": draw(st.integers(1, 4))}
    sizes |= {b: draw(st.integers(1, 2)) for b in batch}
    dtype = draw(st.sampled_from(["", "", "", ": f16"]))
    mask, scale = draw(st.booleans()), draw(st.sampled_from(SCALES))
    normaliser = draw(st.sampled_from(NORMALISERS))
    w = Writer(ranks, names)
    row = ["P", *batch]
    for t, roles in [("Q", ["E", *row]), ("K", ["E", "M", *batch]), ("V", ["F", "M", *batch])]:
        w.declare(t, ordered(draw, roles))
    inputs = ["Q", "K", "V"]
    if mask:
        w.declare("MASK", ordered(draw, draw(st.sampled_from([["M", "P"], ["M", *batch]]))))
        inputs.append("MASK")
    lines = []
    product = f"{w.read('Q')} * {w.read('K')}"
    product += {"product": " * 0.5", "sqrt": f" / sqrt({ranks['E']})"}.get(scale, "")
    lines.append(f"{w.declare('QK', ordered(draw, ['M', *row]))} = {product}")
    logits = "QK"
    if mask or scale == "own line":
        value = w.read("QK") + (" * 0.5" if scale == "own line" else "")
        value += f" + {w.read('MASK')}" if mask else ""
        lines.append(f"{w.declare('S', ordered(draw, ['M', *row]))} = {value}")
        logits = "S"
    m = ranks["M"].lower()
    lines.append(f"{w.declare('GM', ordered(draw, row))} = {w.read(logits)} :: max({m})")
    diff = f"{w.read(logits)} - {w.read('GM')}"
    shift = f"exp(({diff}) * 0.5)" if scale == "exponent" else f"exp({diff})"
    lines.append(f"{w.declare('SN', ordered(draw, ['M', *row]))} = {shift}")
    lines.append(f"{w.declare('SD', ordered(draw, row))} = {w.read('SN')}")
    out = w.declare("AV", ordered(draw, ["F", *row]))
    if normaliser == "divide":
        lines.append(
            f"{w.declare('A', ordered(draw, ['M', *row]))} = {w.read('SN')} / {w.read('SD')}"
        )
        lines.append(f"{out} = {w.read('A')} * {w.read('V')}")
    elif normaliser == "inline":
        lines.append(f"{out} = {w.read('SN')} / {w.read('SD')} * {w.read('V')}")
    elif normaliser == "reciprocal":
        lines.append(f"{w.declare('R', ordered(draw, row))} = 1 / {w.read('SD')}")
        lines.append(f"{out} = {w.read('SN')} * {w.read('R')} * {w.read('V')}")
    else:
        lines.append(
            f"{w.declare('SNV', ordered(draw, ['F', *row]))} = {w.read('SN')} * {w.read('V')}"
        )
        lines.append(f"{out} = {w.read('SNV')} / {w.read('SD')}")
    text = "\n".join(
        [
            "cascade attention",
            "ranks " + ", ".join(f"{ranks[r]}={sizes[r]}" for r in ["E", "F", "M", "P", *batch]),
            "input " + ", ".join(w.input_decl(t, dtype) for t in inputs),
            f"output {names['AV']}",
            *lines,
        ]
    )
    return Generated(text + "\n", ranks["M"], tile, 1)


@st.composite
def normalisations(draw: st.DrawFn) -> Generated:
    """Softmax, log-softmax or log-sum-exp over M, with batch ranks and renamed tensors."""
    kind = draw(st.sampled_from(["softmax", "logsoftmax", "logsumexp"]))
    batch = [f"B{k}" for k in range(draw(st.integers(0, 2)))]
    ranks = rank_names_for(draw, ["M", *batch])
    names = names_for(draw, ["X", "GM", "SN", "SD", "Y"], list(ranks.values()))
    tile = draw(st.sampled_from([2, 4, 8]))
    sizes = {"M": tile * draw(st.integers(1, 4))} | {b: draw(st.integers(1, 3)) for b in batch}
    w = Writer(ranks, names)
    w.declare("X", ordered(draw, ["M", *batch]))
    m = ranks["M"].lower()
    lines = [
        f"{w.declare('GM', ordered(draw, batch))} = {w.read('X')} :: max({m})",
        f"{w.declare('SN', ordered(draw, ['M', *batch]))} = exp({w.read('X')} - {w.read('GM')})",
        f"{w.declare('SD', ordered(draw, batch))} = {w.read('SN')}",
    ]
    if kind == "softmax":
        value, roles = f"{w.read('SN')} / {w.read('SD')}", ["M", *batch]
    elif kind == "logsoftmax":
        value, roles = f"{w.read('X')} - {w.read('GM')} - log({w.read('SD')})", ["M", *batch]
    else:
        value, roles = f"log({w.read('SD')}) + {w.read('GM')}", batch
    lines.append(f"{w.declare('Y', ordered(draw, roles))} = {value}")
    text = "\n".join(
        [
            f"cascade {kind}",
            "ranks " + ", ".join(f"{ranks[r]}={sizes[r]}" for r in ["M", *batch]),
            f"input {w.input_decl('X', '')}",
            f"output {names['Y']}",
            *lines,
        ]
    )
    return Generated(text + "\n", ranks["M"], tile, 1 if kind == "logsumexp" else 2)


MEANS = ["S / {N}", "S * (1 / {N})"]


@st.composite
def statistics(draw: st.DrawFn) -> Generated:
    """Variance, standard deviation or layer norm over N, the mean written in several ways."""
    kind = draw(st.sampled_from(["variance", "std", "layernorm"]))
    batch = [f"B{k}" for k in range(draw(st.integers(0, 1)))]
    ranks = rank_names_for(draw, ["N", "T", *batch])
    names = names_for(draw, ["X", "S", "MU", "D", "SQ", "VAR", "Y"], list(ranks.values()))
    tile = draw(st.sampled_from([2, 4, 8]))
    sizes = {"N": tile * draw(st.integers(1, 4)), "T": draw(st.integers(1, 3))}
    sizes |= {b: draw(st.integers(1, 2)) for b in batch}
    row = ["T", *batch]
    w = Writer(ranks, names)
    w.declare("X", ordered(draw, ["N", *row]))
    mean = (
        draw(st.sampled_from(MEANS))
        .format(N=ranks["N"])
        .replace("S", w.declare("S", ordered(draw, row)), 1)
    )
    lines = [
        f"{w.read('S')} = {w.read('X')}",
        f"{w.declare('MU', ordered(draw, row))} = {mean}",
        f"{w.declare('D', ordered(draw, ['N', *row]))} = {w.read('X')} - {w.read('MU')}",
        f"{w.declare('SQ', ordered(draw, row))} = {w.read('D')} * {w.read('D')}",
        f"{w.declare('VAR', ordered(draw, row))} = {w.read('SQ')} / {ranks['N']}",
    ]
    output, passes = "VAR", 1
    if kind == "std":
        lines.append(f"{w.declare('Y', ordered(draw, row))} = sqrt({w.read('VAR')})")
        output = "Y"
    elif kind == "layernorm":
        value = f"{w.read('D')} / sqrt({w.read('VAR')} + 0.00001)"
        lines.append(f"{w.declare('Y', ordered(draw, ['N', *row]))} = {value}")
        output, passes = "Y", 2
    text = "\n".join(
        [
            f"cascade {kind}",
            "ranks " + ", ".join(f"{ranks[r]}={sizes[r]}" for r in ["N", "T", *batch]),
            f"input {w.input_decl('X', '')}",
            f"output {names[output]}",
            *lines,
        ]
    )
    return Generated(text + "\n", ranks["N"], tile, passes)


def has_exp(tree: Tree | None) -> bool:
    """Whether an expression computes an exponential."""
    return isinstance(tree, RCall) and (tree.fn == "exp" or any(has_exp(a) for a in tree.args))


def outer_level(module: ModuleOp, rank: str) -> str:
    """The outer level of `rank` when the cascade splits it (`R1 = R / R0`), else `rank`."""
    (cascade,) = cascades_in(module)
    split = [n for n, size in cascade.ranks.data if isinstance(size, tuple) and size[0] == rank]
    return split[0] if split else rank


def check_fusion(case: Generated, tile: int | None) -> None:
    """pass-fusion keeps the outputs on adversarial inputs, reaches the expected passes over
    the tiles of the rank and computes each exponential once."""
    before = api.parse(case.text, kind="einsum")
    options = f"rank={case.rank}" + (f" tile={tile}" if tile else "")
    after = api.apply(before.clone(), f"pass-fusion{{{options}}}")
    api.check_equivalent(before, after)
    counts = api.passes(after)
    outer = outer_level(after, case.rank)
    assert outer != case.rank, (case.text, str(after))
    assert counts[outer] == case.fused_passes, (case.text, str(after))
    assert api.passes(before)[case.rank] > counts[outer]
    (cascade,) = cascades_in(after)
    keys = [computation_key(op) for op in cascade.einsums() if has_exp(resolved(op))]
    assert len(keys) == len(set(keys)), str(after)


@settings(max_examples=40, deadline=None)
@given(attentions())
def test_attention_fuses_to_one_pass(case: Generated) -> None:
    """Attention in any of its written forms: equivalent after pass-fusion, 1 pass over the
    tiles, each exponential once."""
    check_fusion(case, case.tile)


@settings(max_examples=15, deadline=None)
@given(attentions())
def test_attention_with_the_default_tile_fuses_to_one_pass(case: Generated) -> None:
    """Without a tile, the tile is the largest divisor of the rank up to 256 (here the whole
    rank, one tile): equivalent and 1 pass over the tiles."""
    check_fusion(case, None)


@settings(max_examples=25, deadline=None)
@given(normalisations())
def test_softmax_family_fuses_to_its_minimum(case: Generated) -> None:
    """Softmax and log-softmax (per element: 2 passes) and log-sum-exp (1 pass)."""
    check_fusion(case, case.tile)


@settings(max_examples=25, deadline=None)
@given(statistics())
def test_statistics_fuse_to_their_minimum(case: Generated) -> None:
    """Variance and standard deviation (1 pass over the tiles, Chan's combination) and layer
    norm (2: its output is per element)."""
    check_fusion(case, case.tile)
