"""The tools behave as an MLIR user expects: standard input with the format recognised from the
content, `-f` everywhere, `--time-passes`, `--list-passes`, precise option errors, one-line
usage errors, `-o` errors about the user's path, file modes from the umask, and SIGTERM
leaving nothing half-written."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from einsum_opt.frontends.loading import detect_kind
from einsum_opt.tools.einsum_opt import main as opt_main
from einsum_opt.transforms import get_all_passes
from einsum_opt.transforms.pass_options import list_passes, pass_options

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLES = ROOT / "examples" / "attention"


def tool(name: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / name), *args], input=stdin, capture_output=True, timeout=120, check=False
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def opt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = opt_main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- input formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("einsum.cascade @c() -> () ranks() {\n}\n", "mlir"),
        ('// a comment\n\n"builtin.module"() ({\n}) : () -> ()\n', "mlir"),
        ("#map = affine_map<(d0) -> (d0)>\n", "mlir"),
        ("# a comment\ncascade softmax\nranks M=4\n", "einsum"),
        ("ranks M=4\ninput X[M]\n", "einsum"),
        ("Y[m] = X[m]\n", "einsum"),
        ("# TeAAL\neinsum:\n  declaration: {A: [K]}\n", "yaml"),
        ("---\neinsum: {}\n", "yaml"),
        ("", "mlir"),
    ],
)
def test_the_format_is_recognised_from_the_content(text: str, kind: str) -> None:
    assert detect_kind(text) == kind


@pytest.mark.parametrize(
    "source", ["3pass.einsum", "3pass.mlir", "../../tests/teaal/gemm.yaml"], ids=str
)
def test_standard_input_of_every_format(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = EXAMPLES / source
    status, from_file, _ = opt(capsys, str(path))
    piped = tool("einsum-opt", stdin=path.read_bytes())
    dashed = tool("einsum-opt", "-", stdin=path.read_bytes())
    assert status == piped.returncode == dashed.returncode == 0, piped.stderr
    assert piped.stdout == dashed.stdout
    if source.endswith(".mlir"):
        assert piped.stdout == from_file
    else:  # a cascade without a name in the file is named after the file
        assert piped.stdout.count("einsum.einsum") == from_file.count("einsum.einsum") > 0
    if source.startswith("3pass"):
        ran = tool("einsum-run", "-", "--ranks", "M=64,P=32", stdin=path.read_bytes())
        assert ran.returncode == 0 and ran.stdout.startswith("AV shape=(64, 32)"), ran.stderr


def test_f_overrides_the_extension_and_the_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from einsum_opt.tools.einsum_run import main as run_main

    notation = tmp_path / "attention.txt"
    notation.write_text((EXAMPLES / "3pass.einsum").read_text())
    small = ["--ranks", "M=64,P=32"]
    assert opt(capsys, str(notation))[0] == 0  # recognised from the content
    assert run_main([str(notation), *small]) == 0
    for main in (opt_main, run_main):
        assert main([str(notation), "-f", "mlir"]) == 1
        assert capsys.readouterr().err.startswith(f"{notation}:1:")
    assert run_main([str(notation), "-f", "einsum", *small]) == 0


# -- --time-passes and --list-passes ---------------------------------------------------------


def test_time_passes_reports_every_pass_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(EXAMPLES / "3pass.einsum"), "-p", "pass-fusion,cleanup,count-passes,cleanup"]
    status, out, err = opt(capsys, *args, "--time-passes")
    assert status == 0
    assert out == opt(capsys, *args)[1]  # stdout holds the IR only
    lines = err.splitlines()
    assert lines[1].strip() == "... Execution time report ..."
    assert re.fullmatch(r"  Total Execution Time: \d+\.\d{4} seconds", lines[3])
    rows = [re.fullmatch(r"\s+(\d+\.\d{4}) \(\s*(\d+\.\d)%\)  (.+)", ln) for ln in lines[6:]]
    assert all(rows), err
    names = [r[3] for r in rows if r]
    assert names == [
        "Parser",
        "Verifier",
        "pass-fusion",
        "cleanup #1",
        "count-passes",
        "cleanup #2",
        "Output",
        "Total",
    ]
    total = float(rows[-1][1])  # type: ignore[index]
    assert sum(float(r[1]) for r in rows[:-1] if r) == pytest.approx(total, abs=1e-3)


def test_list_passes_names_every_pass_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = opt(capsys, "--list-passes")
    assert (status, err) == (0, "")
    registry = get_all_passes()
    assert out == list_passes(registry)
    sections: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith(" "):
            sections[next(reversed(sections))].append(line.strip())
        else:
            sections[line] = []
    assert list(sections) == sorted(registry)
    for name, (summary, *options) in sections.items():
        assert summary.endswith(".") and "`" + name not in summary, (name, summary)
        expected = pass_options(registry[name]())
        assert options == [str(o) for o in expected]
        assert all(o.type and o.allowed for o in expected)
    assert "    overlap: bool = true\n" in out  # lower-to-dataflow's default
    assert "    tile: int = none\n" in out  # map-unfused: the largest divisor the array takes
    assert "    sizes: str (required)\n" in out
    assert '    binding: fusemax|matmul = "fusemax"\n' in out


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        (
            "split-rank{rank=M tile=4.5}",
            "pass split-rank: option tile (int) expects an integer, got '4.5'",
        ),
        ("lower-to-dataflow{overlap=maybe}", "option overlap (bool) expects true or false"),
        ("map-fusemax{binding=flat}", "expects one of fusemax, matmul, got 'flat'"),
        ("cleanup{rank=M}", "pass cleanup has no option 'rank' (it takes no options)"),
        ("split-rank{tile=4}", "pass split-rank needs option rank (str: a name, or"),
        ("reorder-loops{einsum=QK}", "pass reorder-loops needs option order (list of str | str"),
        ("nonsense", "unknown pass 'nonsense' in 'nonsense' (available: apply-mapping,"),
        ("split-rank{", "bad pass pipeline 'split-rank{': Expected argument name here"),
    ],
)
def test_bad_pass_options_name_pass_option_type_and_values(
    pipeline: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = opt(capsys, str(EXAMPLES / "1pass.mlir"), "-p", pipeline)
    assert (status, out) == (1, "")
    (line,) = err.splitlines()
    assert line.startswith("error: ") and message in line, line


def test_the_python_api_reports_options_the_same_way() -> None:
    from einsum_opt import api
    from einsum_opt.support.errors import UserError

    module = api.load(EXAMPLES / "1pass.mlir")
    with pytest.raises(UserError, match="option tile \\(int\\) expects an integer"):
        api.apply(module, "split-rank{rank=M tile=big}")


# -- usage errors, -o ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["-t", "nope"], ["--rtol", "abc"], ["--bogus"], ["-f", "c"], ["--seed", "x"]],
    ids=str,
)
def test_usage_errors_are_one_line_and_status_1(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from einsum_opt.tools.einsum_run import main as run_main

    for name, main in (("einsum-opt", opt_main), ("einsum-run", run_main)):
        assert main([str(EXAMPLES / "1pass.mlir"), *args]) == 1, name
        captured = capsys.readouterr()
        (line,) = captured.err.splitlines()
        assert line.startswith("error: ") and f"(see {name} --help)" in line
        assert captured.out == ""


def test_output_errors_name_the_users_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from einsum_opt.tools.einsum_run import main as run_main

    source = str(EXAMPLES / "1pass.mlir")
    for args, message in [
        (["-o", str(tmp_path)], f"error: cannot write '{tmp_path}': it is a directory"),
        (
            ["-o", str(tmp_path / "nodir" / "x.mlir")],
            f"error: cannot write '{tmp_path / 'nodir' / 'x.mlir'}': directory "
            f"'{tmp_path / 'nodir'}' does not exist",
        ),
    ]:
        assert opt(capsys, source, *args) == (1, "", message + "\n")
        run = run_main([source, *(a.replace(".mlir", ".npz") for a in args)])
        assert run == 1 and capsys.readouterr().err.startswith("error: cannot write '")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_files_get_the_mode_of_the_umask(umask: int, tmp_path: Path) -> None:
    from einsum_opt.tools.einsum_run import main as run_main

    old = os.umask(umask)
    try:
        out_mlir, out_npz = tmp_path / "out.mlir", tmp_path / "out.npz"
        assert opt_main([str(EXAMPLES / "1pass.mlir"), "-o", str(out_mlir)]) == 0
        args = [str(EXAMPLES / "1pass.mlir"), "--ranks", "M=256,P=32", "-o", str(out_npz)]
        assert run_main(args) == 0
    finally:
        os.umask(old)
    assert out_mlir.stat().st_mode & 0o777 == 0o666 & ~umask
    assert out_npz.stat().st_mode & 0o777 == 0o666 & ~umask


def test_there_is_one_atomic_writer() -> None:
    """No tool keeps its own copy: temporary files are made in support/atomic_write.py only."""
    makers = [
        path.relative_to(ROOT)
        for folder in ("tools", "evaluation", "frontends", "interpreters", "transforms", "package")
        for path in (ROOT / folder).rglob("*.py")
        if re.search(r"\bmk(s|d)temp\b|NamedTemporaryFile", path.read_text())
    ]
    assert makers == []


# -- SIGTERM -----------------------------------------------------------------------------------

SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from einsum_opt.support.atomic_write import publish_directory, write_atomically
    from einsum_opt.tools.diagnostics import run_reporting_errors

    out = Path(sys.argv[1])

    def fill(staging):
        (staging / "attention.csv").write_text("new")
        print("writing", flush=True)
        time.sleep(60)

    def work():
        if sys.argv[2] == "directory":
            publish_directory(out, fill, lambda name: True)
        else:
            def slow(file):
                file.write(b"new")
                print("writing", flush=True)
                time.sleep(60)
            write_atomically(out / "attention.csv", slow)

    sys.exit(run_reporting_errors(work))
    """
)


@pytest.mark.parametrize("what", ["directory", "file"])
def test_sigterm_while_writing_leaves_the_old_results(what: str, tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "attention.csv").write_text("old")
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(out), what],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "writing\n"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (1, "error: terminated (SIGTERM)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary folder
    assert sorted(p.name for p in out.iterdir()) == ["attention.csv"]  # no temporary file
    assert (out / "attention.csv").read_text() == "old"


def test_a_folder_left_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    from einsum_opt.support.atomic_write import publish_directory

    out = tmp_path / "results"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(out), "directory"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    process.kill()
    process.wait(timeout=60)
    (left,) = tmp_path.iterdir()  # SIGKILL cannot be cleaned up after at once ...
    assert left.name.startswith(".results.") and left.name.endswith(".staging")
    time.sleep(0.1)
    publish_directory(out, lambda staging: (staging / "a.csv").write_text("a"), lambda n: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # ... but next time
    assert (out / "a.csv").read_text() == "a"


def test_publishing_into_an_existing_directory(tmp_path: Path) -> None:
    from einsum_opt.support.atomic_write import publish_directory

    out = tmp_path / "results"
    out.mkdir()
    for name, text in [("notes.txt", "mine"), ("old.png", "stale"), ("a.csv", "old")]:
        (out / name).write_text(text)
    os.chmod(out, 0o750)
    publish_directory(out, lambda s: (s / "a.csv").write_text("new"), lambda n: n.endswith(".png"))
    assert {p.name: p.read_text() for p in out.iterdir()} == {"notes.txt": "mine", "a.csv": "new"}
    assert out.stat().st_mode & 0o777 == 0o750  # the user's directory is kept, not replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_empty_input_is_an_empty_module() -> None:
    empty = tool("einsum-opt", stdin=b"// nothing but a comment\n")
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "builtin.module {\n}\n\n", "")
