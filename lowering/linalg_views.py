"""Tensor accesses as `linalg.generic` operands: the slices and reshapes that make every index
a plain loop dimension where it can be one.

A `linalg.generic` indexes its operands by affine maps of its loop dimensions, without
symbols, and MLIR requires an index that is a bare dimension to span the whole tensor
dimension. An Einsum access is an affine form of rank (or loop) variables; some of them are
the generic's dimensions, others are the induction variables of enclosing `scf.for` loops
(the iterative rank, the outer loops of a loop nest). Each index of an access becomes:

- `d` when it is one dimension over the whole tensor dimension;
- `d` on a slice (`tensor.extract_slice`) when it is a dimension shifted (`m1+1`), shorter
  than the tensor dimension (`RM[m1, p]` reads M1 of the M1+1 entries) or offset by loop
  induction variables (`1024*p2+256*p1+p0`: offset `1024*p2+256*p1`, dimension `p0`);
- several dimensions on a reshape (`tensor.expand_shape`) when it walks its range in mixed
  radix (`m1*M0+m0`: the tensor dimension M becomes M1 x M0);
- a constant (`RNV[M1, f, p]`), or nothing on a rank-reducing slice when the index is
  fixed by induction variables alone;
- the affine expression itself otherwise (`X[2*m]`), on a slice when induction variables
  take part.

The output of a generic is viewed the same way, and written back by the inverse view
(`tensor.collapse_shape`, `tensor.insert_slice`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.ir import SSAValue
from xdsl.ir.affine import AffineExpr

from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.lowering.linalg_ir import IRBuilder, Offset, shape_of


class ViewError(Exception):
    """An index that the export cannot express (the message names it)."""


@dataclass(frozen=True)
class Resolved:
    """An index with rank sizes multiplied out: `const + sum(factor * variable)`."""

    const: int
    factors: tuple[tuple[str, int], ...]

    @staticmethod
    def of(index: IndexExpr, sizes: Mapping[str, int]) -> Resolved:
        """Resolve `index` with the given rank sizes."""
        const = index.const
        factors: dict[str, int] = {}
        for term in index.terms:
            factor = term.coef * math.prod(sizes[s] for s in term.sizes)
            if term.var is None:
                const += factor
            else:
                factors[term.var] = factors.get(term.var, 0) + factor
        return Resolved(const, tuple((v, f) for v, f in factors.items() if f))


@dataclass(frozen=True)
class Dims:
    """The loop dimensions of one generic and the induction variables around it."""

    positions: Mapping[str, int]
    """Variable -> its dimension in the generic."""
    extents: Mapping[str, int]
    """Variable -> trip count (dimensions and induction variables alike)."""
    induction: Mapping[str, SSAValue]
    """Variable -> the `index` value of an enclosing loop."""

    def dim(self, var: str) -> AffineExpr:
        """The affine dimension of a variable."""
        return AffineExpr.dimension(self.positions[var])


@dataclass
class View:
    """How a generic sees one tensor: a slice, then a reshape, then indexing map results."""

    offsets: list[Offset]
    sizes: list[int]
    keep: list[bool]
    """Per tensor dimension: kept by the slice (False: a fixed index, dropped)."""
    groups: list[list[int]]
    """Per kept dimension: the sizes it is reshaped into (one size: not reshaped)."""
    results: list[AffineExpr]
    """The indexing map results, one per dimension after the reshape."""
    pure: set[str]
    """Variables that are a whole dimension of the viewed tensor (they fix the loop range)."""
    shape: tuple[int, ...]

    @property
    def sliced(self) -> bool:
        """Whether the view takes a slice of the tensor (or drops a dimension)."""
        moved = any(not isinstance(o, int) or o for o in self.offsets)
        return moved or not all(self.keep) or list(self.sizes) != list(self.shape)

    @property
    def reshaped(self) -> bool:
        """Whether the view reshapes the slice."""
        return any(len(g) != 1 for g in self.groups)

    def apply(self, b: IRBuilder, value: SSAValue) -> SSAValue:
        """The viewed tensor."""
        if self.sliced:
            value = b.extract_slice(value, self.offsets, self.sizes, self.keep)
        if self.reshaped:
            value = b.expand(value, self.groups)
        return value

    def restore(self, b: IRBuilder, whole: SSAValue, part: SSAValue) -> SSAValue:
        """`whole` with the viewed part replaced by `part` (the inverse view)."""
        if self.reshaped:
            part = b.collapse(part, self.groups)
        if self.sliced:
            return b.insert_slice(part, whole, self.offsets, self.sizes)
        return part


def view_of(
    b: IRBuilder,
    value: SSAValue,
    indices: Sequence[IndexExpr],
    sizes: Mapping[str, int],
    dims: Dims,
    output: bool = False,
) -> View:
    """The view of `value[indices]` over `dims`; for an output every index must end up as
    plain dimensions (ViewError otherwise)."""
    shape = shape_of(value)
    view = View([], [], [], [], [], set(), shape)
    for k, index in enumerate(indices):
        _view_index(b, view, Resolved.of(index, sizes), shape[k], dims, output, index)
    return view


def _view_index(
    b: IRBuilder,
    view: View,
    index: Resolved,
    length: int,
    dims: Dims,
    output: bool,
    source: IndexExpr,
) -> None:
    """Add one tensor dimension, indexed by `index`, to `view`."""
    fixed = [(dims.induction[v], f) for v, f in index.factors if v in dims.induction]
    local = [(v, f) for v, f in index.factors if v in dims.positions]
    varying = [(v, f) for v, f in local if dims.extents[v] > 1]
    if not varying:  # a position fixed by constants and induction variables
        if not fixed and not output:
            view.offsets.append(0)
            view.sizes.append(length)
            view.keep.append(True)
            view.groups.append([length])
            view.results.append(AffineExpr.constant(index.const))
            return
        view.offsets.append(b.offset(index.const, fixed))
        view.sizes.append(1)
        view.keep.append(False)
        return
    radix = mixed_radix(varying, dims.extents)
    if radix is not None:
        size = math.prod(dims.extents[v] for v in radix)
        offset = b.offset(index.const, fixed)
        view.offsets.append(offset)
        view.sizes.append(size)
        view.keep.append(True)
        view.groups.append([dims.extents[v] for v in radix])
        view.results.extend(dims.dim(v) for v in radix)
        view.pure.update(radix)
        return
    if output:
        raise ViewError(
            f"output index {source} does not walk its rank once in mixed radix; the export "
            "writes outputs only through slices and reshapes"
        )
    low = sum(min(0, f * (dims.extents[v] - 1)) for v, f in varying)
    high = sum(max(0, f * (dims.extents[v] - 1)) for v, f in varying)
    expr = dims.dim(varying[0][0]) * varying[0][1]
    for v, f in varying[1:]:
        expr = expr + dims.dim(v) * f
    if fixed:
        view.offsets.append(b.offset(index.const + low, fixed))
        view.sizes.append(high - low + 1)
        view.results.append(expr - low if low else expr)
    else:
        view.offsets.append(0)
        view.sizes.append(length)
        view.results.append(expr + index.const if index.const else expr)
    view.keep.append(True)
    view.groups.append([view.sizes[-1]])


def mixed_radix(varying: Sequence[tuple[str, int]], extents: Mapping[str, int]) -> list[str] | None:
    """The variables outer to inner when `sum(factor * var)` walks 0, 1, 2, ... once each (the
    smallest factor is 1 and each factor is the product of the extents of the smaller ones)."""
    ordered = sorted(varying, key=lambda vf: vf[1])
    stride = 1
    for v, f in ordered:
        if f != stride:
            return None
        stride *= extents[v]
    return [v for v, _ in reversed(ordered)]
