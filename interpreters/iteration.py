"""Iteration grids and affine indices over them.

A kernel iterates a grid: one axis per iteration variable (the output's variables, then the
reduced ones), each as long as the variable's extent (a rank size in an Einsum, a loop trip
count in a nest). A kernel may hold one more variable fixed (the variable `r` of an iterative
rank, looped over in Python); the grid has no axis for it. Every index of an access or of the
output is an affine form `const + step*r + sum(factor * grid variable)`, where rank sizes
(`m1*M0+m0`, `RNV[M1, f, p]`) are folded into the constant and the factors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.interpreters.einsum_values import Array, ExecutionError


@dataclass(frozen=True)
class Grid:
    """The iteration grid of a kernel: its variables (axes) and their extents."""

    variables: tuple[str, ...]
    shape: tuple[int, ...]

    def axis(self, variable: str) -> int:
        """The axis of a grid variable."""
        return self.variables.index(variable)


@dataclass(frozen=True)
class AffineIndex:
    """One index split as `const + step*r + sum(factor * grid variable)`."""

    const: int
    step: int
    terms: tuple[tuple[int, int], ...]
    """(grid axis, factor) pairs, one per axis, by axis."""

    def bounds(self, grid: Grid, fixed_extent: int) -> tuple[int, int]:
        """The smallest and largest value over the grid and `r` in `0 .. fixed_extent-1`."""
        lo = hi = self.const
        spans = [(f, grid.shape[a]) for a, f in self.terms]
        if self.step:
            spans.append((self.step, fixed_extent))
        for factor, extent in spans:
            top = factor * (extent - 1)
            lo, hi = lo + min(0, top), hi + max(0, top)
        return lo, hi

    def radix(self, grid: Grid) -> tuple[int, tuple[int, ...]] | None:
        """(base, axes outer to inner) when the grid terms walk `base`-strided positions once
        each, in mixed radix: every factor is `base` times the product of the extents of the
        axes with smaller factors (`16*p2+4*p1+p0` with p1, p0 of extent 4; `m1*M0+m0`).
        None otherwise, or without grid terms."""
        if not self.terms:
            return None
        by_factor = sorted(self.terms, key=lambda term: term[1])
        base = stride = by_factor[0][1]
        if base <= 0:
            return None
        for axis, factor in by_factor:
            if factor != stride:
                return None
            stride *= grid.shape[axis]
        return base, tuple(axis for axis, _ in reversed(by_factor))

    def values(self, grid: Grid) -> Array | int:
        """The index at every grid point (with r = 0), broadcastable to the grid's shape."""
        index: Array | int = self.const
        for axis, factor in self.terms:
            shape = [1] * len(grid.shape)
            shape[axis] = grid.shape[axis]
            index = index + factor * np.arange(grid.shape[axis]).reshape(shape)
        return index


def split_index(
    index: IndexExpr, grid: Grid, fixed: str | None, sizes: Mapping[str, int]
) -> AffineIndex:
    """`index` as an affine form over `grid` and the fixed variable; rank sizes are `sizes`."""
    const, step = index.const, 0
    factors: dict[int, int] = {}
    for term in index.terms:
        factor = term.coef * math.prod(sizes[s] for s in term.sizes)
        if term.var is None:
            const += factor
        elif term.var == fixed:
            step += factor
        elif term.var in grid.variables:
            axis = grid.axis(term.var)
            factors[axis] = factors.get(axis, 0) + factor
        else:
            raise ExecutionError(f"index {index}: variable {term.var} is not iterated")
    return AffineIndex(const, step, tuple(sorted((a, f) for a, f in factors.items() if f)))


def c_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Element strides of a C-ordered array of `shape`."""
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return tuple(strides)
