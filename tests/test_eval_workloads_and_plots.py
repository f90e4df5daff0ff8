"""einsum-eval's user workloads (`--models FILE.yaml`), `run_sweep` with names, and what the
figures show: the baseline line at 1 in the legend, values on the bars, the FLAT-normalised
views, energy on a linear axis, the energy breakdown read from the results, SVG and PDF."""

from __future__ import annotations

from pathlib import Path

import pytest

from einsum_opt.evaluation import plots, sweep
from einsum_opt.evaluation.model_file import load_models, parse_models
from einsum_opt.evaluation.sweep import Result, attention_sizes, linear_sizes, run_sweep
from einsum_opt.evaluation.workloads import MODELS, Model
from einsum_opt.support.errors import UserError
from einsum_opt.tools.einsum_eval import main

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILE = ROOT / "examples" / "transformer" / "models.yaml"


# -- workloads -----------------------------------------------------------------------------


def test_the_example_model_file() -> None:
    gpt2, mla = load_models(MODEL_FILE)
    assert gpt2 == Model("GPT2", 768, 12, 64, 3072, batch=8)
    assert (mla.e, mla.f, mla.heads, mla.batch) == (192, 128, 128, 1)
    assert attention_sizes(mla, 4096) == {
        "B": 1,
        "H": 128,
        "E": 192,
        "F": 128,
        "M": 4096,
        "P": 4096,
    }
    assert linear_sizes(mla, 4096) == {
        "B": 1,
        "P": 4096,
        "D": 5120,
        "N": 192 * 128,
        "NV": 128 * 128,
        "S": 12288,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "GPT2: {d_model: 768, heads: many, E: 64, ffn: 3072}",
            "m.yaml: GPT2.heads: expected a positive integer, got 'many'",
        ),
        (
            "GPT2: {d_model: 768, heads: 12, ffn: 3072}",
            "m.yaml: GPT2.E: missing (a positive integer)",
        ),
        (
            "GPT2: {d_model: 768, heads: 12, E: 64, ffn: 3072, layers: 2}",
            "m.yaml: GPT2.layers: unknown field (known: d_model, heads, E, ffn, F, batch)",
        ),
        (
            "GPT2: {d_model: 768, heads: 12, E: 64, ffn: 3072, batch: 0}",
            "m.yaml: GPT2.batch: expected a positive integer, got 0",
        ),
        (
            "GPT2: {d_model: 768, heads: 12, E: 64, ffn: 3072, F: true}",
            "m.yaml: GPT2.F: expected a positive integer, got True",
        ),
        ("GPT2: [768, 12]", "m.yaml: GPT2: expected the model's fields"),
        ("- GPT2", "m.yaml: expected a mapping from model names to their fields"),
        ("GPT2: {d_model: [", "m.yaml:1:18: error: not valid YAML"),
    ],
)
def test_model_files_are_checked_field_by_field(text: str, message: str) -> None:
    with pytest.raises(UserError) as error:
        parse_models(text, "m.yaml")
    assert str(error.value).startswith(message), str(error.value)


def test_models_from_files_and_names_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[Model]] = []

    def fake(models, lengths, configs, on_point=None, arch=None):  # type: ignore[no-untyped-def]
        calls.append(list(models))
        return [], []

    monkeypatch.setattr(sweep, "run_sweep", fake)
    args = ["--out", str(tmp_path / "out"), "--lengths", "1K", "--no-plots"]
    assert main([*args, "--models", f"bert,{MODEL_FILE}"]) == 0
    assert [m.name for m in calls[-1]] == ["BERT", "GPT2", "MLA"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("X: {d_model: 1, heads: 1, E: 1, ffn: -1}\n")
    assert main([*args, "--models", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: {bad}: X.ffn: expected a positive integer, got -1\n"
    assert main([*args, "--models", str(tmp_path / "missing.yaml")]) == 1
    assert "error: --models: cannot read" in capsys.readouterr().err


def test_run_sweep_takes_names_and_length_strings() -> None:
    by_name = run_sweep(["bert"], ["1K"], ["FLAT"])
    by_value = run_sweep([MODELS["BERT"]], [1024], ["flat"])
    assert by_name == by_value and len(by_name[0]) == 1
    with pytest.raises(ValueError, match="unknown model 'gpt'"):
        run_sweep(["gpt"], ["1K"], ["flat"])
    with pytest.raises(ValueError, match="'4G' is not a length"):
        run_sweep(["BERT"], ["4G"], ["flat"])
    with pytest.raises(ValueError, match="unknown configuration 'fast'"):
        run_sweep(["BERT"], [1024], ["fast"])


def test_results_carry_the_cost_reports_energy_breakdown() -> None:
    (attention,), (whole,) = run_sweep(["T5"], ["1K"], ["flat"])
    report = sweep.attention_report(MODELS["T5"], 1024, "flat")
    assert attention.energy_breakdown_pj == tuple(report.energy_breakdown_pj.items())
    assert sum(pj for _, pj in whole.energy_breakdown_pj) == pytest.approx(whole.energy_pj)


# -- figures -------------------------------------------------------------------------------


def result(model: str, n: int, config: str, latency: float, parts: dict[str, float]) -> Result:
    energy = sum(parts.values())
    return Result(model, n, config, latency, energy, 1.1 * energy, 0.5, 0.5, 1, tuple(parts.items()))


RESULTS = [
    result("BERT", n, config, latency / n, {"compute": 6.0 * k, "spill": 1.0 * k, "zero": 0.0})
    for n in (1024, 4096)
    for config, latency, k in (
        ("unfused", 12.0, 3.0),
        ("flat", 6.0, 2.0),
        ("fusemax", 1.0, 1.5),
    )
]


def texts(figure: object) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]  # type: ignore[attr-defined]


def test_speedups_show_the_baseline_at_1_and_values_on_the_bars() -> None:
    (spec,) = [f for f in plots.RATIO_FIGURES if f.stem == "attention_speedup"]
    figure = plots.ratio_figure(RESULTS, spec)
    ax = figure.axes[0]
    assert ax.get_yscale() == "log"
    lines = [line for line in ax.get_lines() if list(line.get_ydata()) == [1.0, 1.0]]
    assert len(lines) == 1 and lines[0].get_label() == "Unfused (= 1)"
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["Unfused (= 1)", "FLAT", "FuseMax"]
    assert ax.get_ylim()[0] < 1 < ax.get_ylim()[1]
    assert sorted(texts(figure)) == sorted(["2.00", "2.00", "12.0", "12.0"])


def test_the_flat_view_and_energy_on_a_linear_axis() -> None:
    specs = {f.stem: f for f in plots.RATIO_FIGURES}
    flat = plots.ratio_figure(RESULTS, specs["attention_speedup_vs_flat"])
    assert [t.get_text() for t in flat.legends[0].get_texts()] == [
        "FLAT (= 1)",
        "Unfused",
        "FuseMax",
    ]
    assert sorted(texts(flat)) == ["0.50", "0.50", "6.00", "6.00"]
    energy = plots.ratio_figure(RESULTS, specs["attention_energy_vs_flat"])
    assert energy.axes[0].get_yscale() == "linear" and energy.axes[0].get_ylim()[0] == 0
    assert sorted(texts(energy)) == ["0.75", "0.75", "1.50", "1.50"]
    assert "relative to FLAT" in energy.get_suptitle()


def test_the_energy_breakdown_reads_its_components_from_the_results() -> None:
    figure = plots.breakdown_figure(RESULTS, plots.BREAKDOWN_CONFIGS)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["compute", "spill", "FLAT", "FuseMax"]  # "zero" is zero everywhere
    assert sorted(t.strip() for t in texts(figure)) == ["0.75", "0.75", "1.00", "1.00"]
    heights = sorted(round(p.get_height(), 6) for p in figure.axes[0].patches)
    flat, fusemax = 12 + 2, 9 + 1.5  # compute + spill at each length, relative to FLAT's 14
    expected = [12 / flat, 2 / flat, 9 / flat, 1.5 / flat] * 2
    assert heights == sorted(round(h, 6) for h in expected)
    assert fusemax / flat == 0.75


def test_svg_and_pdf_output(tmp_path: Path) -> None:
    written = plots.write_plots(RESULTS, RESULTS, tmp_path, formats=("svg", "pdf"), note=print)
    assert {p.suffix for p in written} == {".svg", ".pdf"}
    assert len(written) == 2 * len(plots.FIGURES)
    for path in written:
        head = path.read_bytes()[:64]
        assert (
            head.startswith(b"%PDF")
            if path.suffix == ".pdf"
            else b"<svg" in path.read_bytes()[:600] or b"<?xml" in head
        )
    # no dates, versions or random ids: the same results give the same files
    again = plots._save(plots.utilization_figure(RESULTS), tmp_path / "again.svg", "svg")
    assert again.read_bytes() == (tmp_path / "utilization.svg").read_bytes()


def test_plot_format_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--plot-format", "gif"]) == 1
    assert capsys.readouterr().err == (
        "error: --plot-format: unknown figure format 'gif' (choose from png, svg, pdf)\n"
    )
