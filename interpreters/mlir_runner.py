"""Running a function of an upstream MLIR module with `mlir-opt-22` and `mlir-runner-22`.

```python
outputs = run_function(module, "attention", [q, k, v])   # numpy arrays in, numpy arrays out
```

The protocol: a generated entry function holds every input as a dense constant (exact: MLIR
reads xDSL's hexadecimal form bit for bit), calls the function, and prints each result with
the runtime's `printMemrefI32`/`printMemrefI64` after reinterpreting its bits as integers
(floats through `arith.bitcast`, 16-bit types widened to i32), so printing loses nothing; the
printed integers are read back into arrays of the result's element type. The module is
compiled with `PIPELINE` (one-shot bufferization, then loops, then LLVM), after `DECOMPOSE`
has turned aggregate ops such as `linalg.softmax` into generics, and run by the JIT.

The tools are `mlir-opt-22` and `mlir-runner-22` on PATH (Debian's `mlir-22-tools`), or the
programs named by `EINSUM_MLIR_OPT` and `EINSUM_MLIR_RUNNER`. The runtime libraries
(`libmlir_runner_utils`, `libmlir_c_runner_utils`, from `libmlir-22`) are looked for in
`EINSUM_MLIR_LIBDIR`, then beside the runner (`../lib` of the resolved program), then in the
usual library folders.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from xdsl.dialects import arith, bufferization, func, memref
from xdsl.dialects.builtin import (
    AnyFloat,
    BFloat16Type,
    DenseIntOrFPElementsAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    MemRefType,
    ModuleOp,
    TensorType,
    UnrankedMemRefType,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Region, SSAValue

from einsum_opt.support.errors import UserError

VERSION = "22"
"""The MLIR release whose tools and syntax the export targets."""

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

LIBRARIES = ("mlir_runner_utils", "mlir_c_runner_utils")
"""The runtime libraries the printing functions live in."""

ENTRY = "einsum_run_main"
"""The generated entry function (a suffix is added if the module already has one)."""


class MlirToolError(UserError):
    """The MLIR tools are missing or failed (the message says which and why)."""


@dataclass(frozen=True)
class MlirTools:
    """Where `mlir-opt`, `mlir-runner` and the runtime libraries are."""

    opt: str
    runner: str
    libraries: tuple[str, ...]


def _program(variable: str, name: str) -> tuple[str, str | None]:
    """The program's name (from the environment variable, else `name`) and its path."""
    wanted = os.environ.get(variable) or name
    return wanted, shutil.which(wanted)


def find_tools() -> MlirTools:
    """The tools and runtime libraries; MlirToolError naming what is missing."""
    opt_name, opt = _program("EINSUM_MLIR_OPT", f"mlir-opt-{VERSION}")
    runner_name, runner = _program("EINSUM_MLIR_RUNNER", f"mlir-runner-{VERSION}")
    missing = [name for name, path in ((opt_name, opt), (runner_name, runner)) if path is None]
    if opt is None or runner is None:
        raise MlirToolError(
            f"the MLIR backend needs {' and '.join(missing)}, not found on PATH (Debian: "
            f"apt-get install mlir-{VERSION}-tools; or name the programs in EINSUM_MLIR_OPT "
            "and EINSUM_MLIR_RUNNER)"
        )
    libraries = []
    for library in LIBRARIES:
        path = _find_library(library, runner)
        if path is None:
            raise MlirToolError(
                f"cannot find lib{library}.so (from libmlir-{VERSION}; set EINSUM_MLIR_LIBDIR "
                "to the folder that holds it)"
            )
        libraries.append(path)
    return MlirTools(opt, runner, tuple(libraries))


def tools_available() -> bool:
    """Whether `find_tools()` succeeds."""
    try:
        find_tools()
    except MlirToolError:
        return False
    return True


def _library_folders(runner: str) -> list[Path]:
    folders = []
    if os.environ.get("EINSUM_MLIR_LIBDIR"):
        folders.append(Path(os.environ["EINSUM_MLIR_LIBDIR"]))
    folders.append(Path(os.path.realpath(runner)).parent.parent / "lib")
    folders.append(Path(f"/usr/lib/llvm-{VERSION}/lib"))
    folders += [Path(p) for p in sorted(glob.glob("/usr/lib/llvm-*/lib"), reverse=True)]
    folders += [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/local/lib"), Path("/usr/lib")]
    return folders


def _find_library(library: str, runner: str) -> str | None:
    for folder in _library_folders(runner):
        for pattern in (f"lib{library}.so", f"lib{library}.so.{VERSION}*", f"lib{library}.so.*"):
            found = sorted(glob.glob(str(folder / pattern)))
            if found:
                return found[0]
    return None


# -- the entry function ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Printed:
    """How a result is printed: as integers of `width` (32 or 64) holding its bits."""

    width: int
    bits: Attribute | None
    """The integer type its bits are reinterpreted as (None: it is an integer already)."""


def _printed(element: Attribute) -> _Printed:
    if isinstance(element, Float32Type):
        return _Printed(32, i32)
    if isinstance(element, Float64Type):
        return _Printed(64, i64)
    if isinstance(element, Float16Type | BFloat16Type):
        return _Printed(32, IntegerType(16))
    if isinstance(element, IntegerType) and element.width.data in (8, 16, 32, 64):
        return _Printed(64 if element.width.data == 64 else 32, None)
    raise MlirToolError(f"the MLIR backend cannot print results of type {element}")


def _as_printable(b: Block, value: SSAValue, element: Attribute, how: _Printed) -> SSAValue:
    """`value` as a tensor of i32 or i64 holding its bits (an elementwise generic)."""
    from xdsl.dialects.linalg.attrs import IteratorTypeAttr
    from xdsl.dialects.linalg.ops import GenericOp
    from xdsl.dialects.linalg.ops import YieldOp as LinalgYieldOp
    from xdsl.dialects.tensor import EmptyOp
    from xdsl.ir.affine import AffineMap

    from einsum_opt.dialects.einsum_map import is_float

    t = value.type
    assert isinstance(t, TensorType)
    shape = list(t.get_shape())
    wide = IntegerType(how.width)
    if element == wide:
        return value
    out_type = TensorType(wide, shape)
    empty = EmptyOp([], out_type)
    b.add_op(empty)
    body = Block(arg_types=[element, wide])
    scalar: SSAValue = body.args[0]
    if how.bits is not None:
        cast = arith.BitcastOp(scalar, how.bits)
        body.add_op(cast)
        scalar = cast.result
    if scalar.type != wide:
        widen = arith.ExtUIOp(scalar, wide) if is_float(element) else arith.ExtSIOp(scalar, wide)
        body.add_op(widen)
        scalar = widen.result
    body.add_op(LinalgYieldOp(scalar))
    identity = AffineMap.identity(len(shape))
    from xdsl.dialects.builtin import AffineMapAttr

    generic = GenericOp(
        [value],
        [empty.tensor],
        Region(body),
        [AffineMapAttr(identity), AffineMapAttr(identity)],
        [IteratorTypeAttr.parallel()] * len(shape),
        [out_type],
    )
    b.add_op(generic)
    return generic.results[0]


def _constant(array: np.ndarray, t: TensorType[Attribute]) -> arith.ConstantOp:
    element = t.element_type
    flat = np.asarray(array).reshape(-1)
    values: list[Any] = (
        [float(x) for x in flat] if isinstance(element, AnyFloat) else [int(x) for x in flat]
    )
    return arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(cast(Any, t), values))


def with_entry(
    module: ModuleOp, function: str, inputs: Sequence[np.ndarray]
) -> tuple[ModuleOp, str, list[_Printed]]:
    """A copy of `module` with an entry function that calls `function` on `inputs` and
    prints its results; returns it, the entry's name and how each result is printed."""
    module = module.clone()
    callee = next(
        (
            op
            for op in module.body.block.ops
            if isinstance(op, func.FuncOp) and op.sym_name.data == function
        ),
        None,
    )
    if callee is None:
        raise MlirToolError(f"the module has no function @{function}")
    names = {op.sym_name.data for op in module.body.block.ops if isinstance(op, func.FuncOp)}
    entry = ENTRY
    while entry in names:
        entry += "_"
    arg_types = list(callee.function_type.inputs.data)
    result_types = list(callee.function_type.outputs.data)
    if len(inputs) != len(arg_types):
        raise MlirToolError(f"@{function} takes {len(arg_types)} inputs, got {len(inputs)}")
    block = Block()
    args = []
    for array, t in zip(inputs, arg_types, strict=True):
        assert isinstance(t, TensorType)
        const = _constant(array, t)
        block.add_op(const)
        args.append(const.result)
    call = func.CallOp(function, args, result_types)
    block.add_op(call)
    printers: set[int] = set()
    printed = []
    for result, t in zip(call.results, result_types, strict=True):
        assert isinstance(t, TensorType)
        how = _printed(t.element_type)
        printed.append(how)
        ints = _as_printable(block, result, t.element_type, how)
        wide = IntegerType(how.width)
        buffer = bufferization.ToBufferOp.build(
            operands=[ints], result_types=[MemRefType(wide, list(t.get_shape()))]
        )
        block.add_op(buffer)
        unranked = memref.CastOp.get(buffer.memref, UnrankedMemRefType.from_type(wide))
        block.add_op(unranked)
        block.add_op(func.CallOp(f"printMemrefI{how.width}", [unranked.dest], []))
        printers.add(how.width)
    block.add_op(func.ReturnOp())
    module.body.block.add_op(func.FuncOp(entry, ([], []), Region(block)))
    for width in sorted(printers):
        unranked_type = UnrankedMemRefType.from_type(IntegerType(width))
        module.body.block.add_op(func.FuncOp.external(f"printMemrefI{width}", [unranked_type], []))
    return module, entry, printed


# -- running and reading back ------------------------------------------------------------------


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
        _run_tool([tools.opt, str(source), *first, *PIPELINE, "-o", str(lowered)], tools.opt)
        out = _run_tool(
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
        _decode(values, shape, t, how)
        for (shape, values), t, how in zip(blocks, result_types, printed, strict=True)
    ]


def _run_tool(command: list[str], program: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as e:
        raise MlirToolError(f"cannot run {program}: {e.strerror or e}") from e
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise MlirToolError(
            f"{Path(program).name} was killed by {name} (e.g. an integer division by zero)"
        )
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "no message")
        raise MlirToolError(f"{Path(program).name} failed (exit status {done.returncode}): {first}")
    return done.stdout


_HEADER = re.compile(r"rank = (\d+) offset = \d+ sizes = \[([^\]]*)\] strides = \[[^\]]*\] data =")
_INTEGER = re.compile(r"-?\d+")


def parse_printed_memrefs(text: str) -> list[tuple[tuple[int, ...], list[int]]]:
    """(shape, integers in row-major order) of every memref `printMemrefI*` printed."""
    blocks = []
    chunks = text.split("Unranked Memref base@")[1:]
    for chunk in chunks:
        header = _HEADER.search(chunk)
        if header is None:
            raise MlirToolError("cannot read the runner's output: no memref header")
        shape = tuple(int(s) for s in header.group(2).replace(" ", "").split(",") if s)
        values = [int(s) for s in _INTEGER.findall(chunk[header.end() :])]
        expected = int(np.prod(shape)) if shape else 1
        if len(values) != expected:
            raise MlirToolError(
                f"cannot read the runner's output: {len(values)} values for shape {list(shape)}"
            )
        blocks.append((shape, values))
    return blocks


def _decode(
    values: list[int], shape: tuple[int, ...], t: TensorType[Attribute], how: _Printed
) -> np.ndarray:
    element = t.element_type
    ints = np.array(values, dtype=np.int64 if how.width == 64 else np.int32).reshape(shape)
    if isinstance(element, Float32Type):
        return ints.view(np.float32)
    if isinstance(element, Float64Type):
        return ints.view(np.float64)
    if isinstance(element, Float16Type):
        return ints.astype(np.uint16).view(np.float16)
    if isinstance(element, BFloat16Type):
        return (ints.astype(np.uint32) << np.uint32(16)).view(np.float32)
    assert isinstance(element, IntegerType)
    return ints.astype(f"int{element.width.data}")
