"""Checks of single values in architecture descriptions, as pydantic field types.

Each check raises `ValueError` with the message the user sees (`expected a positive integer,
got -1`); `schema_errors` turns pydantic's report into an `ArchitectureError` naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, PlainValidator

from einsum_opt.hardware.errors import ArchitectureError, show

K = TypeVar("K")
V = TypeVar("V")

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable mapping that keeps insertion order."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()):
        self._items: dict[K, V] = dict(items)

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"


def is_int(value: object) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(value: object) -> int:
    """`value` if it is a positive integer."""
    if is_int(value) and value > 0:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a positive integer, got {show(value)}")


def non_negative_int(value: object) -> int:
    """`value` if it is a non-negative integer."""
    if is_int(value) and value >= 0:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a non-negative integer, got {show(value)}")


def positive_number(value: object) -> float:
    """`value` if it is a positive finite number."""
    if is_number(value) and value > 0:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a positive number, got {show(value)}")


def non_negative_number(value: object) -> float:
    """`value` if it is a non-negative finite number."""
    if is_number(value) and value >= 0:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a non-negative number, got {show(value)}")


def energy(value: object) -> float:
    """`value` if it is a non-negative energy (pJ)."""
    if is_number(value) and value >= 0:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a non-negative energy in pJ, got {show(value)}")


def at_least_one(value: object) -> float:
    """`value` if it is a number of at least 1 (multiple buffering)."""
    if is_number(value) and value >= 1:  # type: ignore[operator]
        return value  # type: ignore[return-value]
    raise ValueError(f"expected a number of at least 1, got {show(value)}")


def text(value: object) -> str:
    """`value` if it is a string."""
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {show(value)}")


def name(value: object) -> str:
    """`value` if it is a non-empty string."""
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"expected a non-empty string, got {show(value)}")


def flag(value: object) -> bool:
    """`value` if it is true or false."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {show(value)}")


def shape(value: object) -> tuple[int, ...]:
    """`value` as 1 or 2 positive integers (PEs or instances along each axis)."""
    if (
        isinstance(value, list | tuple)
        and len(value) in (1, 2)
        and all(is_int(side) and side > 0 for side in value)
    ):
        return tuple(value)
    raise ValueError(f"expected 1 or 2 positive integers, got {show(value)}")


PositiveInt = Annotated[int, PlainValidator(positive_int)]
NonNegativeInt = Annotated[int, PlainValidator(non_negative_int)]
PositiveNumber = Annotated[float, PlainValidator(positive_number)]
NonNegativeNumber = Annotated[float, PlainValidator(non_negative_number)]
Energy = Annotated[float, PlainValidator(energy)]
Buffering = Annotated[float, PlainValidator(at_least_one)]
Text = Annotated[str, PlainValidator(text)]
Name = Annotated[str, PlainValidator(name)]
Flag = Annotated[bool, PlainValidator(flag)]
Shape = Annotated[tuple[int, ...], PlainValidator(shape)]


def named(what: str, one: str) -> Any:
    """A `BeforeValidator` for a mapping of `what` keyed by identifiers (`units`, `storage`);
    `one` names one entry in messages (`a unit name must be an identifier`)."""

    def check(value: object) -> object:
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping of {what} by name, got {show(value)}")
        for key in value:
            if not isinstance(key, str) or not IDENTIFIER.match(key):
                raise ArchitectureError(
                    f"a {one} name must be an identifier (letters, digits, _)", str(key)
                )
        return dict(value)

    return BeforeValidator(check)
