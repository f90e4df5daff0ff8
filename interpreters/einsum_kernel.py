"""One Einsum or loop nest on numpy arrays: gather every access over the iteration grid, map,
reduce, place the values in the output.

The iteration grid of a kernel has one axis per output variable (in order of first use in the
output) followed by one per reduced variable (in order of first use), each ranging over its
extent: an Einsum's variables range over their ranks' sizes, a loop nest's loop variables over
their trip counts (`iteration` describes the grid). A kernel may hold one variable fixed (the
loop variable `r` of an iterative rank): it then computes one slice, for a given value of `r`,
and its grid has no axis for `r`.

Accesses are gathered in *grid layout*: an array with one axis per grid axis, of the grid's
size along the axes of the variables the access uses and of size 1 elsewhere, so the accessed
values of all accesses broadcast together without materialising the whole grid. An access is a
numpy view when each index walks a strided range once (a plain variable, a constant, the fixed
variable, or a mixed-radix form such as `m1*M0+m0` or a partitioned `16*p2+4*p1+p0`, whose
range is split into its grid axes); any other affine access (`X[m, m]`, `X[5-m]`) uses advanced
indexing with broadcast `arange` arrays. The reduced values over the output axes are then
placed into the output array by the output indices (`output_plan`).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import tensor_name_of
from einsum_opt.dialects.einsum_attrs import TensorType, format_indices
from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.interpreters.compute_ops import (
    ComputeOp,
    check_structure,
    unique,
    variable_extents,
)
from einsum_opt.interpreters.einsum_values import Array, ExecutionError, numeric_type
from einsum_opt.interpreters.iteration import Grid, split_index
from einsum_opt.interpreters.map_region import CompiledMap
from einsum_opt.interpreters.output_plan import OutputPlan

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
    """Tensor name -> the rank it iterates (only iterative tensors)."""

    def extent(self, tensor: str, rank: str) -> int:
        """How many entries `tensor` holds along `rank`."""
        extra = 1 if self.iterative.get(tensor) == rank else 0
        return self.sizes[rank] + extra

    def shape(self, tensor: str, t: TensorType) -> tuple[int, ...]:
        """The array shape of `tensor`, of type `t`."""
        return tuple(self.extent(tensor, r) for r in t.rank_names)


@dataclass(frozen=True)
class _View:
    """An access read as a view: one strided slice per index, split into its grid axes."""

    slices: tuple[tuple[int, int, int | None, int], ...]
    """Per index: (constant, step per value of the fixed variable, slice step or None for a
    single position, slice length)."""
    split: tuple[int, ...] | None
    """The shape splitting each slice into its grid axes, when one holds several."""
    permutation: tuple[int, ...] | None
    """The transpose putting the split axes in grid order, when they are not."""
    varies: bool
    """Whether any index uses a grid variable."""


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
        self.indices = tuple(indices)
        self.grid = grid
        self.ranks = [split_index(ix, grid, fixed, sizes) for ix in indices]
        """The affine form of each index."""
        self.axes = tuple(sorted({a for rank in self.ranks for a, _ in rank.terms}))
        """Grid axes the accessed values vary along."""
        self._layout_shape = tuple(n if a in self.axes else 1 for a, n in enumerate(grid.shape))
        self._view = self._view_plan()
        self._arrays = None if self._view is not None else [r.values(grid) for r in self.ranks]

    @property
    def is_view(self) -> bool:
        """Whether the access is read as a numpy view (else by advanced indexing)."""
        return self._view is not None

    def _view_plan(self) -> _View | None:
        """How to read the access as a strided view, or None when it is not one (an axis
        read twice, a negative or non-mixed-radix factor)."""
        slices: list[tuple[int, int, int | None, int]] = []
        split: list[int] = []
        order: list[int] = []
        for rank in self.ranks:
            if not rank.terms:
                slices.append((rank.const, rank.step, None, 0))
                continue
            radix = rank.radix(self.grid)
            if radix is None:
                return None
            step, axes = radix
            count = math.prod(self.grid.shape[a] for a in axes)
            slices.append((rank.const, rank.step, step, step * (count - 1) + 1))
            split.extend(self.grid.shape[a] for a in axes)
            order.extend(axes)
        if len(order) != len(set(order)):
            return None
        sliced = sum(1 for _, _, step, _ in slices if step is not None)
        return _View(
            tuple(slices),
            tuple(split) if len(split) != sliced else None,
            tuple(int(k) for k in np.argsort(order)) if order != sorted(order) else None,
            bool(order),
        )

    def gather(self, array: Array, r: int | None) -> Array:
        """The accessed values in grid layout, with the fixed variable at `r`."""
        shift = 0 if r is None else r
        view = self._view
        if view is not None:
            key = tuple(
                const + move * shift
                if step is None
                else slice(const + move * shift, const + move * shift + span, step)
                for const, move, step, span in view.slices
            )
            values = array[key]
            if not view.varies:
                return np.asarray(values).reshape(self._layout_shape)
            if view.split is not None:
                values = values.reshape(view.split)
            if view.permutation is not None:
                values = values.transpose(view.permutation)
            return values.reshape(self._layout_shape)
        assert self._arrays is not None
        index = tuple(
            a + rank.step * shift if rank.step else a
            for a, rank in zip(self._arrays, self.ranks, strict=True)
        )
        return np.asarray(array[index]).reshape(self._layout_shape)

    def compact(self, gathered: Array) -> Array:
        """Gathered values with only the axes the access varies along."""
        return gathered.reshape([self.grid.shape[a] for a in self.axes])


@dataclass(frozen=True)
class _Contraction:
    """A kernel run as `np.einsum(subscripts, *leaf accesses)`, reshaped to `shape`."""

    leaves: tuple[int, ...]
    subscripts: str
    shape: tuple[int, ...]
    """The output slice shape, with 1 for output axes no leaf uses (broadcast afterwards)."""


class EinsumKernel:
    """Computes one Einsum or loop nest: all of it, or (with `fixed`) its slice at one value
    of the variable `fixed`."""

    def __init__(self, op: ComputeOp, layout: Layout, fixed: str | None = None):
        """Prepare `op` for execution; ExecutionError if it cannot run (an index leaves its
        tensor, a nest's loops do not cover its output one-to-one, ...)."""
        check_structure(op)
        self.op = op
        self.name = op.tensor_name
        self.fixed = fixed
        self.result_type = numeric_type(op.result_type.element_type)
        sizes = layout.sizes
        extents = variable_extents(op, sizes)
        if fixed is not None and fixed not in extents:
            raise ExecutionError(f"{op.describe()}: does not iterate {fixed}")
        self.fixed_extent = 1 if fixed is None else extents[fixed]
        """How many values the fixed variable takes (1 without one)."""
        outputs = [v for v in unique(op.output_variables()) if v != fixed]
        variables = (*outputs, *op.reduced_variables())
        self.grid = Grid(variables, tuple(extents[v] for v in variables))
        self.slice_shape = self.grid.shape[: len(outputs)]
        """The shape of the values computed at once: the output axes of the grid."""
        self.plans: list[AccessPlan] = []
        for value, indices in op.accesses():
            tensor = self.name if value is None else tensor_name_of(value)
            plan = AccessPlan(tensor, indices, self.grid, fixed, sizes)
            check_access_range(op, value, plan, self.fixed_extent, layout)
            self.plans.append(plan)
        self.output = OutputPlan(
            op,
            self.grid,
            len(outputs),
            None if fixed is None else (fixed, self.fixed_extent),
            layout.shape(self.name, op.result_type),
            sizes,
        )
        self.map = CompiledMap(op, sizes)
        self.reductions = [(self.grid.axis(v), REDUCERS[o]) for v, o in op.reduce.data]
        self._contraction = self._contraction_spec()

    def _contraction_spec(self) -> _Contraction | None:
        """How to run the kernel as one `np.einsum`, when it is a sum of products of accesses."""
        leaves = self.map.product_leaves
        if leaves is None or any(ufunc is not np.add for _, ufunc in self.reductions):
            return None
        covered = {a for i in leaves for a in self.plans[i].axes}
        letters = string.ascii_letters
        if len(self.grid.shape) > len(letters):
            return None
        if any(axis not in covered for axis, _ in self.reductions):
            return None  # a reduced variable only an ignored access uses still counts its extent
        n_out = len(self.slice_shape)
        inputs = ",".join("".join(letters[a] for a in self.plans[i].axes) for i in leaves)
        output = "".join(letters[a] for a in range(n_out) if a in covered)
        shape = tuple(self.grid.shape[a] if a in covered else 1 for a in range(n_out))
        return _Contraction(leaves, f"{inputs}->{output}", shape)

    @property
    def uses_contraction(self) -> bool:
        """Whether the kernel runs as one `np.einsum` (a sum of products of accesses)."""
        return self._contraction is not None

    def evaluate(self, store: Mapping[str, Array], r: int | None = None) -> Array:
        """The values over the output axes of the grid (the slice at `r` when a variable is
        fixed), of the output's element type."""
        gathered = [plan.gather(store[plan.tensor], r) for plan in self.plans]
        if self._contraction is not None:
            values = self._contract(gathered, self._contraction)
        else:
            values = self._map_and_reduce(gathered)
        values = self.result_type.coerce(values)
        return np.broadcast_to(values, self.slice_shape)

    def compute(self, store: Mapping[str, Array]) -> Array:
        """The whole output array (a kernel without a fixed variable)."""
        return self.output.whole(self.evaluate(store))

    def write(self, array: Array, store: Mapping[str, Array], r: int) -> None:
        """Compute the slice at `r` and write it into the output `array`."""
        self.output.write(array, self.evaluate(store, r), r)

    def _contract(self, gathered: list[Array], contraction: _Contraction) -> Array:
        dtype = self.result_type.dtype
        operands = [
            self.plans[i].compact(gathered[i]).astype(dtype, copy=False) for i in contraction.leaves
        ]
        result = np.einsum(contraction.subscripts, *operands, optimize=_einsum_path(len(operands)))
        return np.asarray(result).reshape(contraction.shape)

    def _map_and_reduce(self, gathered: list[Array]) -> Array:
        values = self.map(gathered)
        n_grid, n_out = len(self.grid.shape), len(self.slice_shape)
        if values.ndim != n_grid:
            values = values.reshape((1,) * (n_grid - values.ndim) + values.shape)
        if not self.reductions:
            return values
        # A reduced axis the mapped values do not vary along still counts its extent (add, mul).
        full = values.shape[:n_out] + self.grid.shape[n_out:]
        values = np.broadcast_to(values, full)
        dtype = self.result_type.dtype
        for axis, ufunc in self.reductions:
            arithmetic: dict[str, Any] = {"dtype": dtype} if ufunc in (np.add, np.multiply) else {}
            values = ufunc.reduce(values, axis=axis, keepdims=True, **arithmetic)
        return values.reshape(values.shape[:n_out])


GREEDY_OPERANDS = 8
"""Up to this many operands numpy searches a contraction order (its greedy search takes time
cubic in their number); a longer product is contracted two operands at a time, in order."""


def _einsum_path(operands: int) -> bool | list[Any]:
    if operands <= GREEDY_OPERANDS:
        return operands > 1
    return ["einsum_path", *[(0, 1)] * (operands - 1)]


def check_access_range(
    op: ComputeOp, value: SSAValue | None, plan: AccessPlan, fixed_extent: int, layout: Layout
) -> None:
    """ExecutionError if an index of an access can leave the array it reads (the fixed
    variable taking `fixed_extent` values)."""
    t = op.access_type(value)
    indices = plan.indices
    if len(indices) != len(t.rank_names):
        raise ExecutionError(
            f"{op.describe()}: access {plan.tensor}{format_indices(indices)} has "
            f"{len(indices)} indices for {len(t.rank_names)} ranks"
        )
    for rank, index, affine in zip(t.rank_names, indices, plan.ranks, strict=True):
        lo, hi = affine.bounds(plan.grid, fixed_extent)
        extent = layout.extent(plan.tensor, rank)
        if lo < 0 or hi >= extent:
            raise ExecutionError(
                f"{op.describe()}: index {index} of {plan.tensor}{format_indices(indices)} "
                f"ranges over [{lo}, {hi}] but rank {rank} of {plan.tensor} has indices "
                f"0..{extent - 1} (size {layout.sizes[rank]})"
            )
