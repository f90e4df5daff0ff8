"""Reading TeAAL YAML with the place of every node, for `file:line:col` diagnostics.

PyYAML's composer keeps a start mark on every node, so the TeAAL readers walk the node tree
(`yaml.compose`) instead of plain Python values: an error or warning can then name the line of
the key or expression it is about. Scalars are read as strings (TeAAL's values are names,
expressions and `uniform_shape(4)`-style calls); YAML merge keys (`<<: *anchor`) are honoured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

import yaml

from einsum_opt.dialects.locations import SourceLocation
from einsum_opt.frontends.errors import NotationError
from einsum_opt.support.diagnostics import Diagnostic, emit

_MERGE_TAG = "tag:yaml.org,2002:merge"

Warn = Callable[[str], None]
"""Receives each warning line (`warning: file:line: message`)."""


MAX_YAML_NESTING = 50
"""How deeply lists and mappings may nest in the YAML files we read (TeAAL specs are about 5
levels deep; PyYAML builds nested values recursively)."""


def check_nesting(text: str, filename: str, limit: int = MAX_YAML_NESTING) -> None:
    """NotationError at the first list or mapping nested deeper than `limit` (found from
    PyYAML's event stream, which is read without recursion); syntax errors are left to the
    reader that follows."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limit:
                    mark = event.start_mark
                    raise NotationError(
                        filename,
                        mark.line + 1,
                        mark.column + 1,
                        f"lists and mappings nest more than {limit} levels deep here",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return


class SpecFileError(NotationError):
    """An error about a whole file, with no better place: `file: error: message`."""

    has_place = False

    def __init__(self, filename: str, message: str):
        super().__init__(filename, 1, 1, message)
        self.args = (f"{filename}: error: {message}",)

    def __str__(self) -> str:
        return str(self.args[0])


class SpecReader:
    """A TeAAL YAML file being read: its name, its warnings, and node accessors that fail with
    `NotationError` at the node's place."""

    def __init__(self, filename: str, warn: Warn | None = None):
        self.filename = filename
        self.warn_line = warn
        self.warned: set[str] = set()

    # -- places and messages ----------------------------------------------------------------

    def at(self, node: yaml.Node) -> SourceLocation:
        """Where `node` starts (1-based line and column)."""
        mark = node.start_mark
        return SourceLocation(self.filename, mark.line + 1, mark.column + 1)

    def fail(self, node: yaml.Node | SourceLocation | None, message: str) -> NoReturn:
        """Raise `file:line:col: error: message` (`file: error: message` without a place)."""
        if node is None:
            raise SpecFileError(self.filename, message)
        at = node if isinstance(node, SourceLocation) else self.at(node)
        raise NotationError(at.filename, at.line, at.column, message)

    def warn(self, node: yaml.Node | None, message: str, once: str | None = None) -> None:
        """Report `warning: file:line: message` (only the first time for a given `once` key)."""
        if once is not None:
            if once in self.warned:
                return
            self.warned.add(once)
        self.warn_at(None if node is None else node.start_mark.line + 1, message)

    def warn_at(self, line: int | None, message: str) -> None:
        """Report `warning: file:line: message` to `warn`, or to the diagnostics channel
        (stderr) when no `warn` was given."""
        where = self.filename if line is None else f"{self.filename}:{line}"
        text = f"warning: {where}: {message}"
        if self.warn_line is not None:
            self.warn_line(text)
        else:
            emit(Diagnostic("warning", message, self.filename, line, text=text))

    # -- reading ----------------------------------------------------------------------------

    def compose(self, text: str) -> yaml.Node | None:
        """The document's node tree (None when empty); YAML syntax errors fail at their mark,
        and so does nesting deeper than `MAX_YAML_NESTING`."""
        check_nesting(text, self.filename)
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = " ".join(str(e.problem or e.context or "invalid YAML").split())
            if mark is None:
                self.fail(None, f"invalid YAML: {problem}")
            raise NotationError(
                self.filename, mark.line + 1, mark.column + 1, f"invalid YAML: {problem}"
            ) from None
        except yaml.YAMLError as e:
            self.fail(None, f"invalid YAML: {' '.join(str(e).split())}")

    def is_null(self, node: yaml.Node | None) -> bool:
        """Whether `node` is absent or an empty value (`key:` with nothing after it)."""
        return node is None or (
            isinstance(node, yaml.ScalarNode)
            and node.tag == "tag:yaml.org,2002:null"
            and node.value in ("", "~", "null", "Null", "NULL")
        )

    def entries(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping, in order; merge keys expanded.

        An empty value (`key:`) is an empty mapping; a repeated key is an error.
        """
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping (key: value lines)")
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        merged: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if key.tag == _MERGE_TAG:
                sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                for source in sources:
                    merged += self.entries(source, f"the merge into {what}")
                continue
            name = self.scalar(key, f"a key of {what}")
            if any(name == k for k, _, _ in out):
                self.fail(key, f"{what} has key '{name}' twice")
            out.append((name, key, value))
        out += [(k, kn, v) for k, kn, v in merged if all(k != o for o, _, _ in out)]
        return out

    def items(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        """The items of a sequence (an empty value is an empty sequence)."""
        if self.is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> str:
        """The text of a scalar."""
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, f"{what} must be a single value, not a {_kind(node)}")
        return str(node.value)

    def names(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node]]:
        """A list of names with their nodes; also accepts one comma-separated string."""
        if isinstance(node, yaml.ScalarNode) and not self.is_null(node):
            parts = [p.strip() for p in str(node.value).split(",")]
            if not all(parts):
                self.fail(node, f"{what}: empty name in '{node.value}'")
            return [(p, node) for p in parts]
        return [
            (self.scalar(item, f"an entry of {what}").strip(), item)
            for item in self.items(node, what)
        ]


def _kind(node: yaml.Node) -> str:
    """How messages name a node's kind."""
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"
