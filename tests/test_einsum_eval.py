"""`einsum-eval`: CSVs, figures, summary, options and one-line errors, on a fake sweep (and one
point of the real one once it exists)."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from einsum_opt.evaluation import sweep
from einsum_opt.evaluation.csv_output import read_results, write_results
from einsum_opt.evaluation.summary import (
    Summary,
    Utilization,
    mean_ratio,
    render_summary,
    summarize,
)
from einsum_opt.evaluation.sweep import COLUMNS, Result
from einsum_opt.evaluation.workloads import CONFIGS, MODELS, Model
from einsum_opt.support.atomic_write import write_atomically
from einsum_opt.tools.einsum_eval import main, parse_lengths

EINSUM_EVAL = Path(sys.executable).parent / "einsum-eval"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOTS = [
    "attention_energy.png",
    "attention_energy_vs_flat.png",
    "attention_speedup.png",
    "attention_speedup_vs_flat.png",
    "end2end_speedup.png",
    "end2end_speedup_vs_flat.png",
    "energy_breakdown.png",
    "utilization.png",
]
CSVS = ["attention.csv", "end2end.csv", "energy_breakdown.csv"]

# config -> (latency factor, energy factor, 2D utilisation, 1D utilisation)
FAKE_COSTS = {
    "unfused": (10.0, 3.0, 0.1, 0.4),
    "flat": (6.5, 1.25, 0.15, 0.9),
    "cascade": (3.0, 1.1, 0.5, 0.95),
    "architecture": (1.5, 1.05, 0.8, 0.99),
    "fusemax": (1.0, 1.0, 0.97, 1.0),
}


def fake_result(model: Model, seq_len: int, config: str, layer: float) -> Result:
    """A synthetic point: costs grow with the model and (superlinearly) the length."""
    latency, energy, util_2d, util_1d = FAKE_COSTS[config]
    size = model.heads * model.head_dim * (seq_len / 1024) ** 1.5
    energy_pj = energy * size * 1e5 / 7 + layer * 1e9
    return Result(
        model=model.name,
        seq_len=seq_len,
        config=config,
        latency_s=latency * size * 1e-7 / 3 + layer * 1e-3,
        energy_pj=energy_pj,
        energy_pj_physical=1.1 * energy_pj,
        util_2d=util_2d * seq_len / (seq_len + 100),
        util_1d=util_1d,
        dram_bytes=int(size * 2**20) + int(layer * 2**30),
        energy_breakdown_pj=(("compute", 0.75 * energy_pj), ("memory", 0.25 * energy_pj)),
    )


class FakeSweep:
    """Stands in for `run_sweep`: records its calls and calls `on_point` after every point."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[tuple[list[str], list[int], list[str]]] = []
        self.points = 0
        self.fail_after = fail_after

    def __call__(
        self,
        models: Sequence[Model],
        lengths: Sequence[int],
        configs: Sequence[str],
        on_point: Callable[[], None] | None = None,
        arch: str | None = None,
    ) -> tuple[list[Result], list[Result]]:
        self.calls.append(([m.name for m in models], list(lengths), list(configs)))
        self.arch = arch
        attention, end2end = [], []
        for model in models:
            for n in lengths:
                for config in configs:
                    if self.points == self.fail_after:
                        raise RuntimeError("the cost model failed")
                    attention.append(fake_result(model, n, config, 0.0))
                    end2end.append(fake_result(model, n, config, 1.0))
                    self.points += 1
                    if on_point is not None:
                        on_point()
        return attention, end2end


@pytest.fixture
def fake_sweep(monkeypatch: pytest.MonkeyPatch) -> FakeSweep:
    fake = FakeSweep()
    monkeypatch.setattr(sweep, "run_sweep", fake)
    return fake


def assert_one_error_line(stderr: str) -> str:
    """The single stderr line, checked to be an `error:` diagnostic."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def is_png(path: Path) -> bool:
    return path.read_bytes()[: len(PNG_MAGIC)] == PNG_MAGIC


# -- successful runs ----------------------------------------------------------------------------


def test_csvs_hold_one_typed_row_per_point(
    tmp_path: Path, fake_sweep: FakeSweep, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["--out", str(out), "--models", "bert,T5", "--lengths", "1K,64K,3000", "--no-plots"]
    assert main(args) == 0
    assert capsys.readouterr().err == ""  # no bar drawn when stderr is not a terminal
    assert fake_sweep.calls == [(["BERT", "T5"], [1024, 65536, 3000], list(CONFIGS))]
    assert names(out) == CSVS  # no figures, no temporary files
    for name in CSVS[:2]:
        with open(out / name, newline="") as file:
            rows = list(csv.reader(file))
        assert tuple(rows[0]) == COLUMNS
        assert len(rows) == 1 + 2 * 3 * len(CONFIGS)
        for row in rows[1:]:
            cells = dict(zip(COLUMNS, row, strict=True))
            assert cells["model"] in ("BERT", "T5")  # canonical names
            assert cells["config"] in CONFIGS
            assert cells["seq_len"].isdigit() and cells["dram_bytes"].isdigit()
            for column in ("latency_s", "energy_pj", "util_2d", "util_1d"):
                float(cells[column])
        assert [r[:3] for r in rows[1:4]] == [
            ["BERT", "1024", "unfused"],
            ["BERT", "1024", "flat"],
            ["BERT", "1024", "cascade"],
        ]
    # floats read back exactly: the rows are the results the sweep returned
    expected = FakeSweep()([MODELS["BERT"], MODELS["T5"]], [1024, 65536, 3000], CONFIGS)
    without_breakdown = [[replace(r, energy_breakdown_pj=()) for r in part] for part in expected]
    assert read_results(out / "attention.csv") == without_breakdown[0]
    assert read_results(out / "end2end.csv") == without_breakdown[1]
    # ... and the breakdowns are in energy_breakdown.csv, one row per result and component
    with open(out / "energy_breakdown.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["part", "model", "seq_len", "config", "component", "energy_pj"]
    listed = [
        (part, r.model, r.seq_len, r.config, component, pj)
        for part, results in zip(("attention", "end2end"), expected, strict=True)
        for r in results
        for component, pj in r.energy_breakdown_pj
    ]
    assert [
        (
            r["part"],
            r["model"],
            int(r["seq_len"]),
            r["config"],
            r["component"],
            float(r["energy_pj"]),
        )
        for r in rows
    ] == listed


def test_summary_on_stdout(
    tmp_path: Path, fake_sweep: FakeSweep, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["--out", str(out), "--lengths", "1K,4K", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    attention, end2end = read_results(out / "attention.csv"), read_results(out / "end2end.csv")
    assert printed == render_summary(summarize(attention, end2end)) + "\n"
    assert "means over 8 (model, sequence length) points" in printed
    for label in ("attention speedup  fusemax/flat", "end-to-end energy  fusemax/flat"):
        assert label in printed
    for config in CONFIGS:
        assert any(line.startswith(config) for line in printed.splitlines())


def test_on_point_counts_every_point(tmp_path: Path, fake_sweep: FakeSweep) -> None:
    args = ["--out", str(tmp_path), "--models", "XLM", "--lengths", "1K,4K", "--no-plots"]
    assert main([*args, "--configs", "flat,fusemax"]) == 0
    assert fake_sweep.points == 4


def test_figures_are_png(
    tmp_path: Path, fake_sweep: FakeSweep, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a" / "b"  # parents are created too
    assert main(["--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    assert names(out) == sorted(CSVS + PLOTS)
    assert all(is_png(out / name) for name in PLOTS)


UNFUSED_FIGURES = ["attention_speedup", "attention_energy", "end2end_speedup"]
FLAT_FIGURES = [f"{name}_vs_flat" for name in UNFUSED_FIGURES]


@pytest.mark.parametrize(
    ("configs", "skipped", "drawn"),
    [
        (
            "flat,fusemax",
            [(f, "the baseline configuration unfused was not selected") for f in UNFUSED_FIGURES],
            ["utilization", *FLAT_FIGURES, "energy_breakdown"],
        ),
        (
            "unfused",
            [(f, "no configuration other than unfused was selected") for f in UNFUSED_FIGURES]
            + [(f, "the baseline configuration flat was not selected") for f in FLAT_FIGURES]
            + [("energy_breakdown", "configuration flat, fusemax was not selected")],
            ["utilization"],
        ),
        (
            "unfused,fusemax",
            [(f, "the baseline configuration flat was not selected") for f in FLAT_FIGURES]
            + [("energy_breakdown", "configuration flat was not selected")],
            ["utilization", *UNFUSED_FIGURES],
        ),
    ],
)
def test_figures_without_baseline_are_skipped(
    configs: str,
    skipped: list[tuple[str, str]],
    drawn: list[str],
    tmp_path: Path,
    fake_sweep: FakeSweep,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--out", str(tmp_path), "--models", "T5,XLM", "--lengths", "1K,4K"]
    assert main([*args, "--configs", configs]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert notes == [f"note: skipping {name}: {reason}" for name, reason in skipped]
    assert names(tmp_path) == sorted([*CSVS, *(f"{name}.png" for name in drawn)])
    assert all(is_png(tmp_path / f"{name}.png") for name in drawn)
    assert is_png(tmp_path / "utilization.png")


def test_rerun_replaces_the_results(tmp_path: Path, fake_sweep: FakeSweep) -> None:
    (tmp_path / "notes.txt").write_text("kept")
    args = ["--out", str(tmp_path), "--lengths", "1K", "--no-plots"]
    assert main([*args, "--models", "BERT"]) == 0
    assert main([*args, "--models", "T5", "--configs", "fusemax"]) == 0
    assert [(r.model, r.config) for r in read_results(tmp_path / "end2end.csv")] == [
        ("T5", "fusemax")
    ]
    assert names(tmp_path) == sorted([*CSVS, "notes.txt"])


def test_case_insensitive_names(tmp_path: Path, fake_sweep: FakeSweep) -> None:
    args = ["--out", str(tmp_path), "--lengths", "1k", "--no-plots"]
    assert main([*args, "--models", "trxl, xlm ,Bert", "--configs", "FuseMax,FLAT"]) == 0
    assert fake_sweep.calls == [(["TrXL", "XLM", "BERT"], [1024], ["fusemax", "flat"])]
    assert {r.model for r in read_results(tmp_path / "attention.csv")} == {"TrXL", "XLM", "BERT"}


# -- summarize ----------------------------------------------------------------------------------


def point(model: str, config: str, latency: float, energy: float, u2: float = 0.5) -> Result:
    """A result whose physical energy adds 10 pJ per second of latency (so that its ratios
    differ from the artifact accounting's)."""
    physical = energy + 10 * latency
    return Result(model, 1024, config, latency, energy, physical, u2, 1.0 - u2 / 2, 100)


def test_summarize_means_of_ratios_by_hand() -> None:
    attention = [
        point("BERT", "unfused", 20.0, 100.0, 0.1),
        point("BERT", "flat", 8.0, 50.0, 0.2),
        point("BERT", "fusemax", 2.0, 40.0, 0.9),
        point("T5", "unfused", 30.0, 90.0, 0.3),
        point("T5", "flat", 9.0, 80.0, 0.4),
        point("T5", "fusemax", 1.5, 60.0, 1.0),
    ]
    end2end = [
        point("BERT", "flat", 10.0, 10.0),
        point("BERT", "fusemax", 5.0, 9.0),
        point("T5", "flat", 12.0, 20.0),
        point("T5", "fusemax", 3.0, 15.0),
    ]
    summary = summarize(attention, end2end)
    assert summary.points == 2
    assert summary.attention_speedup_vs_flat == pytest.approx((8 / 2 + 9 / 1.5) / 2)  # 5
    assert summary.attention_speedup_vs_unfused == pytest.approx((20 / 2 + 30 / 1.5) / 2)  # 15
    assert summary.attention_energy_vs_flat == pytest.approx((40 / 50 + 60 / 80) / 2)  # 0.775
    physical = (60 / 130 + 75 / 170) / 2  # (40 + 20) / (50 + 80), (60 + 15) / (80 + 90)
    assert summary.attention_energy_physical_vs_flat == pytest.approx(physical)
    assert summary.end2end_energy_physical_vs_flat == pytest.approx((59 / 110 + 45 / 140) / 2)
    assert summary.end2end_speedup_vs_flat == pytest.approx((10 / 5 + 12 / 3) / 2)  # 3
    assert summary.end2end_energy_vs_flat == pytest.approx((9 / 10 + 15 / 20) / 2)  # 0.825
    assert list(summary.utilization) == ["unfused", "flat", "fusemax"]
    assert summary.utilization["flat"].util_2d == pytest.approx(0.3)
    fusemax = summary.utilization["fusemax"]
    assert isinstance(fusemax, Utilization)
    assert (fusemax.util_2d, fusemax.util_1d) == pytest.approx((0.95, 1 - 0.95 / 2))
    text = render_summary(summary)
    assert "attention speedup  fusemax/flat         5.00x" in text
    assert "attention speedup  fusemax/unfused     15.00x" in text
    assert "attention energy   fusemax/flat         0.775\n  physical accounting" in text
    assert f"  physical accounting                   {physical:.3f}\n" in text
    assert "fusemax " in text and "95.0%" in text


def test_summarize_leaves_out_missing_configurations() -> None:
    attention = [point("BERT", "flat", 8.0, 50.0), point("BERT", "fusemax", 2.0, 40.0)]
    summary = summarize(attention, [])
    assert summary.attention_speedup_vs_flat == pytest.approx(4.0)
    assert summary.attention_speedup_vs_unfused is None
    assert summary.end2end_speedup_vs_flat is None and summary.end2end_energy_vs_flat is None
    text = render_summary(summary)
    assert "unfused" not in text and "end-to-end" not in text
    assert summarize([], []) == Summary(points=0)


def test_mean_ratio_uses_common_points_only() -> None:
    results = [
        point("BERT", "flat", 8.0, 1.0),
        point("BERT", "fusemax", 2.0, 1.0),
        point("T5", "flat", 9.0, 1.0),  # no fusemax at this point
    ]
    assert mean_ratio(results, "latency_s", "flat", "fusemax") == pytest.approx(4.0)
    assert mean_ratio(results, "latency_s", "flat", "cascade") is None
    with pytest.raises(ValueError, match="two results for BERT at 1024 tokens under flat"):
        mean_ratio([*results, results[0]], "latency_s", "flat", "fusemax")


# -- atomic writing -----------------------------------------------------------------------------


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "attention.csv"
    write_results(path, [point("BERT", "flat", 8.0, 50.0)])
    before = path.read_bytes()

    def fail(file: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(path, fail)
    assert path.read_bytes() == before
    assert names(tmp_path) == ["attention.csv"]


# -- errors -------------------------------------------------------------------------------------


def bad_command_lines(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """Named bad command lines (writing to tmp/out unless said otherwise; tmp/file is a file)
    and a piece of their expected message."""
    out = ["--out", str(tmp / "out")]
    models = "(choose from BERT, TrXL, T5, XLM)"
    configs = "(choose from unfused, flat, cascade, architecture, fusemax, searched)"
    return {
        "unknown model": ([*out, "--models", "BERT,gpt2"], f"unknown model 'gpt2' {models}"),
        "unknown config": (
            [*out, "--configs", "flat,fast"],
            f"--configs: unknown configuration 'fast' {configs}",
        ),
        "empty models": ([*out, "--models", ""], "--models: empty value"),
        "twice": ([*out, "--models", "BERT,bert"], "--models: model 'bert' is given twice"),
        "float length": ([*out, "--lengths", "1.5K"], "--lengths: '1.5K' is not a length"),
        "bad suffix": ([*out, "--lengths", "1K,4G"], "'4G' is not a length"),
        "no digits": ([*out, "--lengths", "K"], "'K' is not a length"),
        "zero length": ([*out, "--lengths", "0"], "--lengths: length '0' is not positive"),
        "negative length": ([*out, "--lengths=-1K"], "length '-1K' is not positive"),
        "empty entry": ([*out, "--lengths", "1K,,4K"], "--lengths: empty entry in '1K,,4K'"),
        "empty out": (["--out", ""], "--out: empty directory name"),
        "no out": (["--models", "BERT"], "the following arguments are required: --out"),
        "out is a file": (["--out", str(tmp / "file")], "exists and is not a directory"),
        "out under a file": (
            ["--out", str(tmp / "file" / "out")],
            f"--out: cannot create directory '{tmp / 'file' / 'out'}'",
        ),
        "unknown option": ([*out, "--bogus"], "unrecognized arguments: --bogus"),
        "unknown arch": ([*out, "--arch", "tpu"], "--arch: unknown architecture 'tpu': the "),
        "missing arch file": (
            [*out, "--arch", str(tmp / "none.yaml")],
            f"--arch: {tmp / 'none.yaml'}: cannot read: No such file or directory",
        ),
        "arch that is not YAML": (
            [*out, "--arch", str(tmp / "file")],
            f"--arch: {tmp / 'file'}: ",
        ),
        "empty arch": ([*out, "--arch", ""], "--arch: empty value"),
    }


@pytest.mark.parametrize("case", list(bad_command_lines(Path("tmp"))))
def test_bad_option_is_one_error_line(
    case: str, tmp_path: Path, fake_sweep: FakeSweep, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("x")
    args, message = bad_command_lines(tmp_path)[case]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert message in assert_one_error_line(captured.err)
    assert captured.out == ""
    assert fake_sweep.calls == []
    assert names(tmp_path) == ["file"]
    assert (tmp_path / "file").read_text() == "x"


def test_failed_sweep_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSweep(fail_after=3)
    monkeypatch.setattr(sweep, "run_sweep", fake)
    assert main(["--out", str(tmp_path / "new" / "out"), "--lengths", "1K"]) == 1
    captured = capsys.readouterr()
    assert "the cost model failed" in assert_one_error_line(captured.err)
    assert captured.out == "" and fake.points == 3
    assert names(tmp_path) == []  # the directories it created are gone again
    (tmp_path / "kept").mkdir()
    assert main(["--out", str(tmp_path / "kept"), "--lengths", "1K"]) == 1
    assert names(tmp_path) == ["kept"] and names(tmp_path / "kept") == []


# -- --lengths ----------------------------------------------------------------------------------


def test_parse_lengths() -> None:
    assert parse_lengths("1K,4K,16K,64K,256K,1M") == [1024, 4096, 16384, 65536, 262144, 2**20]
    assert parse_lengths(" 2k , 3000,2M") == [2048, 3000, 2 * 2**20]
    assert parse_lengths("1024") == [1024]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty value"),
        ("1K,", "empty entry"),
        ("1K,1024", "length '1024' is given twice"),
        ("1 K", "'1 K' is not a length"),
        ("1KB", "is not a length"),
        ("0K", "not positive"),
        ("-4", "not positive"),
    ],
)
def test_parse_lengths_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_lengths(text)


# -- the console script -------------------------------------------------------------------------


def test_console_script_help_and_errors(tmp_path: Path) -> None:
    shown = subprocess.run(
        [str(EINSUM_EVAL), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0 and shown.stderr == ""
    for word in ("--out DIR", "--models", "--lengths", "--configs", "--no-plots", "end2end.csv"):
        assert word in shown.stdout
    failed = subprocess.run(
        [str(EINSUM_EVAL), "--out", str(tmp_path / "out"), "--models", "GPT"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1 and failed.stdout == ""
    assert "unknown model 'GPT'" in assert_one_error_line(failed.stderr)
    assert names(tmp_path) == []


def test_importing_the_tool_is_cheap() -> None:
    code = (
        "import sys, einsum_opt.tools.einsum_eval; "
        "print(sorted(m for m in ('matplotlib', 'rich') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


# -- the real sweep -----------------------------------------------------------------------------


def test_real_sweep_one_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One point of the real sweep, end to end through the command."""
    args = ["--out", str(tmp_path), "--models", "T5", "--lengths", "1K", "--configs", "fusemax"]
    assert main(args) == 0
    captured = capsys.readouterr()
    # the ratio figures need unfused, so each is skipped with a note
    assert all(line.startswith("note: skipping ") for line in captured.err.splitlines())
    assert "fusemax" in captured.out
    assert names(tmp_path) == sorted([*CSVS, "utilization.png"])
    for name in CSVS[:2]:
        (result,) = read_results(tmp_path / name)
        assert (result.model, result.seq_len, result.config) == ("T5", 1024, "fusemax")
        assert result.latency_s > 0 and result.energy_pj > 0 and result.dram_bytes > 0
        assert 0 < result.util_2d <= 1 and 0 < result.util_1d <= 1
    # the breakdown holds the cost report's components, and they add up to its energy
    with open(tmp_path / "energy_breakdown.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    (attention,) = read_results(tmp_path / "attention.csv")
    parts = [r for r in rows if r["part"] == "attention"]
    assert [r["component"] for r in parts] == list(
        sweep.attention_report(MODELS["T5"], 1024, "fusemax").energy_breakdown_pj
    )
    assert sum(float(r["energy_pj"]) for r in parts) == pytest.approx(attention.energy_pj)


# -- --arch -------------------------------------------------------------------------------------


def _costed_by_hand(pipeline: str, arch: str) -> tuple[float, float]:
    """(latency, energy in the artifact's accounting) of BERT's attention at 1K tokens after
    `pipeline`, written out here rather than taken from the sweep's templates."""
    from einsum_opt import api

    module = api.load(Path(sweep.__file__).parent / "cascades" / "attention.einsum")
    api.set_rank_sizes(module, sweep.attention_sizes(MODELS["BERT"], 1024))
    api.apply(module, pipeline)
    report = api.cost(module, arch, "artifact")
    return report.latency_s, report.energy_pj


def test_arch_runs_every_configuration_on_that_architecture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--arch edge`: FLAT's and FuseMax's pipelines both map and cost on edge's 32x32 array
    (key tiles of 32), and the CSV holds exactly what those pipelines cost there."""
    args = ["--out", str(tmp_path), "--models", "BERT", "--lengths", "1K", "--configs"]
    assert main([*args, "flat,fusemax", "--arch", "edge", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "every configuration on architecture edge"
    rows = {r.config: r for r in read_results(tmp_path / "attention.csv")}
    flat = _costed_by_hand(
        "map-flat{arch=edge},lower-to-loopnest,lower-to-dataflow{arch=edge}", "edge"
    )
    fusemax = _costed_by_hand(
        "pass-fusion{rank=M tile=32},map-fusemax{arch=edge},lower-to-loopnest,"
        "lower-to-dataflow{arch=edge}",
        "edge",
    )
    for config, (latency, energy) in (("flat", flat), ("fusemax", fusemax)):
        assert rows[config].latency_s == pytest.approx(latency, rel=1e-9)
        assert rows[config].energy_pj == pytest.approx(energy, rel=1e-9)
    # not what the same configurations cost on their own architectures
    own = sweep.attention(MODELS["BERT"], 1024, "fusemax")
    assert own.latency_s < rows["fusemax"].latency_s / 4  # 256x256 against 32x32


def test_arch_file_is_read_and_its_numbers_used(tmp_path: Path) -> None:
    """A YAML architecture of the user's: FuseMax's with a MAC that costs twice as much moves
    the energy of every configuration, and only through compute."""
    import yaml

    from einsum_opt.hardware import load_architecture

    data = yaml.safe_load(load_architecture("fusemax").to_yaml())
    for unit in data["units"].values():
        unit["op_energy_pj"] = {op: 2 * pj for op, pj in unit["op_energy_pj"].items()}
    path = tmp_path / "costly.yaml"
    path.write_text(yaml.safe_dump(data))
    default, costly = (
        sweep.run_sweep(["BERT"], ["1K"], ["fusemax"], arch=arch)[0][0]
        for arch in ("fusemax", str(path))
    )
    assert costly.latency_s == default.latency_s
    before, after = dict(default.energy_breakdown_pj), dict(costly.energy_breakdown_pj)
    assert after["compute"] == pytest.approx(2 * before["compute"], rel=1e-9)
    assert {k: v for k, v in after.items() if k != "compute"} == pytest.approx(
        {k: v for k, v in before.items() if k != "compute"}, rel=1e-9
    )


def test_arch_without_a_vector_unit_is_refused_before_the_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from einsum_opt.hardware import load_architecture

    data = yaml.safe_load(load_architecture("fusemax").to_yaml())
    data["units"] = {k: v for k, v in data["units"].items() if len(v["shape"]) == 2}
    path = tmp_path / "matrix-only.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["--out", str(tmp_path / "out"), "--arch", str(path)]) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: --arch: {path}: ") and "has no unit with a 1D array" in line
    assert not (tmp_path / "out").exists()


def test_a_point_that_cannot_be_mapped_names_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A buffer of 4 KB cannot hold FuseMax's state for one tile of queries: the error names
    the point, the architecture, the pass and the bytes, and nothing is written."""
    import yaml

    from einsum_opt.hardware import load_architecture

    data = yaml.safe_load(load_architecture("fusemax").to_yaml())
    data["storage"]["GLB"]["capacity_bytes"] = 4096
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    args = ["--out", str(tmp_path / "out"), "--models", "BERT", "--lengths", "1K"]
    assert main([*args, "--configs", "flat,fusemax", "--arch", str(path)]) == 1
    line = assert_one_error_line(capsys.readouterr().err)
    assert line.startswith(
        f"error: BERT at 1K tokens, fusemax on {path}: map-fusemax: the state of 256 queries "
        "does not fit the buffer (GLB: "
    )
    assert line.endswith(" bytes needed, 4,096 available)")
    assert not (tmp_path / "out").exists()
