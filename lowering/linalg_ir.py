"""Small builders of upstream MLIR ops on tensors (func, arith, tensor, linalg, scf), shared by
the export of Einsums and loop nests to linalg.

Everything is built with xDSL's own dialects and printed by its printer; the text is what
`mlir-opt-22` reads. An `IRBuilder` appends ops at an insertion point and keeps index
constants, so `offset(const, terms)` can turn an affine form of loop induction variables
into `arith` ops on `index` values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from xdsl.builder import Builder
from xdsl.dialects import arith, scf, tensor
from xdsl.dialects.builtin import (
    AnyFloat,
    ArrayAttr,
    DenseArrayBase,
    IndexType,
    IntegerAttr,
    IntegerType,
    TensorType,
    i64,
)
from xdsl.dialects.linalg.ops import FillOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint

from einsum_opt.dialects.einsum_map import constant_attr

DYNAMIC = -9223372036854775808
"""MLIR's marker of a dynamic offset in a static offset list (`ShapedType::kDynamic`)."""

Offset = int | SSAValue
"""A static offset, or an `index` value computed at run time."""


def tensor_type(element: Attribute, shape: Sequence[int]) -> TensorType[Attribute]:
    """`tensor<shape x element>` (a rank-0 tensor for an empty shape)."""
    return TensorType(element, list(shape))


def shape_of(value: SSAValue) -> tuple[int, ...]:
    """The static shape of a tensor value."""
    t = value.type
    assert isinstance(t, TensorType)
    return tuple(t.get_shape())


def element_of(value: SSAValue) -> Attribute:
    """The element type of a tensor value."""
    t = value.type
    assert isinstance(t, TensorType)
    return cast(Attribute, t.element_type)


class IRBuilder:
    """Appends ops at an insertion point; remembers index constants it made."""

    def __init__(self, point: InsertPoint, parent: IRBuilder | None = None):
        """A builder appending at `point`; with a `parent`, index constants are made by the
        outermost builder, before the op whose region this builder fills."""
        self.builder = Builder(point)
        self._root: IRBuilder = self if parent is None else parent._root
        self._indices: dict[int, SSAValue] = {}
        self._offsets: dict[tuple[int, tuple[tuple[SSAValue, int], ...]], SSAValue] = {}

    def add(self, op: Operation) -> Operation:
        """Insert `op` and return it."""
        return self.builder.insert(op)

    def value(self, op: Operation) -> SSAValue:
        """Insert `op` and return its only result."""
        return self.add(op).results[0]

    def index(self, n: int) -> SSAValue:
        """The `index` constant `n` (made once, by the outermost builder)."""
        root = self._root
        if n not in root._indices:
            root._indices[n] = root.value(arith.ConstantOp(IntegerAttr(n, IndexType())))
        return root._indices[n]

    def offset(self, const: int, terms: Sequence[tuple[SSAValue, int]]) -> Offset:
        """`const + sum(factor * value)` over `index` values; an int when there are no terms."""
        if not terms:
            return const
        key = (const, tuple(terms))
        if key in self._offsets:
            return self._offsets[key]
        total: SSAValue | None = None
        for value, factor in terms:
            term = value if factor == 1 else self.value(arith.MuliOp(value, self.index(factor)))
            total = term if total is None else self.value(arith.AddiOp(total, term))
        assert total is not None
        if const:
            total = self.value(arith.AddiOp(total, self.index(const)))
        self._offsets[key] = total
        return total

    def constant(self, value: float | int, element: Attribute) -> SSAValue:
        """A scalar constant of `element` type."""
        return self.value(arith.ConstantOp(constant_attr(value, element)))

    def empty(self, element: Attribute, shape: Sequence[int]) -> SSAValue:
        """`tensor.empty() : tensor<shape x element>`."""
        return self.value(tensor.EmptyOp([], tensor_type(element, shape)))

    def fill(self, value: float | int, target: SSAValue) -> SSAValue:
        """`linalg.fill` of `target` with a constant."""
        scalar = self.constant(value, element_of(target))
        return self.value(FillOp([scalar], [target], [target.type]))

    def filled(self, value: float | int, element: Attribute, shape: Sequence[int]) -> SSAValue:
        """A new tensor holding `value` everywhere."""
        return self.fill(value, self.empty(element, shape))

    def extract_slice(
        self,
        source: SSAValue,
        offsets: Sequence[Offset],
        sizes: Sequence[int],
        keep: Sequence[bool],
    ) -> SSAValue:
        """`tensor.extract_slice` with unit strides; dimensions not kept are dropped (each has
        size 1: a rank-reducing slice)."""
        result = tensor_type(element_of(source), [s for s, k in zip(sizes, keep, strict=True) if k])
        return self.value(
            tensor.ExtractSliceOp(source, list(offsets), list(sizes), [1] * len(sizes), result)
        )

    def insert_slice(
        self, source: SSAValue, dest: SSAValue, offsets: Sequence[Offset], sizes: Sequence[int]
    ) -> SSAValue:
        """`tensor.insert_slice` of `source` into `dest` with unit strides."""
        static = [o if isinstance(o, int) else DYNAMIC for o in offsets]
        dynamic = [o for o in offsets if not isinstance(o, int)]
        op = tensor.InsertSliceOp.build(
            operands=[source, dest, dynamic, [], []],
            result_types=[dest.type],
            properties={
                "static_offsets": DenseArrayBase.from_list(i64, static),
                "static_sizes": DenseArrayBase.from_list(i64, list(sizes)),
                "static_strides": DenseArrayBase.from_list(i64, [1] * len(sizes)),
            },
        )
        return self.value(op)

    def expand(self, source: SSAValue, groups: Sequence[Sequence[int]]) -> SSAValue:
        """`tensor.expand_shape`: dimension k of `source` becomes the sizes `groups[k]`."""
        shape = [s for group in groups for s in group]
        result = tensor_type(element_of(source), shape)
        op = tensor.ExpandShapeOp(source, [], _reassociation(groups), shape, result)
        return self.value(op)

    def collapse(self, source: SSAValue, groups: Sequence[Sequence[int]]) -> SSAValue:
        """`tensor.collapse_shape`, the inverse of `expand(groups)`."""
        result = tensor_type(element_of(source), [_product(g) for g in groups])
        op = tensor.CollapseShapeOp.build(
            operands=[source],
            result_types=[result],
            properties={"reassociation": _reassociation(groups)},
        )
        return self.value(op)

    def for_loop(
        self,
        extent: int,
        carried: Sequence[SSAValue],
        body: Callable[[IRBuilder, SSAValue, list[SSAValue]], Sequence[SSAValue]],
    ) -> list[SSAValue]:
        """`scf.for %i = 0 to extent step 1 iter_args(carried)`; `body(builder, i, args)`
        returns the values to yield. Returns the loop's results."""
        block = Block(arg_types=[IndexType(), *[v.type for v in carried]])
        inner = IRBuilder(InsertPoint.at_end(block), self)
        results = body(inner, block.args[0], list(block.args[1:]))
        inner.add(scf.YieldOp(*results))
        lower, upper, step = self.index(0), self.index(extent), self.index(1)
        loop = self.add(scf.ForOp(lower, upper, step, list(carried), Region(block)))
        return list(loop.results)

    def if_else(
        self,
        condition: SSAValue,
        then: Callable[[IRBuilder], SSAValue],
        otherwise: Callable[[IRBuilder], SSAValue],
    ) -> SSAValue:
        """`scf.if` yielding one value."""
        regions = []
        result_type: Attribute | None = None
        for branch in (then, otherwise):
            block = Block()
            inner = IRBuilder(InsertPoint.at_end(block), self)
            value = branch(inner)
            result_type = value.type
            inner.add(scf.YieldOp(value))
            regions.append(Region(block))
        assert result_type is not None
        return self.value(scf.IfOp(condition, [result_type], regions[0], regions[1]))

    def all_zero(self, values: Sequence[SSAValue]) -> SSAValue:
        """An `i1` that is true when every `index` value is 0."""
        zero = self.index(0)
        result: SSAValue | None = None
        for v in values:
            test = self.value(arith.CmpiOp(v, zero, "eq"))
            result = test if result is None else self.value(arith.AndIOp(result, test))
        assert result is not None
        return result


def _product(sizes: Sequence[int]) -> int:
    out = 1
    for s in sizes:
        out *= s
    return out


def _reassociation(groups: Sequence[Sequence[int]]) -> ArrayAttr[ArrayAttr[IntegerAttr]]:
    out: list[ArrayAttr[IntegerAttr]] = []
    position = 0
    for group in groups:
        out.append(ArrayAttr([IntegerAttr(position + k, i64) for k in range(len(group))]))
        position += len(group)
    return ArrayAttr(out)


def identity_of(operator: str, element: Attribute) -> float | int:
    """The identity of a reduce operator on `element` (the initial value of a reduction)."""
    if isinstance(element, AnyFloat):
        return {"add": 0.0, "mul": 1.0, "max": float("-inf"), "min": float("inf")}[operator]
    assert isinstance(element, IntegerType)
    width = element.width.data
    return {"add": 0, "mul": 1, "max": -(2 ** (width - 1)), "min": 2 ** (width - 1) - 1}[operator]
