"""Reading Timeloop YAML values with the field path of every value, for one-line errors such as
`input.yaml: mapping[3].factors: unknown dimension 'Z'`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import yaml

from einsum_opt.support.errors import UserError


class TimeloopSpecError(UserError):
    """A bad Timeloop input: the message names the file and the field path."""


def load_yaml(path: Path | str) -> Field:
    """The document in `path` as the root `Field` (a missing file or bad YAML is an error)."""
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise TimeloopSpecError(f"{name}: cannot read: {e.strerror or e}") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise TimeloopSpecError(f"{name}: {where}invalid YAML: {problem}") from None
    return Field(name, "", value)


@dataclass(frozen=True)
class Field:
    """One value of a YAML document, with the file and the path that led to it."""

    file: str
    path: str
    value: object

    def fail(self, message: str) -> NoReturn:
        """Raise `file: path: message`."""
        where = f"{self.file}: {self.path}: " if self.path else f"{self.file}: "
        raise TimeloopSpecError(where + message)

    def _child(self, suffix: str, value: object) -> Field:
        if suffix.startswith("[") or not self.path:
            return Field(self.file, self.path + suffix, value)
        return Field(self.file, f"{self.path}.{suffix}", value)

    # -- structure ---------------------------------------------------------------------------

    def is_null(self) -> bool:
        """Whether the value is absent (`key:` with nothing, or `~`)."""
        return self.value is None

    def mapping(self) -> dict[str, object]:
        """The value as a mapping (an empty value is an empty mapping)."""
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, found {_kind(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        """Whether the mapping has `key` with a non-empty value."""
        return self.mapping().get(key) is not None

    def get(self, key: str) -> Field:
        """The value under `key` (its `value` is None when absent)."""
        return self._child(key, self.mapping().get(key))

    def need(self, key: str) -> Field:
        """The value under `key`, which must be present."""
        found = self.get(key)
        if found.is_null():
            self.fail(f"missing '{key}'")
        return found

    def items(self) -> Iterator[Field]:
        """The elements of a list (an empty value is an empty list)."""
        if self.value is None:
            return
        if not isinstance(self.value, list):
            self.fail(f"expected a list, found {_kind(self.value)}")
        for index, element in enumerate(self.value):
            yield self._child(f"[{index}]", element)

    # -- scalars -----------------------------------------------------------------------------

    def text(self) -> str:
        """The value as a string (numbers are written out)."""
        if isinstance(self.value, bool) or not isinstance(self.value, str | int | float):
            self.fail(f"expected a name or number, found {_kind(self.value)}")
        return str(self.value)

    def number(self) -> float:
        """The value as a finite number (a numeric string is accepted)."""
        value = self.value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                self.fail(f"expected a number, found '{self.value}'")
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"expected a number, found {_kind(self.value)}")
        if not math.isfinite(value):
            self.fail(f"expected a finite number, found {self.value}")
        return float(value)

    def integer(self, minimum: int | None = 0) -> int:
        """The value as an integer (at least `minimum` unless None)."""
        number = self.number()
        if number != int(number):
            self.fail(f"expected an integer, found {self.value}")
        result = int(number)
        if minimum is not None and result < minimum:
            self.fail(f"must be at least {minimum}, found {result}")
        return result

    def flag(self) -> bool:
        """The value as a boolean (`true`/`false`)."""
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, found {_kind(self.value)}")
        return self.value

    def names(self) -> list[str]:
        """A list of names (one name alone is accepted as a list of one)."""
        if isinstance(self.value, str):
            return [self.value]
        return [item.text() for item in self.items()]


def _kind(value: object) -> str:
    """How messages name a value's kind."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    return f"'{value}'"
