"""The error of an invalid architecture description or query, and how values are shown in it."""

from __future__ import annotations

from collections.abc import Mapping

from einsum_opt.support.diagnostics import shorten


class ArchitectureError(ValueError):
    """An invalid architecture description or query: `source: field.path: reason`.

    `source` is the file (or another name for where the description came from) and `field`
    the dotted path of the offending field in the YAML schema; either may be empty.
    """

    def __init__(self, reason: str, field: str = "", source: str = ""):
        self.reason = reason
        self.field = field
        self.source = source
        super().__init__(": ".join(part for part in (source, field, reason) if part))

    def within(self, prefix: str) -> ArchitectureError:
        """The same error about the field `prefix.<field>`."""
        return ArchitectureError(self.reason, join_path(prefix, self.field), self.source)

    def from_source(self, source: str) -> ArchitectureError:
        """The same error, attributed to `source` unless it already names one."""
        return ArchitectureError(self.reason, self.field, self.source or source)


def join_path(prefix: str, path: str) -> str:
    """`prefix.path`, leaving out empty parts."""
    return ".".join(part for part in (prefix, path) if part)


def show(value: object) -> str:
    """`value` as it would read in YAML flow style (lists in brackets, null, true/false), a
    long one shortened (`support.diagnostics.shorten`)."""
    return shorten(_show(value))


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_show(k)}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return repr(value)
    return str(value)
