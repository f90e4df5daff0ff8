"""Numbers of the reference interpreter: element types as numpy dtypes, and its error type.

Every element type maps to one numpy dtype (`f16` -> float16, `f32` -> float32, `f64` ->
float64, `i8`..`i64` -> int8..int64). numpy has no bfloat16, so `bf16` values are held in
float32 arrays whose values are rounded to bfloat16 (round to nearest, ties to even) whenever a
bf16 value is produced: inputs, constants, `arith.truncf` and the result of every Einsum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
)
from xdsl.ir import Attribute, Operation

Array = NDArray[Any]
"""A numpy array of any element type."""


class ExecutionError(Exception):
    """A cascade cannot be run on the given inputs (the message says why, naming the culprit;
    `op`, when given, is the op of the input at fault, so the error can be shown at its place)."""

    def __init__(self, message: str, op: Operation | None = None):
        super().__init__(message)
        self.op = op


@dataclass(frozen=True)
class NumericType:
    """How values of one element type are held in numpy: a dtype, plus bfloat16 rounding."""

    name: str
    dtype: np.dtype[Any]
    bfloat16: bool = False

    @property
    def is_float(self) -> bool:
        """Whether the type holds floating-point values."""
        return self.dtype.kind == "f"

    def coerce(self, values: ArrayLike) -> Array:
        """`values` converted to this type (rounded to bfloat16 when emulating it)."""
        array = np.asarray(values).astype(self.dtype, copy=False)
        return round_to_bfloat16(array) if self.bfloat16 else array

    def accepts(self, dtype: np.dtype[Any]) -> bool:
        """Whether arrays of `dtype` may be given for this type (converted without surprise)."""
        if self.is_float:
            return dtype.kind in "fiub"
        return dtype.kind in "iub"


_FLOATS: dict[type[Attribute], tuple[str, np.dtype[Any], bool]] = {
    Float16Type: ("f16", np.dtype(np.float16), False),
    BFloat16Type: ("bf16", np.dtype(np.float32), True),
    Float32Type: ("f32", np.dtype(np.float32), False),
    Float64Type: ("f64", np.dtype(np.float64), False),
}

_INT_WIDTHS = (8, 16, 32, 64)


def numeric_type(element: Attribute) -> NumericType:
    """The numpy representation of an element type; ExecutionError for unsupported ones."""
    known = _FLOATS.get(type(element))
    if known is not None:
        name, dtype, bf16 = known
        return NumericType(name, dtype, bf16)
    if isinstance(element, IntegerType) and element.width.data in _INT_WIDTHS:
        width = element.width.data
        return NumericType(f"i{width}", np.dtype(f"int{width}"))
    raise ExecutionError(
        f"element type {element} is not supported by the reference interpreter "
        "(supported: f16, bf16, f32, f64, i8, i16, i32, i64)"
    )


def round_to_bfloat16(values: ArrayLike) -> Array:
    """float32 values rounded to the nearest bfloat16 (ties to even); NaN stays NaN."""
    x = np.asarray(values, dtype=np.float32)
    bits = x.view(np.uint32)
    bias = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    rounded = ((bits + bias) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(x), x, rounded)


def constant_value(attr: FloatAttr | IntegerAttr, element: Attribute) -> Array:
    """A constant attribute (a map constant or an initial value) as a 0-d array of `element`."""
    value = attr.value.data
    return numeric_type(element).coerce(np.asarray(value))
