"""Reading Timeloop YAML values with the place of every value, for one-line errors such as
`input.yaml:42:14: error: mapping[3].factors: unknown dimension 'Z'` (file, line, column and
field path; the field path alone where no line is known)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml

from einsum_opt.frontends.errors import NotationError
from einsum_opt.frontends.teaal_yaml import check_nesting
from einsum_opt.support.errors import PlacedError, UserError

FRONT_END_TAGS = ("Container", "Component", "Hierarchical", "Parallel", "Pipelined", "Nothing")
"""The node tags of Timeloop's v0.4 front end (`- !Component` in an architecture's `nodes`)."""


class TimeloopSpecError(UserError):
    """A bad Timeloop input: the message names the file and the field path."""


class PlacedSpecError(TimeloopSpecError, PlacedError):
    """A bad Timeloop input in a known file, at a line and column when known:
    `file:line:col: error: path: ...` (`file: path: ...` without a line)."""


class Tagged(dict[object, object]):
    """A mapping written with one of `FRONT_END_TAGS` (`!Component`): `tag` is the name."""

    def __init__(self, tag: str, items: dict[object, object]):
        super().__init__(items)
        self.tag = tag


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, which also reads the front end's node tags."""


def _construct_tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Tagged:
    tag = node.tag.lstrip("!")
    if isinstance(node, yaml.MappingNode):
        return Tagged(tag, loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.ScalarNode) and not node.value:
        return Tagged(tag, {})  # `- !Nothing` alone
    raise yaml.constructor.ConstructorError(
        None, None, f"!{tag} must be a mapping", node.start_mark
    )


for _tag in FRONT_END_TAGS:
    _Loader.add_constructor(f"!{_tag}", _construct_tagged)


@dataclass(frozen=True)
class Places:
    """Where each value of a loaded document starts: (line, column), 1-based, by the identity
    of its mapping or list and its key or index there. `root` keeps the document alive, so
    the identities stay valid."""

    root: object
    table: dict[int, dict[object, tuple[int, int]]]

    def of(self, container: object, key: object) -> tuple[int, int] | None:
        """The place of `container[key]`, if known."""
        return self.table.get(id(container), {}).get(key)


def _places(node: yaml.Node | None, value: object) -> Places:
    """The places of the values of a constructed document (merge keys already flattened)."""
    table: dict[int, dict[object, tuple[int, int]]] = {}
    pending: list[tuple[yaml.Node, object]] = [] if node is None else [(node, value)]
    while pending:
        current, constructed = pending.pop()
        if isinstance(current, yaml.MappingNode) and isinstance(constructed, dict):
            by_text = {str(key): key for key in constructed}
            here = table.setdefault(id(constructed), {})
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.value not in by_text:
                    continue
                key = by_text[key_node.value]
                here[key] = (value_node.start_mark.line + 1, value_node.start_mark.column + 1)
                pending.append((value_node, constructed[key]))
        elif isinstance(current, yaml.SequenceNode) and isinstance(constructed, list):
            here = table.setdefault(id(constructed), {})
            for index, (item_node, item) in enumerate(zip(current.value, constructed, strict=True)):
                here[index] = (item_node.start_mark.line + 1, item_node.start_mark.column + 1)
                pending.append((item_node, item))
    return Places(value, table)


def load_yaml(path: Path | str) -> Field:
    """The document in `path` as the root `Field` (a missing file or bad YAML is an error)."""
    name = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PlacedSpecError(name, None, None, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise PlacedSpecError(name, None, None, f"not UTF-8 text (byte {e.start})") from None
    try:
        check_nesting(text, name)
    except NotationError as e:
        raise PlacedSpecError(e.filename, e.line, e.column, e.message) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or getattr(e, "context", None) or e
        message = f"invalid YAML: {' '.join(str(problem).split())}"
        line, column = (None, None) if mark is None else (mark.line + 1, mark.column + 1)
        raise PlacedSpecError(name, line, column, message) from None
    finally:
        loader.dispose()
    return Field(name, "", value, (1, 1) if node is None else _start(node), _places(node, value))


def _start(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


@dataclass(frozen=True)
class Field:
    """One value of a YAML document, with the file, the path that led to it and, when known,
    the line and column where it starts."""

    file: str
    path: str
    value: object
    place: tuple[int, int] | None = None
    places: Places | None = field(default=None, compare=False, repr=False)

    def fail(self, message: str) -> NoReturn:
        """Raise `file:line:col: error: path: message` (`file: path: message` without a place)."""
        where = f"{self.path}: " if self.path else ""
        line, column = self.place if self.place is not None else (None, None)
        raise PlacedSpecError(self.file, line, column, where + message)

    def child(self, key: str | int, value: object) -> Field:
        """The field of `value`, found under `key` (a name or a list index) of this one."""
        suffix = f"[{key}]" if isinstance(key, int) else key
        if suffix.startswith("[") or not self.path:
            path = self.path + suffix
        else:
            path = f"{self.path}.{suffix}"
        place = self.places.of(self.value, key) if self.places is not None else None
        return Field(self.file, path, value, place or self.place, self.places)

    # -- structure ---------------------------------------------------------------------------

    def is_null(self) -> bool:
        """Whether the value is absent (`key:` with nothing, or `~`)."""
        return self.value is None

    def tag(self) -> str | None:
        """The front-end tag the value was written with (`Component`), if any."""
        return self.value.tag if isinstance(self.value, Tagged) else None

    def mapping(self) -> dict[str, object]:
        """The value as a mapping (an empty value is an empty mapping)."""
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, found {_kind(self.value)}")
        return self.value

    def has(self, key: str) -> bool:
        """Whether the mapping has `key` with a non-empty value."""
        return self.mapping().get(self._spelling(key)) is not None

    def get(self, key: str) -> Field:
        """The value under `key` (its `value` is None when absent)."""
        key = self._spelling(key)
        return self.child(key, self.mapping().get(key))

    def _spelling(self, key: str) -> str:
        """`key`, or its old hyphenated spelling (`block-size`) when only that is present:
        Timeloop still reads those, with a deprecation warning."""
        hyphenated = key.replace("_", "-")
        mapping = self.mapping()
        return hyphenated if key not in mapping and hyphenated in mapping else key

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
            yield self.child(index, element)

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
    if isinstance(value, Tagged):
        return f"a !{value.tag} node"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    return f"'{value}'"
