"""Where a kernel's values go: the output indices, evaluated over the output grid.

A kernel computes one value per point of its output grid (the output's variables; with a fixed
variable `r`, one slice per value of `r`). The output indices place each value in the output
array. An Einsum's output indices are its rank variables (and `r+1` on an iterative rank), so
the values are the array, or its slice at `r`. A loop nest's output indices are affine forms of
its loop variables: when each walks its whole rank once in mixed radix (`16*p2+4*p1+p0` with
trip counts 2, 4, 4 on a rank of 32), the values are placed by a transpose and a reshape;
otherwise they are scattered. A valid nest maps its output loop points one-to-one onto the
output's coordinates (the initial value of an iterative tensor excepted): a nest in which two
points write the same coordinate, or a coordinate is never written, is an ExecutionError, as is
an output index that leaves the array.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from einsum_opt.dialects.einsum_attrs import format_indices
from einsum_opt.interpreters.compute_ops import ComputeOp, iterative_position
from einsum_opt.interpreters.einsum_values import Array, ExecutionError
from einsum_opt.interpreters.iteration import AffineIndex, Grid, c_strides, split_index


@dataclass(frozen=True)
class _Arrangement:
    """Values placed by a transpose and a reshape (no scatter): every output index walks its
    whole rank once, in mixed radix over its grid axes (`16*p2+4*p1+p0` with trip counts 2, 4
    and 4 walks 0..31), or is `r` (`r+1` on the iterative rank)."""

    order: tuple[int, ...]
    """Output grid axes in the order the array's elements vary, outer first."""
    shape: tuple[int, ...]
    """The shape of the part written at once (the ranks other than the fixed one)."""
    key: tuple[slice, ...]
    """Where that part is along the other ranks."""
    fixed: tuple[int, int] | None
    """(rank, offset) when the index of one rank is `r + offset`."""
    in_order: bool
    """Whether the values already are in the array's element order (no transpose)."""

    def at(self, r: int) -> tuple[slice | int, ...]:
        """Where the part written at `r` is."""
        if self.fixed is None:
            return self.key
        k, offset = self.fixed
        return (*self.key[:k], r + offset, *self.key[k:])


class OutputPlan:
    """How to write a kernel's values (over its first `n_out` grid axes) into its output."""

    def __init__(
        self,
        op: ComputeOp,
        grid: Grid,
        n_out: int,
        fixed: tuple[str, int] | None,
        shape: tuple[int, ...],
        sizes: Mapping[str, int],
    ):
        """Plan the output of `op`, an array of `shape`; `fixed` is (variable, extent).

        ExecutionError if the output indices leave the array or do not write every coordinate
        exactly once.
        """
        self.op = op
        self.shape = shape
        self.out_grid = Grid(grid.variables[:n_out], grid.shape[:n_out])
        self.fixed_extent = 1 if fixed is None else fixed[1]
        indices = op.output_indices
        if len(indices) != len(shape):
            raise ExecutionError(
                f"{op.describe()}: {len(indices)} output indices for {len(shape)} ranks"
            )
        variable = None if fixed is None else fixed[0]
        self.ranks = [split_index(ix, self.out_grid, variable, sizes) for ix in indices]
        self.init_axis = iterative_position(op)
        self._arrangement = self._arrange(fixed is not None)
        self._flat: Array | None = None
        self._flat_step = 0
        if self._arrangement is None:
            self._check_bounds()
            self._flat, self._flat_step = self._flat_positions()
            self._check_one_to_one()

    @property
    def direct(self) -> bool:
        """Whether the values are placed by a transpose and reshape (else they are scattered)."""
        return self._arrangement is not None

    # -- planning ------------------------------------------------------------------------

    def _arrange(self, has_fixed: bool) -> _Arrangement | None:
        """The arrangement placing the values, when the output indices admit one."""
        order: list[int] = []
        shape: list[int] = []
        key: list[slice] = []
        fixed: tuple[int, int] | None = None
        for k, rank in enumerate(self.ranks):
            first = 1 if k == self.init_axis else 0
            written = self.shape[k] - first
            if rank.step:  # `r + offset`, over the whole rank
                if rank.terms or rank.step != 1 or fixed is not None or rank.const != first:
                    return None
                if self.fixed_extent != written:
                    return None
                fixed = (k, rank.const)
                continue
            axes = self._walk(rank, written)
            if axes is None or rank.const != first:
                return None
            order.extend(axes)
            shape.append(written)
            key.append(slice(first, None))
        if sorted(order) != list(range(len(self.out_grid.shape))):
            return None
        if has_fixed != (fixed is not None):
            return None
        in_order = order == sorted(order) and len(shape) == len(order)
        return _Arrangement(tuple(order), tuple(shape), tuple(key), fixed, in_order)

    def _walk(self, rank: AffineIndex, written: int) -> tuple[int, ...] | None:
        """The grid axes (outer first) of an index that walks `written` positions once each
        in mixed radix with step 1 (none for a constant index of a rank of one)."""
        if not rank.terms:
            return () if written == 1 else None
        radix = rank.radix(self.out_grid)
        if radix is None or radix[0] != 1:
            return None
        if math.prod(self.out_grid.shape[a] for a in radix[1]) != written:
            return None
        return radix[1]

    def _check_bounds(self) -> None:
        """ExecutionError if an output index can leave the array."""
        for k, (rank, index) in enumerate(zip(self.ranks, self.op.output_indices, strict=True)):
            lo, hi = rank.bounds(self.out_grid, self.fixed_extent)
            if lo < 0 or hi >= self.shape[k]:
                name = self.op.tensor_name
                rank_name = self.op.result_type.rank_names[k]
                raise ExecutionError(
                    f"{self.op.describe()}: output index {index} of "
                    f"{name}{format_indices(self.op.output_indices)} ranges over [{lo}, {hi}] "
                    f"but rank {rank_name} of {name} has indices 0..{self.shape[k] - 1}"
                )

    def _flat_positions(self) -> tuple[Array, int]:
        """The flat (C-order) position written at each output grid point for r = 0, and how
        far it moves per step of r."""
        strides = c_strides(self.shape)
        flat: Array = np.zeros(self.out_grid.shape, dtype=np.int64)
        step = 0
        for rank, stride in zip(self.ranks, strides, strict=True):
            flat = flat + stride * np.asarray(rank.values(self.out_grid), dtype=np.int64)
            step += stride * rank.step
        return flat, step

    def _check_one_to_one(self) -> None:
        """ExecutionError unless every coordinate (but the initial values) is written once."""
        assert self._flat is not None
        steps = np.arange(self.fixed_extent, dtype=np.int64) * self._flat_step
        written = (self._flat.reshape(1, -1) + steps.reshape(-1, 1)).ravel()
        counts = np.bincount(written, minlength=int(np.prod(self.shape)))
        expected = np.ones(self.shape, dtype=np.int64)
        if self.init_axis is not None:
            key: list[slice | int] = [slice(None)] * len(self.shape)
            key[self.init_axis] = 0
            expected[tuple(key)] = 0
        wrong = np.flatnonzero(counts != expected.ravel())
        if wrong.size == 0:
            return
        position = int(wrong[0])
        coordinate = [int(c) for c in np.unravel_index(position, self.shape)]
        where = f"{self.op.tensor_name}{coordinate}"
        count = int(counts[position])
        if expected.flat[position] == 0:
            problem = f"overwrites the initial value {where}"
        elif count == 0:
            problem = f"never writes {where}"
        else:
            problem = f"writes {where} {count} times"
        raise ExecutionError(
            f"{self.op.describe()}: its loops do not map one-to-one onto its output: it "
            f"{problem} (output {self.op.tensor_name}{format_indices(self.op.output_indices)})"
        )

    # -- writing -------------------------------------------------------------------------

    def _arranged(self, values: Array, arrangement: _Arrangement) -> Array:
        """`values` in the element order of the part of the array they fill."""
        if arrangement.in_order:
            return values
        return np.transpose(values, arrangement.order).reshape(arrangement.shape)

    def whole(self, values: Array) -> Array:
        """The output array holding `values` (computed over the whole output grid)."""
        arrangement = self._arrangement
        if arrangement is not None and arrangement.shape == self.shape:
            return np.asarray(self._arranged(values, arrangement), order="C")
        array = np.zeros(self.shape, dtype=values.dtype)
        if arrangement is not None:
            array[arrangement.key] = self._arranged(values, arrangement)
            return array
        assert self._flat is not None
        np.put(array, self._flat, values)
        return array

    def write(self, array: Array, values: Array, r: int) -> None:
        """Write the slice `values` computed at `r` into `array`."""
        arrangement = self._arrangement
        if arrangement is not None:
            array[arrangement.at(r)] = self._arranged(values, arrangement)
            return
        assert self._flat is not None
        np.put(array, self._flat + r * self._flat_step, values)
