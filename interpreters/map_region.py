"""Map regions as numpy code: each scalar `arith`/`math` op becomes one elementwise ufunc call.

An Einsum's map region takes one scalar per tensor access and yields one scalar. Applied to
arrays of the accessed values (broadcast over the iteration grid) it yields the mapped values
at every point at once. Operators follow numpy semantics (IEEE floats: `x / 0` is inf, `exp`
overflows to inf, NaN propagates through `maximumf`/`minimumf`), except `arith.divsi`, which
rounds toward zero as the op is defined, and reports a division by zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from xdsl.dialects import arith, math
from xdsl.dialects.builtin import FloatAttr, IntegerAttr
from xdsl.ir import Block, BlockArgument, Operation, SSAValue

from einsum_opt.dialects.einsum import SizeOp, YieldOp
from einsum_opt.interpreters.compute_ops import ComputeOp
from einsum_opt.interpreters.einsum_values import (
    Array,
    ExecutionError,
    constant_value,
    numeric_type,
)


def divide_toward_zero(a: Array, b: Array) -> Array:
    """Signed integer division rounding toward zero (`arith.divsi`)."""
    if np.any(np.asarray(b) == 0):
        raise ZeroDivisionError("integer division by zero")
    quotient = np.floor_divide(a, b)
    inexact = (np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0))
    return quotient + inexact.astype(quotient.dtype)


ELEMENTWISE: dict[type[Operation], Callable[..., Array]] = {
    arith.AddfOp: np.add,
    arith.SubfOp: np.subtract,
    arith.MulfOp: np.multiply,
    arith.DivfOp: np.divide,
    arith.MaximumfOp: np.maximum,
    arith.MinimumfOp: np.minimum,
    arith.NegfOp: np.negative,
    math.ExpOp: np.exp,
    math.LogOp: np.log,
    math.SqrtOp: np.sqrt,
    math.AbsFOp: np.abs,
    arith.AddiOp: np.add,
    arith.SubiOp: np.subtract,
    arith.MuliOp: np.multiply,
    arith.DivSIOp: divide_toward_zero,
    arith.MaxSIOp: np.maximum,
    arith.MinSIOp: np.minimum,
    math.AbsIOp: np.abs,
}
"""Scalar op class -> the numpy function applying it elementwise to its operands."""

CONVERSIONS: tuple[type[Operation], ...] = (arith.ExtFOp, arith.TruncFOp)
"""Ops converting a value to their result type."""

_MULTIPLY = (arith.MulfOp, arith.MuliOp)


@dataclass(frozen=True)
class _Step:
    """One op of the region: `result = apply(*operands)`."""

    result: SSAValue
    apply: Callable[..., Array]
    operands: tuple[SSAValue, ...]


class CompiledMap:
    """The map region of an Einsum or nest, callable on one array per access (broadcastable
    together)."""

    def __init__(self, op: ComputeOp, sizes: Mapping[str, int]):
        """Translate the region; ExecutionError names any op the interpreter cannot run.

        `sizes` gives the values of `einsum.size` ops (the cascade's rank sizes).
        """
        self.where = op.describe()
        """How messages name the op (`einsum QK`, `nest QK`)."""
        self._sizes = sizes
        block = op.body.block
        self._args = tuple(block.args)
        self._steps: list[_Step] = []
        self._result: SSAValue | None = None
        for inner in block.ops:
            if isinstance(inner, YieldOp):
                self._result = inner.value
            else:
                self._steps.append(self._step(inner))
        if self._result is None:
            raise ExecutionError(f"{self.where}: map region has no einsum.yield")
        self.product_leaves = _product_leaves(block, self._result)
        """Access numbers multiplied together when the map is a plain product, else None."""

    def _step(self, op: Operation) -> _Step:
        if len(op.results) != 1:
            raise self._unsupported(op)
        result = op.results[0]
        if isinstance(op, arith.ConstantOp):
            if not isinstance(op.value, FloatAttr | IntegerAttr):
                raise self._unsupported(op)
            value = constant_value(op.value, result.type)
            return _Step(result, lambda: value, ())
        if isinstance(op, SizeOp):
            size = numeric_type(result.type).coerce(np.asarray(self._sizes[op.rank.data]))
            return _Step(result, lambda: size, ())
        if isinstance(op, CONVERSIONS):
            target = numeric_type(result.type)
            return _Step(result, target.coerce, tuple(op.operands))
        function = ELEMENTWISE.get(type(op))
        if function is None:
            raise self._unsupported(op)
        return _Step(result, function, tuple(op.operands))

    def _unsupported(self, op: Operation) -> ExecutionError:
        classes: list[type[Operation]] = [*ELEMENTWISE, *CONVERSIONS, arith.ConstantOp, SizeOp]
        known = sorted({cls.name for cls in classes})
        return ExecutionError(
            f"{self.where}: the reference interpreter cannot run '{op.name}' in a map "
            f"region (supported: {', '.join(known)})"
        )

    def __call__(self, accesses: Sequence[Array]) -> Array:
        """The mapped values, given the accessed values in block-argument order."""
        values: dict[SSAValue, Array] = dict(zip(self._args, accesses, strict=True))
        try:
            for step in self._steps:
                values[step.result] = step.apply(*(values[v] for v in step.operands))
        except ZeroDivisionError as e:
            raise ExecutionError(f"{self.where}: {e}") from e
        assert self._result is not None
        return np.asarray(values[self._result])


def _product_leaves(block: Block, result: SSAValue) -> tuple[int, ...] | None:
    """The block arguments whose product `result` is, if it is a tree of multiplications.

    A leaf may be an argument of the result's type or an `arith.extf` of an argument to it.
    """
    leaves: list[int] = []
    pending = [result]
    while pending:
        value = pending.pop()
        owner = value.owner
        if isinstance(value, BlockArgument) and value.block is block:
            if value.type != result.type:
                return None
            leaves.append(value.index)
        elif isinstance(owner, _MULTIPLY):
            pending.extend(reversed(owner.operands))
        elif (
            isinstance(owner, arith.ExtFOp)
            and isinstance(owner.input, BlockArgument)
            and owner.input.block is block
        ):
            leaves.append(owner.input.index)
        else:
            return None
    return tuple(leaves)
