"""Running a function of an upstream MLIR module with `mlir-opt-22` and `mlir-runner-22`.

```python
outputs = run_function(module, "attention", [q, k, v])   # numpy arrays in, numpy arrays out
```

An entry function feeds the function its inputs and prints its results (`mlir_entry`); the
module is compiled with `PIPELINE` (one-shot bufferization, then loops, then LLVM), after
`DECOMPOSE` has turned `linalg.softmax` into generics, and run by the JIT of `mlir-runner-22`
(`mlir_tools` finds the programs).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType

from einsum_opt.interpreters.mlir_entry import decode, parse_printed_memrefs, with_entry
from einsum_opt.interpreters.mlir_tools import MlirToolError, MlirTools, find_tools, run_tool

__all__ = ["DECOMPOSE", "PIPELINE", "run_function"]

PIPELINE = (
    "--one-shot-bufferize=bufferize-function-boundaries allow-return-allocs-from-loops",
    "--buffer-deallocation-pipeline",
    "--convert-bufferization-to-memref",
    "--convert-linalg-to-loops",
    "--expand-strided-metadata",
    "--lower-affine",
    "--convert-scf-to-cf",
    "--convert-to-llvm",
    "--reconcile-unrealized-casts",
)
"""The `mlir-opt` passes from tensors to the LLVM dialect."""

DECOMPOSE = """module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(%root: !transform.any_op {transform.readonly}) {
    %ops = transform.structured.match ops{["linalg.softmax"]} in %root
        : (!transform.any_op) -> !transform.any_op
    %parts = transform.structured.decompose_interface %ops
        : (!transform.any_op) -> !transform.any_op
    transform.yield
  }
}
"""
"""A transform script decomposing `linalg.softmax` into generics, run by
`--transform-interpreter` before `PIPELINE` (the export itself makes none)."""


def run_function(
    module: ModuleOp, function: str, inputs: Sequence[np.ndarray], tools: MlirTools | None = None
) -> list[np.ndarray]:
    """Compile and run `function` of `module` (funcs on tensors) on `inputs`; its results as
    numpy arrays (bf16 as float32 arrays holding bfloat16 values)."""
    tools = tools or find_tools()
    program, entry, printed = with_entry(module, function, inputs)
    callee = next(
        op
        for op in program.body.block.ops
        if isinstance(op, func.FuncOp) and op.sym_name.data == function
    )
    result_types = [t for t in callee.function_type.outputs.data if isinstance(t, TensorType)]
    with tempfile.TemporaryDirectory(prefix="einsum-mlir-") as folder:
        source = Path(folder) / "program.mlir"
        lowered = Path(folder) / "lowered.mlir"
        decompose = Path(folder) / "decompose.mlir"
        source.write_text(str(program))
        decompose.write_text(DECOMPOSE)
        first = [f"--transform-preload-library=transform-library-paths={decompose}"]
        first.append("--transform-interpreter")
        run_tool([tools.opt, str(source), *first, *PIPELINE, "-o", str(lowered)], tools.opt)
        out = run_tool(
            [
                tools.runner,
                str(lowered),
                "-e",
                entry,
                "-entry-point-result=void",
                f"-shared-libs={','.join(tools.libraries)}",
            ],
            tools.runner,
        )
    blocks = parse_printed_memrefs(out)
    if len(blocks) != len(result_types):
        raise MlirToolError(
            f"{Path(tools.runner).name} printed {len(blocks)} results, expected {len(result_types)}"
        )
    return [
        decode(values, shape, t, how)
        for (shape, values), t, how in zip(blocks, result_types, printed, strict=True)
    ]
