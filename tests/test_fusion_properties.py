"""Property tests of pass-fusion: for random rank sizes, tiles and consistent renamings of the
attention, softmax and log-sum-exp cascades, the fused cascade computes the same outputs and
needs 1 pass over the fused rank (2 for softmax, whose output is per element)."""

from __future__ import annotations

import string
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp

from einsum_opt import api
from einsum_opt.dialects.einsum import cascades_in

ATTENTION = """\
cascade attention
ranks {E}={sE}, {F}={sF}, {M}={sM}, {P}={sP}
input {Q}[{E},{P}], {K}[{E},{M}], {V}[{F},{M}]
output {AV}
{QK}[{m},{p}] = {Q}[{e},{p}] * {K}[{e},{m}]
{GM}[{p}] = {QK}[{m},{p}] :: max({m})
{SN}[{m},{p}] = exp({QK}[{m},{p}] - {GM}[{p}])
{SD}[{p}] = {SN}[{m},{p}]
{A}[{m},{p}] = {SN}[{m},{p}] / {SD}[{p}]
{AV}[{f},{p}] = {A}[{m},{p}] * {V}[{f},{m}]
"""

SOFTMAX = """\
cascade softmax
ranks {M}={sM}, {P}={sP}
input {X}[{M},{P}]
output {A}
{GM}[{p}] = {X}[{m},{p}] :: max({m})
{SN}[{m},{p}] = exp({X}[{m},{p}] - {GM}[{p}])
{SD}[{p}] = {SN}[{m},{p}]
{A}[{m},{p}] = {SN}[{m},{p}] / {SD}[{p}]
"""

LOGSUMEXP = """\
cascade logsumexp
ranks {M}={sM}, {P}={sP}
input {X}[{M},{P}]
output {LSE}
{GM}[{p}] = {X}[{m},{p}] :: max({m})
{SN}[{m},{p}] = exp({X}[{m},{p}] - {GM}[{p}])
{SD}[{p}] = {SN}[{m},{p}]
{LSE}[{p}] = log({SD}[{p}]) + {GM}[{p}]
"""


@dataclass(frozen=True)
class Cascade:
    """A cascade template: its tensor and rank placeholders, and the passes left after fusion."""

    template: str
    tensors: tuple[str, ...]
    ranks: tuple[str, ...]
    fused_passes: int
    tiled: bool  # whether the fused rank is split with the drawn tile


CASCADES = {
    "attention": Cascade(
        ATTENTION, ("Q", "K", "V", "QK", "GM", "SN", "SD", "A", "AV"), ("E", "F", "M", "P"), 1, True
    ),
    "softmax": Cascade(SOFTMAX, ("X", "GM", "SN", "SD", "A"), ("M", "P"), 2, True),
    "logsumexp": Cascade(LOGSUMEXP, ("X", "GM", "SN", "SD", "LSE"), ("M", "P"), 1, True),
}

# Tensor names: 1-3 upper-case letters, including the names the rewrites generate (RM, RD,
# LM, SLN, BX, ...) so that clashes with fresh names are exercised too.
TENSOR_NAME = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=3)
# Rank names: 1-2 upper-case letters (their index variables are the lower-case names).
RANK_NAME = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=2)


@dataclass(frozen=True)
class Instance:
    """One renamed, resized cascade and how to fuse it."""

    kind: str
    text: str
    rank: str  # the new name of M, the rank pass-fusion works on
    tile: int | None


@st.composite
def instances(draw: st.DrawFn, kind: str) -> Instance:
    """A random renaming of the tensors and ranks of one cascade, with random sizes and tile."""
    cascade = CASCADES[kind]
    rank_names = draw(
        st.lists(RANK_NAME, min_size=len(cascade.ranks), max_size=len(cascade.ranks), unique=True)
    )
    ranks = dict(zip(cascade.ranks, rank_names, strict=True))
    names = draw(
        st.lists(
            TENSOR_NAME.filter(lambda n: n not in rank_names),
            min_size=len(cascade.tensors),
            max_size=len(cascade.tensors),
            unique=True,
        )
    )
    tile = draw(st.sampled_from([2, 4, 8, 16]))
    sizes = {
        "M": tile * draw(st.integers(1, 6)),
        "P": draw(st.integers(1, 6)),
        "E": draw(st.integers(1, 6)),
        "F": draw(st.integers(1, 6)),
    }
    fields: dict[str, object] = dict(zip(cascade.tensors, names, strict=True))
    for rank, new in ranks.items():
        fields[rank], fields[rank.lower()], fields[f"s{rank}"] = new, new.lower(), sizes[rank]
    text = cascade.template.format(**fields)
    return Instance(kind, text, ranks["M"], tile if cascade.tiled else None)


def check_fusion(instance: Instance) -> None:
    """pass-fusion keeps the outputs and reaches the expected passes over the fused rank."""
    before = api.parse(instance.text, kind="einsum")
    options = f"rank={instance.rank}" + (f" tile={instance.tile}" if instance.tile else "")
    after = api.apply(before.clone(), f"pass-fusion{{{options}}}")
    api.check_equivalent(before, after)
    counts = api.passes(after)
    outer = outer_level(after, instance.rank)
    assert counts[outer] == CASCADES[instance.kind].fused_passes, (instance.text, str(after))
    assert api.passes(before)[instance.rank] > counts[outer]


def outer_level(module: ModuleOp, rank: str) -> str:
    """The outer level of `rank` when the cascade splits it (`R1 = R / R0`), else `rank`."""
    (cascade,) = cascades_in(module)
    split = [n for n, size in cascade.ranks.data if isinstance(size, tuple) and size[0] == rank]
    return split[0] if split else rank


@settings(max_examples=25, deadline=None)
@given(instances("attention"))
def test_attention_fuses_to_one_pass(instance: Instance) -> None:
    """Renamed, resized, tiled attention: equivalent after pass-fusion, 1 pass over the tiles."""
    check_fusion(instance)


@settings(max_examples=25, deadline=None)
@given(instances("softmax"))
def test_softmax_fuses_to_two_passes(instance: Instance) -> None:
    """Renamed, resized softmax: equivalent after pass-fusion, and still 2 passes (the minimum)."""
    check_fusion(instance)


@settings(max_examples=25, deadline=None)
@given(instances("logsumexp"))
def test_logsumexp_fuses_to_one_pass(instance: Instance) -> None:
    """Renamed, resized, tiled log-sum-exp: equivalent after pass-fusion, 1 pass over the tiles."""
    check_fusion(instance)


@settings(max_examples=15, deadline=None)
@given(instances("attention"))
def test_attention_with_the_default_tile_fuses_to_one_pass(instance: Instance) -> None:
    """Without a tile, the tile is the largest divisor of the rank up to 256 (here the whole
    rank, one tile): equivalent and 1 pass over the tiles."""
    check_fusion(Instance(instance.kind, instance.text, instance.rank, None))
