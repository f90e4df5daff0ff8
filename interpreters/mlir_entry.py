"""The protocol between einsum-opt and `mlir-runner-22`: an entry function that feeds a
function its inputs as constants and prints its results, and the reading back of what it
prints.

Every input is a dense constant (exact: MLIR reads xDSL's hexadecimal form bit for bit). Each
result is printed with the runtime's `printMemrefI32`/`printMemrefI64` after its bits are
reinterpreted as integers (floats through `arith.bitcast`, 16-bit types widened to i32), so
printing loses nothing (`printMemrefF32` keeps 6 digits); the printed integers are read back
into arrays of the result's element type.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from xdsl.dialects import arith, bufferization, func, memref
from xdsl.dialects.builtin import (
    AffineMapAttr,
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
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.dialects.linalg.ops import YieldOp as LinalgYieldOp
from xdsl.dialects.tensor import EmptyOp
from xdsl.ir import Attribute, Block, Region, SSAValue
from xdsl.ir.affine import AffineMap

from einsum_opt.dialects.einsum_map import is_float
from einsum_opt.interpreters.mlir_tools import MlirToolError

ENTRY = "einsum_run_main"
"""The generated entry function (a suffix is added if the module already has one)."""


@dataclass(frozen=True)
class Printed:
    """How a result is printed: as integers of `width` (32 or 64) holding its bits."""

    width: int
    bits: Attribute | None
    """The integer type its bits are reinterpreted as (None: it is an integer already)."""


def _printed(element: Attribute) -> Printed:
    if isinstance(element, Float32Type):
        return Printed(32, i32)
    if isinstance(element, Float64Type):
        return Printed(64, i64)
    if isinstance(element, Float16Type | BFloat16Type):
        return Printed(32, IntegerType(16))
    if isinstance(element, IntegerType) and element.width.data in (8, 16, 32, 64):
        return Printed(64 if element.width.data == 64 else 32, None)
    raise MlirToolError(f"the MLIR backend cannot print results of type {element}")


def _as_printable(b: Block, value: SSAValue, element: Attribute, how: Printed) -> SSAValue:
    """`value` as a tensor of i32 or i64 holding its bits (an elementwise generic)."""
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
        bitcast = arith.BitcastOp(scalar, how.bits)
        body.add_op(bitcast)
        scalar = bitcast.result
    if scalar.type != wide:
        widen = arith.ExtUIOp(scalar, wide) if is_float(element) else arith.ExtSIOp(scalar, wide)
        body.add_op(widen)
        scalar = widen.result
    body.add_op(LinalgYieldOp(scalar))
    identity = AffineMap.identity(len(shape))
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
) -> tuple[ModuleOp, str, list[Printed]]:
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


def decode(
    values: list[int], shape: tuple[int, ...], t: TensorType[Attribute], how: Printed
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
