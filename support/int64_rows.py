"""Batches of rows in int64 numpy arrays, exact: the bounds within which numpy's int64 and
float64 arithmetic equals Python's, and the rows beyond them computed one by one.

A batch kernel (`costmodel.batch_levels`, `lowering.buffers_batch`, the batch methods of
`PipelineGraph`) is the twin of a scalar function over Python ints. It computes in numpy the
rows whose values keep every int64 intermediate from overflowing and every int to float
conversion exact (integers up to 2**53), and hands the other rows to the scalar function
itself; a result that the scalar gives but int64 cannot hold is an OverflowError.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

INT64_MAX = int(np.iinfo(np.int64).max)

EXACT_FLOAT = 2**53
"""Integers up to this are float64 values exactly, so a quotient of two of them is rounded
once, as Python's `int / int` is."""


def int64_array(values: object, what: str, ndim: int) -> np.ndarray:
    """`values` as an int64 array of `ndim` dimensions; a TypeError for non-integers and an
    OverflowError for integers beyond int64 (never a silent cast)."""
    array = np.asarray(values)
    if array.ndim != ndim:
        raise ValueError(f"{what}: expected {ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if array.dtype.kind == "O" and all(isinstance(v, int) for v in array.flat):
        raise OverflowError(f"{what}: an integer does not fit in int64")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{what}: expected integers, got {array.dtype}")
    if array.dtype.kind == "u" and int(array.max()) > INT64_MAX:
        raise OverflowError(f"{what}: {int(array.max())} does not fit in int64")
    return array.astype(np.int64, copy=False)


def fill_rows(out: np.ndarray, rows: np.ndarray, value_of: Callable[[int], object]) -> None:
    """`out[r] = value_of(r)` for each row index in `rows`, in order (so the first row that
    fails raises, as a loop over the rows would); an int that int64 cannot hold is an
    OverflowError naming the row."""
    for r in rows.tolist():
        value = value_of(r)
        if (
            out.dtype == np.int64
            and isinstance(value, int)
            and not -INT64_MAX - 1 <= value <= INT64_MAX
        ):
            raise OverflowError(f"row {r}: {value} does not fit in int64")
        out[r] = value


def rows_within(table: np.ndarray, low: int, high: int) -> np.ndarray:
    """Per row of a 2-D table, whether all its values are in [low, high]."""
    return np.asarray(((table >= low) & (table <= high)).all(axis=1), dtype=bool)
