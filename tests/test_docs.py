"""Every command in README.md and docs/*.md runs as written, with the output the text shows.

The fenced blocks of each file run in order, in one scratch directory that links the
repository's top-level folders (so `examples/...` resolves and `-o out.npz` lands in the
scratch directory), with this environment's tools first on PATH:

- ```` ```console ````: lines starting with `$ ` are commands (a trailing `\\` continues one);
  the lines after a command, up to the next one, are its output, stdout and stderr together,
  compared line by line (trailing spaces ignored). A line that is only `...` stands for any
  number of lines, and a line ending in `...` any line that starts with what comes before it:
  that is how a block shows an excerpt of a long output. A command must exit
  with status 0 unless its output shows an `error:` line.
- ```` ```sh ````: every line that is not blank or a `#` comment is a command (a trailing
  `# comment` is dropped); each must exit with status 0, its output is not compared.
- ```` ```python ````: the block is executed and must not raise.

A block whose info string has the word `not-run` (```` ```sh not-run ````) is shown but not
run; the text next to it says why (it takes minutes, or it is the CI itself). Blocks of other
languages (mlir, yaml) are not commands.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = "not-run"
_FENCE = re.compile(r"^( {0,3})```(.*)$")
_ELLIPSIS = "..."


@dataclass(frozen=True)
class Block:
    """A fenced block: its language, the other words of its info string, its first line
    number (of the text after the fence) and its lines."""

    language: str
    flags: tuple[str, ...]
    line: int
    lines: tuple[str, ...]


def blocks_of(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, in order."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, words = len(fence[1]), fence[2].split()
        body: list[str] = []
        i += 1
        start = i + 1
        while i < len(lines) and not _FENCE.match(lines[i]):
            # a block inside a list item is indented like its fence
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            i += 1
        i += 1
        found.append(Block(words[0] if words else "", tuple(words[1:]), start, tuple(body)))
    return found


@dataclass(frozen=True)
class Command:
    """A command of a console block, with the output it shows, and its line in the file."""

    text: str
    expected: tuple[str, ...]
    line: int


def console_commands(block: Block) -> list[Command]:
    """The `$ ` commands of a console block with the output shown after each."""
    commands: list[Command] = []
    i = 0
    lines = block.lines
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise AssertionError(f"line {block.line + i}: console output before any command")
        line = block.line + i
        parts = [lines[i][2:]]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            parts.append(lines[i])
        i += 1
        expected: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        commands.append(Command("\n".join(parts), tuple(expected), line))
    return commands


def shell_commands(block: Block) -> list[Command]:
    """The commands of an sh block (comments dropped, `\\` continuations joined)."""
    commands: list[Command] = []
    pending: list[str] = []
    start = block.line
    for offset, raw in enumerate(block.lines):
        line = raw if pending else raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = block.line + offset
        code = re.sub(r"\s+#\s.*$", "", line) if "'" not in line else line
        pending.append(code)
        if not code.endswith("\\"):
            commands.append(Command("\n".join(pending), (), start))
            pending = []
    return commands


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Whether the output lines match the shown lines, `...` standing for any lines."""
    pattern = [line.rstrip() for line in expected]
    got = [line.rstrip() for line in actual]
    while pattern and not pattern[-1]:
        pattern.pop()
    while got and not got[-1]:
        got.pop()

    def match(p: int, g: int) -> bool:
        if p == len(pattern):
            return g == len(got)
        if pattern[p].strip() == _ELLIPSIS:
            return any(match(p + 1, k) for k in range(g, len(got) + 1))
        return g < len(got) and line_matches(pattern[p], got[g]) and match(p + 1, g + 1)

    return match(0, 0)


def line_matches(shown: str, actual: str) -> bool:
    """Equal, or `shown` ends with `...` and `actual` starts with what comes before it."""
    if shown.endswith(_ELLIPSIS) and shown.strip() != _ELLIPSIS:
        return actual.startswith(shown[: -len(_ELLIPSIS)])
    return actual == shown


def scratch_directory(tmp: Path) -> Path:
    """A directory linking every top-level entry of the repository (not its outputs)."""
    for entry in ROOT.iterdir():
        if entry.name in (".git", "results", "build", "Output"):
            continue
        (tmp / entry.name).symlink_to(entry)
    return tmp


def environment() -> dict[str, str]:
    """This Python's tools first on PATH; unbuffered output keeps stdout and stderr in order."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "100"
    env.pop("EINSUM_OPT_TRACEBACK", None)
    return env


def run_shell(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`command` in bash, stdout and stderr merged as on a terminal."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )


def check_document(path: Path, cwd: Path) -> list[str]:
    """Run the blocks of one document; the problems found, each naming its line."""
    problems: list[str] = []
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for block in blocks_of(path.read_text()):
        if NOT_RUN in block.flags:
            continue
        if block.language == "console":
            for command in console_commands(block):
                result = run_shell(command.text, cwd)
                output = result.stdout.splitlines()
                shows_error = any("error:" in line for line in command.expected)
                if result.returncode != 0 and not shows_error:
                    problems.append(
                        f"{name}:{command.line}: `{command.text}` exited with "
                        f"{result.returncode}:\n{result.stdout}"
                    )
                elif not matches(command.expected, output):
                    problems.append(
                        f"{name}:{command.line}: `{command.text}` printed\n{result.stdout}"
                        f"instead of\n" + "\n".join(command.expected)
                    )
        elif block.language == "sh":
            for command in shell_commands(block):
                result = run_shell(command.text, cwd)
                if result.returncode != 0:
                    problems.append(
                        f"{name}:{command.line}: `{command.text}` exited with "
                        f"{result.returncode}:\n{result.stdout}"
                    )
        elif block.language == "python":
            result = subprocess.run(
                [sys.executable, "-c", "\n".join(block.lines)],
                cwd=cwd,
                env=environment(),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if result.returncode != 0:
                problems.append(f"{name}:{block.line}: the python block failed:\n{result.stderr}")
    return problems


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(ROOT)) for p in DOCUMENTS])
def test_every_command_runs_as_written(path: Path, tmp_path: Path) -> None:
    problems = check_document(path, scratch_directory(tmp_path))
    assert not problems, "\n\n".join(problems)


# -- the harness itself ---------------------------------------------------------------------------


def test_blocks_and_commands_are_found() -> None:
    text = (
        "intro\n```console\n$ echo a \\\n  b\na b\n$ true\n```\n"
        "```sh not-run\nbash .ci/run   # the CI\n```\n```mlir\nx\n```\n"
        "- a list item:\n\n  ```console\n  $ echo c\n  c\n  ```\n"
    )
    console, sh, mlir, indented = blocks_of(text)
    assert indented.lines == ("$ echo c", "c")
    assert (console.language, console.line, sh.flags, mlir.language) == (
        "console",
        3,
        ("not-run",),
        "mlir",
    )
    first, second = console_commands(console)
    assert (first.text, first.expected, first.line) == ("echo a \\\n  b", ("a b",), 3)
    assert (second.text, second.expected) == ("true", ())
    assert [c.text for c in shell_commands(sh)] == ["bash .ci/run"]


@pytest.mark.parametrize(
    ("expected", "actual", "result"),
    [
        (("a", "b"), ["a", "b"], True),
        (("a", "b"), ["a", "b", "c"], False),  # an excerpt says so with `...`
        (("a", "..."), ["a", "b", "c"], True),
        (("...", "c"), ["a", "b", "c"], True),
        (("a", "...", "c"), ["a", "c"], True),
        (("a", "...", "d"), ["a", "b", "c"], False),
        (("a  ",), ["a"], True),
        (("b",), ["a"], False),
        (("error: too big, more than ...",), ["error: too big, more than 3 GiB"], True),
        (("error: too big, more than ...",), ["error: too small"], False),
    ],
)
def test_output_matching(expected: tuple[str, ...], actual: list[str], result: bool) -> None:
    assert matches(expected, actual) is result


def test_a_wrong_output_is_reported(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("```console\n$ echo hello\ngoodbye\n```\n```sh\nfalse\n```\n")
    problems = check_document(doc, tmp_path)
    assert len(problems) == 2
    assert "doc.md:2: `echo hello` printed\nhello\ninstead of\ngoodbye" in problems[0]
    assert "doc.md:6: `false` exited with 1" in problems[1]
