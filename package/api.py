"""The Python API in one place: load or parse cascades, run pass pipelines, count passes, execute.

```python
from einsum_opt import api

module = api.load("examples/attention/3pass.einsum")
before = module.clone()
api.apply(module, "pass-fusion{rank=M tile=256},count-passes")
api.passes(module)                        # {"E": 1, "F": 1, "P": 1, "M0": 2, "M1": 1}
out = api.run(module, seed=0)             # {"AV": array}
api.run(module, seed=0, backend="mlir")   # the same through mlir-opt-22 / mlir-runner-22
api.check_equivalent(before, module)      # raises if the outputs differ
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.costmodel.report import CostReport
from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.frontends.loading import LOADERS, load_file, make_context
from einsum_opt.hardware.architecture import Architecture
from einsum_opt.interpreters.einsum import random_inputs, run_cascade
from einsum_opt.transforms import get_all_passes
from einsum_opt.transforms.count_passes import count_passes
from einsum_opt.transforms.pass_options import parse_passes
from einsum_opt.transforms.set_ranks import set_rank_sizes

__all__ = [
    "apply",
    "check_equivalent",
    "cost",
    "load",
    "parse",
    "passes",
    "random_inputs",
    "run",
    "set_rank_sizes",
]


def load(path: str | Path) -> ModuleOp:
    """Read a `.mlir` or `.einsum` file into a verified module."""
    return load_file(path)


def parse(text: str, kind: str = "mlir", name: str = "<string>") -> ModuleOp:
    """Parse MLIR text (`kind="mlir"`) or the notation (`kind="einsum"`) into a verified module."""
    module = LOADERS[kind](text, name, None)
    module.verify()
    return module


def apply(module: ModuleOp, pipeline: str | Sequence[ModulePass]) -> ModuleOp:
    """Run a pipeline (`"split-rank{rank=M tile=64},fuse-max-sum"` or pass objects) in place,
    verifying after every pass; returns the module."""
    if isinstance(pipeline, str):
        passes = parse_passes(pipeline, get_all_passes())
    else:
        passes = tuple(pipeline)
    ctx = make_context()
    for p in passes:
        p.apply(ctx, module)
        module.verify()
    return module


def passes(target: ModuleOp | CascadeOp, cascade: str | None = None) -> dict[str, int]:
    """Passes over each rank of a cascade (computed now, not read from an attribute)."""
    found = [c for c in cascades_in(target) if cascade in (None, c.cascade_name)]
    if len(found) != 1:
        raise ValueError(f"expected one cascade{f' named {cascade}' if cascade else ''}")
    return count_passes(found[0])


def run(
    target: ModuleOp | CascadeOp,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    seed: int = 0,
    ranks: Mapping[str, int] | None = None,
    cascade: str | None = None,
    backend: str = "numpy",
) -> dict[str, np.ndarray]:
    """Execute a cascade (missing inputs are random) with the numpy reference interpreter, or
    with `backend="mlir"` exported to upstream MLIR and run by mlir-opt-22 / mlir-runner-22."""
    if backend == "mlir":
        from einsum_opt.lowering.mlir_execution import run_cascade_with_mlir

        return run_cascade_with_mlir(target, inputs, ranks=ranks, seed=seed, cascade=cascade)
    if backend != "numpy":
        raise ValueError(f"unknown backend '{backend}' (known: numpy, mlir)")
    return run_cascade(target, inputs, ranks=ranks, seed=seed, cascade=cascade)


def check_equivalent(
    before: ModuleOp,
    after: ModuleOp,
    *,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Execute both on the same seeded adversarial inputs (normal, large, constant rows,
    -inf masks); raise `UserError` if any output differs. The default tolerance follows each
    output's element type (`interpreters.equivalence.DEFAULT_TOLERANCE`)."""
    from einsum_opt.interpreters.equivalence import check_equivalence

    check_equivalence(before, after, seed, rtol, atol, report=lambda line: None)


def cost(
    module: ModuleOp, arch: str | Architecture | None = None, accounting: str = "physical"
) -> CostReport:
    """The cost report of the module's dataflow programs (run `lower-to-dataflow` first) on
    `arch`: a built-in architecture name, the path of a YAML file or an `Architecture`; None
    (the default) costs them on the architecture they were lowered for, and another one warns
    (`UserWarning`) or, lacking their levels or units, raises `UserError`.
    `accounting="artifact"` charges storage for one instance per level, as the FuseMax
    artifact does (its PE registers), `physical` every instance."""
    import warnings

    from einsum_opt.costmodel.costing import cost_programs

    return cost_programs(module, arch, accounting, lambda m: warnings.warn(m, stacklevel=2))
