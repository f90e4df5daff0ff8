"""Compile and cost every point of the evaluation: model x sequence length x configuration.

Each configuration is a pass pipeline over the same 3-pass multi-head attention cascade
(`examples/attention/mha.einsum`, shipped as `cascades/attention.einsum`) and an
architecture; the numbers are the cost model's on the dataflow programs the pipeline produces.
End to end adds one layer's linear Einsums (`examples/transformer/linear.einsum`), mapped on
the 2D array of the same architecture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.costmodel.report import CostReport
from einsum_opt.evaluation.workloads import (
    Model,
    as_length,
    as_model,
    config_named,
    format_length,
)
from einsum_opt.hardware import Architecture, ArchitectureError, load_architecture
from einsum_opt.support.errors import UserError

COLUMNS: tuple[str, ...] = (
    "model",
    "seq_len",
    "config",
    "latency_s",
    "energy_pj",
    "energy_pj_physical",
    "util_2d",
    "util_1d",
    "dram_bytes",
)
"""The columns of `attention.csv` and `end2end.csv`, in order. `energy_pj` is the FuseMax
artifact's accounting (PE registers charged for one instance, as it does), the one the paper
reports; `energy_pj_physical` charges every PE's register accesses."""

ACCOUNTING = "artifact"
"""The cost model's accounting of `energy_pj` (`energy_pj_physical` is `physical`)."""

CASCADES = Path(__file__).resolve().parent / "cascades"
"""Where the attention and linear-layer cascades of the evaluation are."""

FUSE = "pass-fusion{{rank=M tile={key_tile}}}"
"""Derives the 1-pass cascade from the 3-pass one, with key tiles as wide as the 2D array."""


@dataclass(frozen=True)
class Configuration:
    """How one configuration compiles attention: its pass pipeline (a template over the
    architecture's option value `{arch}` and its 2D array's width `{key_tile}`) and the
    architecture it runs on unless the sweep is given another."""

    name: str
    template: str
    arch: str
    description: str

    def pipeline(self, arch: str | None = None) -> str:
        """The pass pipeline on `arch` (a built-in name or a YAML path; None: its own)."""
        chosen = arch or self.arch
        return self.template.format(arch=option_value(chosen), key_tile=key_tile(chosen))


CONFIGURATIONS: dict[str, Configuration] = {
    c.name: c
    for c in (
        Configuration(
            "unfused",
            "map-unfused{{arch={arch}}},lower-to-loopnest,lower-to-dataflow{{arch={arch}}}",
            "flat",
            "3-pass; QK and AV on the 2D array, the softmax on the 1D array, kernels through DRAM",
        ),
        Configuration(
            "flat",
            "map-flat{{arch={arch}}},lower-to-loopnest,lower-to-dataflow{{arch={arch}}}",
            "flat",
            "3-pass fused through the global buffer at the largest row block that fits",
        ),
        Configuration(
            "cascade",
            f"{FUSE},map-fusemax{{{{arch={{arch}} binding=matmul}}}},lower-to-loopnest,"
            "lower-to-dataflow{{arch={arch}}}",
            "flat",
            "1-pass on FLAT's hardware: only the contractions on the 2D array",
        ),
        Configuration(
            "architecture",
            f"{FUSE},map-fusemax{{{{arch={{arch}}}}}},lower-to-loopnest,"
            "lower-to-dataflow{{arch={arch} overlap=false}}",
            "fusemax",
            "1-pass on FuseMax's hardware and binding, one tile at a time",
        ),
        Configuration(
            "fusemax",
            f"{FUSE},map-fusemax{{{{arch={{arch}}}}}},lower-to-loopnest,"
            "lower-to-dataflow{{arch={arch}}}",
            "fusemax",
            "1-pass on FuseMax's hardware and binding, tiles interleaved",
        ),
        Configuration(
            "searched",
            f"{FUSE},map-search{{{{arch={{arch}} objective=latency budget=20 workers=1}}}},"
            "lower-to-loopnest,lower-to-dataflow{{arch={arch}}}",
            "fusemax",
            "1-pass on FuseMax's hardware, mapped by map-search",
        ),
    )
}
"""Each configuration of `workloads.ALL_CONFIGS` by name."""

LINEAR_PIPELINE = "map-unfused{{arch={arch}}},lower-to-loopnest,lower-to-dataflow{{arch={arch}}}"
"""The linear layers: every contraction on the 2D array of the configuration's architecture."""


def option_value(arch: str) -> str:
    """`arch` as a pass option value: a built-in name as it is, a path quoted."""
    return arch if arch.isidentifier() else '"' + arch.replace('"', '\\"') + '"'


@cache
def _architecture(arch: str) -> Architecture:
    return load_architecture(arch)


def key_tile(arch: str) -> int:
    """The key tile of the 1-pass cascade on `arch`: its 2D array's PEs along axis 1."""
    matrix = _architecture(arch).units_with_axes(2)
    return _architecture(arch).unit(matrix[0]).shape[1] if matrix else 1


def check_architecture(arch: str) -> None:
    """Raise `ArchitectureError` unless `arch` names a usable architecture (built-in or
    file) with a 2D and a 1D array, as every configuration needs."""
    loaded = _architecture(arch)
    for axes, what in ((2, "a 2D array"), (1, "a 1D array")):
        if not loaded.units_with_axes(axes):
            raise ArchitectureError(
                f"architecture '{loaded.name}' has no unit with {what}, which the "
                "evaluation's configurations map onto",
                source=arch,
            )


@dataclass(frozen=True)
class Result:
    """One point of the sweep (one CSV row)."""

    model: str
    seq_len: int
    config: str
    latency_s: float
    energy_pj: float
    energy_pj_physical: float
    util_2d: float
    util_1d: float
    dram_bytes: int
    energy_breakdown_pj: tuple[tuple[str, float], ...] = ()
    """Energy by component (the cost report's `energy_breakdown_pj`), in its order; not a CSV
    column of `attention.csv` or `end2end.csv`."""

    def row(self) -> dict[str, object]:
        """The CSV row, keyed by `COLUMNS`."""
        return {c: getattr(self, c) for c in COLUMNS}


@cache
def _source(name: str) -> ModuleOp:
    from einsum_opt import api

    return api.load(CASCADES / name)


def compile_and_cost(
    source: str, sizes: dict[str, int], pipeline: str, arch: str
) -> tuple[CostReport, CostReport]:
    """The cost reports of cascade file `source` (in `CASCADES`) at `sizes` after `pipeline`,
    in the artifact's accounting and in the physical one."""
    from einsum_opt import api

    module = _source(source).clone()
    api.set_rank_sizes(module, sizes)
    api.apply(module, pipeline)
    return api.cost(module, arch, ACCOUNTING), api.cost(module, arch, "physical")


def attention_sizes(model: Model, seq_len: int) -> dict[str, int]:
    """Rank sizes of multi-head attention for `model` at `seq_len` tokens (M = P)."""
    return {
        "B": model.batch,
        "H": model.heads,
        "E": model.e,
        "F": model.f,
        "M": seq_len,
        "P": seq_len,
    }


def linear_sizes(model: Model, seq_len: int) -> dict[str, int]:
    """Rank sizes of the linear layers for `model` at `seq_len` tokens."""
    return {
        "B": model.batch,
        "P": seq_len,
        "D": model.d_model,
        "N": model.e * model.heads,
        "NV": model.f * model.heads,
        "S": model.ffn,
    }


def _result(
    model: Model, seq_len: int, config: str, reports: tuple[CostReport, CostReport], arch: str
) -> Result:
    report, physical = reports
    loaded = _architecture(arch)
    matrix = loaded.units_with_axes(2)
    vector = loaded.units_with_axes(1)
    return Result(
        model.name,
        seq_len,
        config,
        report.latency_s,
        report.energy_pj,
        physical.energy_pj,
        report.utilization.get(matrix[0], 0.0) if matrix else 0.0,
        report.utilization.get(vector[0], 0.0) if vector else 0.0,
        report.dram_bytes,
        tuple(report.energy_breakdown_pj.items()),
    )


def attention_reports(
    model: Model, seq_len: int, config: str, arch: str | None = None
) -> tuple[CostReport, CostReport]:
    """The cost reports (artifact and physical accounting) of attention for one point, on
    `config`'s architecture or on `arch`."""
    c = CONFIGURATIONS[config]
    sizes = attention_sizes(model, seq_len)
    return compile_and_cost("attention.einsum", sizes, c.pipeline(arch), arch or c.arch)


def attention_report(
    model: Model, seq_len: int, config: str, arch: str | None = None
) -> CostReport:
    """The cost report of attention for one point, in the artifact's accounting."""
    return attention_reports(model, seq_len, config, arch)[0]


def linear_reports(
    model: Model, seq_len: int, config: str, arch: str | None = None
) -> tuple[CostReport, CostReport]:
    """The cost reports (artifact and physical) of the linear layers on `config`'s
    architecture or on `arch` (the same for every configuration on one architecture)."""
    return _linear_reports(model, seq_len, arch or CONFIGURATIONS[config].arch)


@cache
def _linear_reports(model: Model, seq_len: int, arch: str) -> tuple[CostReport, CostReport]:
    pipeline = LINEAR_PIPELINE.format(arch=option_value(arch))
    return compile_and_cost("linear.einsum", linear_sizes(model, seq_len), pipeline, arch)


def linear_report(
    model: Model, seq_len: int, config: str, arch: str | None = None
) -> CostReport:
    """The cost report of the linear layers, in the artifact's accounting."""
    return linear_reports(model, seq_len, config, arch)[0]


def attention(model: Model, seq_len: int, config: str, arch: str | None = None) -> Result:
    """Multi-head attention of `model` at `seq_len` tokens under `config` (on `arch`)."""
    reports = attention_reports(model, seq_len, config, arch)
    return _result(model, seq_len, config, reports, arch or CONFIGURATIONS[config].arch)


def combine(first: Result, second: Result) -> Result:
    """Two results run one after another: latencies, energies and traffic add; utilisation
    is weighted by latency."""
    latency = first.latency_s + second.latency_s

    def util(a: float, b: float) -> float:
        return (a * first.latency_s + b * second.latency_s) / latency if latency else 0.0

    return Result(
        first.model,
        first.seq_len,
        first.config,
        latency,
        first.energy_pj + second.energy_pj,
        first.energy_pj_physical + second.energy_pj_physical,
        util(first.util_2d, second.util_2d),
        util(first.util_1d, second.util_1d),
        first.dram_bytes + second.dram_bytes,
        add_breakdowns(first.energy_breakdown_pj, second.energy_breakdown_pj),
    )


def add_breakdowns(
    first: Sequence[tuple[str, float]], second: Sequence[tuple[str, float]]
) -> tuple[tuple[str, float], ...]:
    """Two energy breakdowns added component by component (in order of first appearance)."""
    total: dict[str, float] = {}
    for component, pj in (*first, *second):
        total[component] = total.get(component, 0.0) + pj
    return tuple(total.items())


def point(
    model: Model, seq_len: int, config: str, arch: str | None = None
) -> tuple[Result, Result]:
    """(attention, end to end) of `model` at `seq_len` tokens under `config` (on `arch`, else
    the configuration's architecture): attention is compiled once and the linear layers
    added to it."""
    att = attention(model, seq_len, config, arch)
    chosen = arch or CONFIGURATIONS[config].arch
    linear = _result(model, seq_len, config, linear_reports(model, seq_len, config, arch), chosen)
    return att, combine(att, linear)


def end_to_end(model: Model, seq_len: int, config: str, arch: str | None = None) -> Result:
    """Attention plus one layer's linear Einsums of `model` at `seq_len` tokens."""
    return point(model, seq_len, config, arch)[1]


def run_sweep(
    models: Sequence[Model | str],
    lengths: Sequence[int | str],
    configs: Sequence[str],
    on_point: Callable[[], None] | None = None,
    arch: str | None = None,
) -> tuple[list[Result], list[Result]]:
    """(attention results, end-to-end results), one per model x length x config, in that
    nesting order; `on_point` is called after each (attention, end-to-end) pair is done.
    `arch` (a built-in name or a YAML path) runs every configuration on that architecture
    instead of its own (`ArchitectureError` if it cannot be used); a point that cannot be
    compiled there raises `UserError` naming it.

    Models are `Model`s or built-in names (`"BERT"`, any case), lengths integers or strings
    such as `"64K"`, configurations names (any case): `run_sweep(["BERT"], ["1K"], ["flat"])`.
    ValueError for an unknown name or a bad length."""
    resolved_models = [as_model(m) for m in models]
    resolved_lengths = [as_length(n) for n in lengths]
    resolved_configs = [config_named(c) for c in configs]
    _architecture.cache_clear()  # a YAML file may have changed since the last sweep
    _linear_reports.cache_clear()
    if arch is not None:
        check_architecture(arch)
    attention_results: list[Result] = []
    end2end_results: list[Result] = []
    for model in resolved_models:
        for seq_len in resolved_lengths:
            for config in resolved_configs:
                try:
                    att, whole = point(model, seq_len, config, arch)
                except (PassFailedException, UserError, ArchitectureError) as error:
                    where = f"{model.name} at {format_length(seq_len)} tokens, {config}"
                    on = f" on {arch}" if arch is not None else ""
                    raise UserError(f"{where}{on}: {error}") from None
                attention_results.append(att)
                end2end_results.append(whole)
                if on_point is not None:
                    on_point()
    return attention_results, end2end_results
