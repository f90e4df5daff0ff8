"""Running a cascade through upstream MLIR: `lower-to-linalg`, then `mlir-opt-22` and
`mlir-runner-22` (`interpreters.mlir_runner`).

```python
outputs = run_cascade_with_mlir(module, {"Q": q}, seed=0)   # {"AV": array}, like run_cascade
```

It takes and returns what the numpy reference interpreter does (`run_cascade`): inputs by
name, missing ones drawn from `seed` exactly as the interpreter draws them, rank sizes
overridden by `ranks` for this run, outputs by name in the cascade's element types (an
iterative output with its extra initial entry). So the two backends can be compared array by
array.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.interpreters.einsum import find_cascade, prepared_inputs, rank_sizes
from einsum_opt.interpreters.einsum_values import ExecutionError
from einsum_opt.interpreters.mlir_runner import run_function
from einsum_opt.interpreters.mlir_tools import MlirTools, find_tools
from einsum_opt.lowering.einsum_to_linalg import ExportError, cascade_to_func


def run_cascade_with_mlir(
    target: ModuleOp | CascadeOp,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    ranks: Mapping[str, int] | None = None,
    seed: int = 0,
    cascade: str | None = None,
    tools: MlirTools | None = None,
) -> dict[str, np.ndarray]:
    """Export the cascade, compile and run it with the MLIR tools; its outputs by name.

    Raises ExecutionError for what the interpreter would refuse (bad inputs, sizes or IR),
    `MlirToolError` when the tools are missing or fail.
    """
    tools = tools or find_tools()
    op = find_cascade(target, cascade)
    sizes = rank_sizes(op, ranks)
    store = prepared_inputs(op, inputs, sizes, seed)
    try:
        fn = cascade_to_func(op, ranks)
    except ExportError as e:
        raise ExecutionError(str(e), e.op) from e
    module = ModuleOp([fn])
    arrays = [store[name] for name, _ in op.inputs()]
    results = run_function(module, op.cascade_name, arrays, tools)
    return dict(zip(op.output_names(), results, strict=True))
