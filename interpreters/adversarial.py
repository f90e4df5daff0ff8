"""Inputs that break online softmax, running statistics and other rewrites that are right on
standard-normal numbers only: the input sets `--check-equivalence` runs a cascade on.

For a cascade (and, when known, its rewritten form, whose rank table tells the tiles):
- `normal`: the seeded standard-normal inputs of `random_inputs` (what `einsum-run` draws);
- `large`: the same times 100 (16 for f16): logits of magnitude 1e2 to 1e4 after a contraction;
- `constant along R`, for every rank R some Einsum reduces: every input that has R holds one
  exactly representable value (+-0.5, 1, 2) along it (ties in a max, zero variance);
- masks, on every *additive* input (one that is added, subtracted, or maximised: a mask, a
  bias, a logit; a -inf in a factor of a product is not a mask, it only makes NaN), for every
  reduced or tiled rank R of it: -inf at the first element along R; on the first tile (the
  rewritten cascade's tile of R, else half of R) and, on every other row, the last tile too;
  on whole rows (every other row entirely, the rest at random); and causal (-inf above the
  diagonal of R against the input's next rank, scaled to their sizes).
Every set is drawn from `np.random.default_rng(seed)` and is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.einsum_map import extract_expr
from einsum_opt.dialects.einsum_syntax import Access, Call, Expr, rank_of
from einsum_opt.interpreters.compute_ops import compute_ops
from einsum_opt.interpreters.einsum import random_inputs, rank_sizes
from einsum_opt.interpreters.einsum_values import Array, numeric_type

LARGE = {"f16": 16.0}
"""The factor of the `large` set per element type; 100 for the others."""

CONSTANTS = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
"""Values of the `constant along R` sets: exact in every float type, so are their sums."""

ADDITIVE = ("add", "sub", "max", "min")
"""Operators whose operands a -inf masks (rather than turning into NaN)."""


@dataclass(frozen=True)
class InputSet:
    """One set of inputs, and what makes it adversarial."""

    label: str
    values: dict[str, Array]


def adversarial_inputs(
    cascade: CascadeOp,
    seed: int = 0,
    ranks: Mapping[str, int] | None = None,
    rewritten: CascadeOp | None = None,
) -> list[InputSet]:
    """The input sets of `cascade` described in the module docstring (`rewritten`: the
    cascade after a pipeline, whose tiles the masks follow)."""
    sizes = rank_sizes(cascade, ranks)
    normal = random_inputs(cascade, seed, ranks)
    floats = {n for n, t in cascade.inputs() if numeric_type(t.element_type).is_float}
    types = dict(cascade.inputs())
    rng = np.random.default_rng([seed, 1])
    sets = [InputSet("normal", normal)]
    large = dict(normal)
    for name in floats:
        kind = numeric_type(types[name].element_type)
        large[name] = kind.coerce(normal[name].astype(np.float64) * LARGE.get(kind.name, 100.0))
    sets.append(InputSet("large", large))
    reduced = reduced_ranks(cascade)
    for rank in reduced:
        values = dict(normal)
        holders = [n for n in floats if rank in types[n].rank_names]
        for name in holders:
            t = types[name]
            axis = t.rank_names.index(rank)
            shape = list(normal[name].shape)
            shape[axis] = 1
            row = rng.choice(CONSTANTS, size=shape)
            values[name] = numeric_type(t.element_type).coerce(
                np.broadcast_to(row, normal[name].shape)
            )
        if holders:
            sets.append(InputSet(f"constant along {rank}", values))
    tiles = tile_sizes(rewritten) if rewritten is not None else {}
    for name in sorted(additive_inputs(cascade) & floats, key=list(types).index):
        t = types[name]
        for rank in t.rank_names:
            if rank not in reduced and rank not in tiles:
                continue
            for label, mask in _masks(t.rank_names, rank, sizes, tiles.get(rank), rng):
                values = dict(normal)
                kind = numeric_type(t.element_type)
                values[name] = kind.coerce(np.where(mask, -np.inf, normal[name]))
                sets.append(InputSet(f"{name}: -inf {label}", values))
    return sets


def reduced_ranks(cascade: CascadeOp) -> list[str]:
    """Ranks some Einsum reduces, in declaration order."""
    found = {rank_of(v) for op in compute_ops(cascade) for v, _ in op.reduce.data}
    declared = cascade.ranks.names
    return [r for r in declared if r in found]


def tile_sizes(cascade: CascadeOp) -> dict[str, int]:
    """Rank -> the size of its tiles, for every rank split as `R1 = R / R0`."""
    sizes = cascade.rank_sizes()
    return {size[0]: sizes[size[1]] for _, size in cascade.ranks.data if isinstance(size, tuple)}


def additive_inputs(cascade: CascadeOp) -> set[str]:
    """Inputs that are added, subtracted, maximised or minimised somewhere (directly or
    through copies): the ones a -inf masks."""
    args = cascade.body.block.args
    names = [n.data for n in cascade.input_names.data]
    source: dict[SSAValue, str] = {a: n for a, n in zip(args, names, strict=True)}
    found: set[str] = set()
    for op in compute_ops(cascade):
        expr = extract_expr(op.body)
        reads = [v for v, _ in op.accesses()]
        if expr is None:
            continue
        if isinstance(expr, Access) and not op.reduce.data:
            copied = reads[expr.index]
            if copied is not None and copied in source:
                source[op.result] = source[copied]
                continue
        positions = _additive_accesses(expr)
        if isinstance(expr, Access) and any(o in ("max", "min") for _, o in op.reduce.data):
            positions.add(expr.index)
        for i in positions:
            value = reads[i]
            if value is not None and value in source:
                found.add(source[value])
    return found


def _additive_accesses(expr: Expr) -> set[int]:
    out: set[int] = set()

    def go(e: Expr) -> None:
        if isinstance(e, Call):
            if e.fn in ADDITIVE:
                out.update(a.index for a in e.args if isinstance(a, Access))
            for a in e.args:
                go(a)

    go(expr)
    return out


def _masks(
    ranks: tuple[str, ...],
    rank: str,
    sizes: Mapping[str, int],
    tile: int | None,
    rng: np.random.Generator,
) -> list[tuple[str, Array]]:
    """(label, boolean mask) of every -inf pattern along `rank` of a tensor over `ranks`."""
    shape = tuple(sizes[r] for r in ranks)
    axis = ranks.index(rank)
    size = shape[axis]
    along = np.arange(size).reshape([size if k == axis else 1 for k in range(len(shape))])
    rows = np.indices([1 if k == axis else n for k, n in enumerate(shape)]).sum(axis=0)
    odd_rows = rows % 2 == 1
    width = tile if tile is not None and tile < size else max(1, size // 2)
    first_tile = along < width
    last_tile = along >= size - width
    out = [
        (f"at the first element along {rank}", np.broadcast_to(along == 0, shape)),
        (
            f"on the first tile of {width} along {rank} (and the last, every other row)",
            np.broadcast_to(first_tile | (last_tile & odd_rows), shape),
        ),
        (
            f"on whole rows along {rank} (every other row; the rest at random)",
            np.broadcast_to(~odd_rows, shape) | (rng.random(shape) < 0.5),
        ),
    ]
    others = [k for k in range(len(shape)) if k != axis]
    if others:
        k = others[0]
        other = np.arange(shape[k]).reshape([shape[k] if j == k else 1 for j in range(len(shape))])
        causal = along * shape[k] > other * size
        out.append((f"above the diagonal of {rank} and {ranks[k]}", np.broadcast_to(causal, shape)))
    return out
