"""One Einsum on numpy arrays: gather every access over the iteration grid, map, reduce.

The iteration grid of an Einsum has one axis per output variable (in output order) followed
by one per reduced variable (in reduction order), each ranging over its rank's size. A kernel
may hold one variable fixed (the loop variable `r` of an iterative rank): it then computes one
slice, for a given value of `r`, and its grid has no axis for `r`.

Accesses are gathered in *grid layout*: an array with one axis per grid axis, of the grid's
size along the axes of the variables the access uses and of size 1 elsewhere, so the accessed
values of all accesses broadcast together without materialising the whole grid. An access
whose indices are plain (strided) variables, constants or the fixed variable is a numpy view;
an affine one (`m1*M0+m0`, `X[m, m]`) uses advanced indexing with broadcast `arange` arrays.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import EinsumOp, tensor_name_of
from einsum_opt.dialects.einsum_attrs import TensorType, format_indices
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.interpreters.einsum_values import Array, ExecutionError, numeric_type
from einsum_opt.interpreters.map_region import CompiledMap

REDUCERS: dict[str, np.ufunc] = {
    "add": np.add,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
}
"""Reduce operator -> the ufunc whose `reduce` applies it along an axis."""


@dataclass(frozen=True)
class Layout:
    """Rank sizes and which tensors are iterative: together they give every array's shape.

    An iterative tensor (`RM[m1+1, p]`) holds size(R)+1 entries along its iterative rank R:
    index 0 is the initial value, index size(R) the final value.
    """

    sizes: Mapping[str, int]
    iterative: Mapping[str, str]
    """Tensor name -> the variable of its iterative rank (only iterative tensors)."""

    def extent(self, tensor: str, rank: str) -> int:
        """How many entries `tensor` holds along `rank`."""
        extra = 1 if self.iterative.get(tensor) == rank.lower() else 0
        return self.sizes[rank] + extra

    def shape(self, tensor: str, t: TensorType) -> tuple[int, ...]:
        """The array shape of `tensor`, of type `t`."""
        return tuple(self.extent(tensor, r) for r in t.rank_names)


@dataclass(frozen=True)
class Grid:
    """The iteration grid of a kernel: its variables (axes) and their sizes."""

    variables: tuple[str, ...]
    shape: tuple[int, ...]

    def axis(self, variable: str) -> int:
        """The axis of a grid variable."""
        return self.variables.index(variable)


@dataclass(frozen=True)
class _AffineIndex:
    """One rank's index split as `const + step*r + sum(factor * grid variable)`."""

    const: int
    step: int
    terms: tuple[tuple[int, int], ...]
    """(grid axis, factor) pairs, one per axis."""


def _split_index(
    index: IndexExpr, grid: Grid, fixed: str | None, sizes: Mapping[str, int]
) -> _AffineIndex:
    const, step = index.const, 0
    factors: dict[int, int] = {}
    for term in index.terms:
        factor = term.coef * math.prod(sizes[s] for s in term.sizes)
        if term.var is None:
            const += factor
        elif term.var == fixed:
            step += factor
        else:
            axis = grid.axis(term.var)
            factors[axis] = factors.get(axis, 0) + factor
    return _AffineIndex(const, step, tuple(sorted((a, f) for a, f in factors.items() if f)))


class AccessPlan:
    """How to gather one access over a kernel's grid."""

    def __init__(
        self,
        tensor: str,
        indices: Sequence[IndexExpr],
        grid: Grid,
        fixed: str | None,
        sizes: Mapping[str, int],
    ):
        """Plan the access `tensor[indices]` on `grid` (with `fixed` held at a given value)."""
        self.tensor = tensor
        self.grid = grid
        self._ranks = [_split_index(ix, grid, fixed, sizes) for ix in indices]
        self.axes = tuple(sorted({a for rank in self._ranks for a, _ in rank.terms}))
        """Grid axes the accessed values vary along."""
        self._layout_shape = tuple(n if a in self.axes else 1 for a, n in enumerate(grid.shape))
        self._is_view = self._view_possible()
        self._arrays = None if self._is_view else [self._index_array(rank) for rank in self._ranks]

    def _view_possible(self) -> bool:
        used: list[int] = []
        for rank in self._ranks:
            if len(rank.terms) > 1 or any(f < 0 for _, f in rank.terms):
                return False
            used.extend(a for a, _ in rank.terms)
        return len(used) == len(set(used))

    def _index_array(self, rank: _AffineIndex) -> Array | int:
        index: Array | int = rank.const
        for axis, factor in rank.terms:
            shape = [1] * len(self.grid.shape)
            shape[axis] = self.grid.shape[axis]
            index = index + factor * np.arange(self.grid.shape[axis]).reshape(shape)
        return index

    def gather(self, array: Array, r: int | None) -> Array:
        """The accessed values in grid layout, with the fixed variable at `r`."""
        shift = 0 if r is None else r
        if self._is_view:
            key: list[slice | int] = []
            order: list[int] = []
            for rank in self._ranks:
                start = rank.const + rank.step * shift
                if rank.terms:
                    axis, factor = rank.terms[0]
                    stop = start + factor * (self.grid.shape[axis] - 1) + 1
                    key.append(slice(start, stop, factor))
                    order.append(axis)
                else:
                    key.append(start)
            view = array[tuple(key)]
            view = np.transpose(view, np.argsort(order)) if order else np.asarray(view)
            return view.reshape(self._layout_shape)
        assert self._arrays is not None
        index = tuple(
            a + rank.step * shift if rank.step else a
            for a, rank in zip(self._arrays, self._ranks, strict=True)
        )
        return np.asarray(array[index]).reshape(self._layout_shape)

    def compact(self, gathered: Array) -> Array:
        """Gathered values with only the axes the access varies along."""
        return gathered.reshape([self.grid.shape[a] for a in self.axes])


@dataclass(frozen=True)
class _Contraction:
    """An Einsum run as `np.einsum(subscripts, *leaf accesses)`, reshaped to `shape`."""

    leaves: tuple[int, ...]
    subscripts: str
    shape: tuple[int, ...]
    """The output slice shape, with 1 for output ranks no leaf uses (broadcast afterwards)."""


class EinsumKernel:
    """Computes one Einsum: all of it, or (with `fixed`) its slice at one value of `fixed`."""

    def __init__(self, op: EinsumOp, layout: Layout, fixed: str | None = None):
        """Prepare `op` for execution; ExecutionError if an index leaves its tensor."""
        self.op = op
        self.name = op.tensor_name
        self.fixed = fixed
        self.result_type = numeric_type(op.result_type.element_type)
        sizes = layout.sizes
        outputs = [v for v in op.output_variables() if v != fixed]
        variables = (*outputs, *op.reduced_variables())
        self.grid = Grid(variables, tuple(sizes[rank_of(v)] for v in variables))
        self.slice_shape = tuple(sizes[rank_of(v)] for v in outputs)
        self.plans: list[AccessPlan] = []
        for value, indices in op.accesses():
            tensor = self.name if value is None else tensor_name_of(value)
            check_access_range(op, value, indices, tensor, layout)
            self.plans.append(AccessPlan(tensor, indices, self.grid, fixed, sizes))
        self.map = CompiledMap(op, sizes)
        self.reductions = [(self.grid.axis(v), REDUCERS[o]) for v, o in op.reduce.data]
        self._contraction = self._contraction_spec()

    def _contraction_spec(self) -> _Contraction | None:
        """How to run the Einsum as one `np.einsum`, when it is a sum of products of accesses."""
        leaves = self.map.product_leaves
        if leaves is None or any(ufunc is not np.add for _, ufunc in self.reductions):
            return None
        covered = {a for i in leaves for a in self.plans[i].axes}
        letters = string.ascii_letters
        if len(self.grid.shape) > len(letters):
            return None
        if any(axis not in covered for axis, _ in self.reductions):
            return None  # a reduced rank only an ignored access uses still counts its size
        n_out = len(self.slice_shape)
        inputs = ",".join("".join(letters[a] for a in self.plans[i].axes) for i in leaves)
        output = "".join(letters[a] for a in range(n_out) if a in covered)
        shape = tuple(self.grid.shape[a] if a in covered else 1 for a in range(n_out))
        return _Contraction(leaves, f"{inputs}->{output}", shape)

    @property
    def uses_contraction(self) -> bool:
        """Whether the Einsum runs as one `np.einsum` (a sum of products of accesses)."""
        return self._contraction is not None

    def evaluate(self, store: Mapping[str, Array], r: int | None = None) -> Array:
        """The Einsum's values (its slice at `r` when a variable is fixed), of its element type."""
        gathered = [plan.gather(store[plan.tensor], r) for plan in self.plans]
        if self._contraction is not None:
            values = self._contract(gathered, self._contraction)
        else:
            values = self._map_and_reduce(gathered)
        values = self.result_type.coerce(values)
        return np.broadcast_to(values, self.slice_shape)

    def _contract(self, gathered: list[Array], contraction: _Contraction) -> Array:
        dtype = self.result_type.dtype
        operands = [
            self.plans[i].compact(gathered[i]).astype(dtype, copy=False) for i in contraction.leaves
        ]
        result = np.einsum(contraction.subscripts, *operands, optimize=len(operands) > 1)
        return np.asarray(result).reshape(contraction.shape)

    def _map_and_reduce(self, gathered: list[Array]) -> Array:
        values = self.map(gathered)
        n_grid, n_out = len(self.grid.shape), len(self.slice_shape)
        if values.ndim != n_grid:
            values = values.reshape((1,) * (n_grid - values.ndim) + values.shape)
        if not self.reductions:
            return values
        # A reduced axis the mapped values do not vary along still counts its size (add, mul).
        full = values.shape[:n_out] + self.grid.shape[n_out:]
        values = np.broadcast_to(values, full)
        dtype = self.result_type.dtype
        for axis, ufunc in self.reductions:
            arithmetic: dict[str, Any] = {"dtype": dtype} if ufunc in (np.add, np.multiply) else {}
            values = ufunc.reduce(values, axis=axis, keepdims=True, **arithmetic)
        return values.reshape(values.shape[:n_out])


def check_access_range(
    op: EinsumOp, value: SSAValue | None, indices: Sequence[IndexExpr], tensor: str, layout: Layout
) -> None:
    """ExecutionError if an index of an access can leave the array it reads."""
    t = op.access_type(value)
    for rank, index in zip(t.rank_names, indices, strict=True):
        lo, hi = index.bounds(layout.sizes.__getitem__)
        extent = layout.extent(tensor, rank)
        if lo < 0 or hi >= extent:
            raise ExecutionError(
                f"einsum {op.tensor_name}: index {index} of {tensor}{format_indices(indices)} "
                f"ranges over [{lo}, {hi}] but rank {rank} of {tensor} has indices "
                f"0..{extent - 1} (size {layout.sizes[rank]})"
            )
