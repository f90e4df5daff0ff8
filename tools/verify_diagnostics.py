"""`--verify-diagnostics`: check the diagnostics a run produces against `expected-*` comments.

The annotations are mlir-opt's:

```
%x = einsum.einsum ...   // expected-error {{substring of the message}}
// expected-error @+1 {{on the next line}}     (@-N: N lines up)
// expected-warning @below {{on the next line that holds no annotation}}
// expected-remark @above {{on the previous line that holds no annotation}}
// expected-note @unknown {{a diagnostic without a place}}
// expected-error-re @+1 {{literal text {{a regular expression}} literal text}}
```

Every produced diagnostic must be expected (same severity, same line, message containing the
text) and every expectation produced; otherwise each mismatch is reported, mlir-opt's way,
as one `error:` line at the annotation or at the unexpected diagnostic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from einsum_opt.support.diagnostics import Diagnostic

_ANNOTATION = re.compile(
    r"expected-(?P<severity>error|warning|remark|note)(?P<re>-re)?"
    r"(?:\s*@(?P<where>[+-]\d+|above|below|unknown))?\s*\{\{"
)
_ANY_ANNOTATION = re.compile(r"expected-(?:error|warning|remark|note)(?:-re)?\s*(?:@|\{\{)")


@dataclass(frozen=True)
class Expectation:
    """An `expected-*` annotation: which diagnostic, on which line (None: no place), and where
    the annotation itself is (for reporting it)."""

    severity: str
    pattern: re.Pattern[str]
    text: str
    line: int | None
    annotation_line: int
    annotation_column: int

    def matches(self, diagnostic: Diagnostic) -> bool:
        """Whether `diagnostic` is the one this annotation expects."""
        return (
            diagnostic.severity == self.severity
            and diagnostic.line == self.line
            and self.pattern.search(diagnostic.message) is not None
        )


def _pattern(body: str, regex: bool) -> re.Pattern[str]:
    """Plain text matches as a substring; with `-re`, `{{...}}` parts are regular expressions
    and the rest is literal."""
    if not regex:
        return re.compile(re.escape(body))
    parts = re.split(r"\{\{(.*?)\}\}", body)
    return re.compile("".join(part if i % 2 else re.escape(part) for i, part in enumerate(parts)))


def expectations_in(text: str, first_line: int = 1) -> list[Expectation]:
    """The annotations of `text`, whose first line is line `first_line` of its file.

    Raises ValueError (with the line) for a malformed annotation or a target outside `text`.
    """
    lines = text.split("\n")
    annotated = [bool(_ANY_ANNOTATION.search(line)) for line in lines]
    found: list[Expectation] = []
    for index, line in enumerate(lines):
        if not annotated[index]:
            continue
        matches = list(_ANNOTATION.finditer(line))
        bodies = [_body(line, m.end(), bool(m["re"])) for m in matches]
        if not matches or None in bodies:
            raise ValueError(
                f"line {first_line + index}: malformed expected-* annotation (expected "
                "'expected-error @+1 {{message}}')"
            )
        for match, body in zip(matches, bodies, strict=True):
            assert body is not None
            found.append(
                Expectation(
                    severity=match["severity"],
                    pattern=_pattern(body, bool(match["re"])),
                    text=body,
                    line=_target(match["where"], index, annotated, first_line),
                    annotation_line=first_line + index,
                    annotation_column=match.start() + 1,
                )
            )
    return found


def _body(line: str, start: int, regex: bool) -> str | None:
    """The text from `start` up to the `}}` that closes the annotation (None if none does);
    with `-re`, inner `{{...}}` pairs belong to the text."""
    depth = 0
    i = start
    while i < len(line) - 1:
        pair = line[i : i + 2]
        if regex and pair == "{{":
            depth += 1
            i += 2
        elif pair == "}}":
            if depth == 0:
                return line[start:i]
            depth -= 1
            i += 2
        else:
            i += 1
    return None


def _target(where: str | None, index: int, annotated: list[bool], first_line: int) -> int | None:
    """The file line an annotation on line `index` (0-based in its chunk) refers to."""
    if where is None:
        return first_line + index
    if where == "unknown":
        return None
    if where in ("above", "below"):
        step = -1 if where == "above" else 1
        target = index + step
        while 0 <= target < len(annotated) and annotated[target]:
            target += step
    else:
        target = index + int(where)
    if not 0 <= target < len(annotated):
        raise ValueError(
            f"line {first_line + index}: expected-* @{where} refers to a line outside the input"
        )
    return first_line + target


def verify(
    expected: Sequence[Expectation], produced: Sequence[Diagnostic], filename: str
) -> list[str]:
    """The mismatches between `expected` and `produced`, one `error:` line each (empty when
    every expected diagnostic was produced and nothing else)."""
    remaining = list(expected)
    problems: list[str] = []
    for diagnostic in produced:
        match = next((e for e in remaining if e.matches(diagnostic)), None)
        if match is not None:
            remaining.remove(match)
            continue
        place = diagnostic.place or filename
        problems.append(f"{place}: error: unexpected {diagnostic.severity}: {diagnostic.message}")
    for e in remaining:
        problems.append(
            f"{filename}:{e.annotation_line}:{e.annotation_column}: error: expected "
            f'{e.severity} "{e.text}" was not produced'
        )
    return problems
