"""Capture the loop structures of real nests for the batch analysis' tests and benchmark:
the nests map-search analyses in a short search of the 1-pass attention cascade (BERT at 4K
tokens on FuseMax: as they are, a dimension per piece of a split rank, and with the pieces
folded back into one dimension so that its loops factorize freely), and the
nests of the Timeloop cases (examples/timeloop and ../shared/corpus/timeloop, as imported,
and as map-search analyses them on the mapper input examples/timeloop/gemm-mapper).
Writes tests/data/nest_structures.json.

Run: `.venv/bin/python benchmarks/capture_nest_structures.py`
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import nest_structures  # noqa: E402
from map_search_speed import attention  # noqa: E402

import einsum_opt.transforms.map_search.nest_eval as nest_eval  # noqa: E402
from einsum_opt.costmodel.nest_analysis_batch import loop_slots  # noqa: E402
from einsum_opt.costmodel.nest_spec import NestSpec  # noqa: E402
from einsum_opt.costmodel.timeloop_import import to_nest_spec  # noqa: E402
from einsum_opt.dialects.einsum import cascades_in  # noqa: E402
from einsum_opt.frontends.timeloop_spec import load_timeloop_spec  # noqa: E402
from einsum_opt.hardware import load_architecture  # noqa: E402
from einsum_opt.transforms.map_search.candidates import Problem, Worker, module_text  # noqa: E402
from einsum_opt.transforms.map_search.constraints import Constraints  # noqa: E402
from einsum_opt.transforms.map_search.parallel import InProcess  # noqa: E402
from einsum_opt.transforms.map_search.search import Search  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "timeloop"


def captured(run: object) -> list[NestSpec]:
    """The specs map-search's nest evaluator analyses while `run()` runs."""
    specs: list[NestSpec] = []
    original = nest_eval.analyze

    def recording(spec: NestSpec, **options: bool):  # type: ignore[no-untyped-def]
        specs.append(spec)
        return original(spec, **options)

    nest_eval.analyze = recording
    try:
        run()  # type: ignore[operator]
    finally:
        nest_eval.analyze = original
    return specs


def attention_search() -> None:
    module = attention(4096)
    arch = load_architecture("fusemax")
    problem = Problem(module_text(module), 0, arch.to_yaml(), Constraints(), "latency")
    worker = Worker(problem, cascades_in(module)[0])
    Search(worker.space, InProcess(worker), "latency", 4, 0).run()


def timeloop_search() -> None:
    """map-search on a Timeloop mapper input, through the command line users run."""
    case = ROOT / "examples" / "timeloop" / "gemm-mapper" / "input.yaml"
    tables = ROOT / "examples" / "timeloop" / "gemm"
    sys.argv = ["einsum-opt", str(case), "--ert", str(tables / "ERT.yaml"), "--art"]
    sys.argv += [str(tables / "ART.yaml"), "-p", "map-search{objective=edp budget=2 workers=1}"]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_module("einsum_opt.tools.einsum_opt", run_name="__main__")
        except SystemExit as done:
            assert not done.code, done.code


def structure(spec: NestSpec) -> tuple[object, ...]:
    """What the batch analysis takes as fixed."""
    return (
        tuple(sorted(spec.dims.items())),
        spec.tensors,
        tuple(
            (lv.name, lv.mesh_x, lv.mesh_y, lv.keep, tuple((lp.dim, lp.axis) for lp in lv.loops))
            for lv in spec.levels
        ),
    )


def freedom(spec: NestSpec) -> int:
    """Loop slots beyond one per dimension: how freely the extents factorize."""
    slots = loop_slots(spec)
    return len(slots) - len({slot.dim for slot in slots})


def pick(specs: list[NestSpec], count: int) -> list[NestSpec]:
    """`count` distinct structures, the most freely factorizable first."""
    unique: dict[tuple[object, ...], NestSpec] = {}
    for spec in specs:
        unique.setdefault(structure(spec), spec)
    ranked = sorted(unique.values(), key=lambda s: (-freedom(s), -len(loop_slots(s))))
    return ranked[:count]


def main() -> None:
    split = captured(attention_search)
    attention_specs = [nest_structures.fold_split_dims(s) for s in split]
    searched = [nest_structures.fold_split_dims(s) for s in captured(timeloop_search)]
    timeloop_specs = []
    cases = [ROOT / "examples" / "timeloop" / "gemm", *sorted(CORPUS.glob("0*"))]
    for case in cases:
        if (case / "input.yaml").exists():
            ert, art = case / "ERT.yaml", case / "ART.yaml"
            spec = load_timeloop_spec(
                case / "input.yaml", ert if ert.exists() else None, art if art.exists() else None
            )
            timeloop_specs.append(to_nest_spec(spec))
    data = {
        "attention": [nest_structures.to_json(s) for s in pick(attention_specs, 8)],
        "attention-split": [
            nest_structures.to_json(s)
            for s in pick([s for s in split if nest_structures.has_digit_groups(s)], 6)
        ],
        "timeloop-search": [nest_structures.to_json(s) for s in pick(searched, 4)],
        "timeloop": [nest_structures.to_json(s) for s in pick(timeloop_specs, 10)],
    }
    nest_structures.STORED.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{nest_structures.STORED}:", ", ".join(f"{len(v)} {k}" for k, v in data.items()))


if __name__ == "__main__":
    main()
