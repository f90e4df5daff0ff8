"""Upstream MLIR dialects as einsum-opt reads and writes them: xDSL's linalg, tensor, scf,
bufferization and memref, with the linalg ops xDSL 0.74 lacks or reads differently.

- `linalg.generic` with several results: MLIR prints `-> (t1, t2)`, which xDSL 0.74's parser
  rejects (it reads only `-> t1, t2`); `GenericOp` here reads both.
- `linalg.batch_matmul` (`C[b, m, n] += A[b, m, k] * B[b, k, n]`) and `linalg.softmax`
  (`linalg.softmax dimension(1) ins(...) outs(...) -> type`) are not in xDSL 0.74.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self, cast

from xdsl.dialects import linalg as xdsl_linalg
from xdsl.dialects.builtin import (
    I64,
    AffineMapAttr,
    ArrayAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
)
from xdsl.dialects.linalg import ops as linalg_ops
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation, NamedOperation
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.ir import Attribute, Dialect, Region, SSAValue
from xdsl.ir.affine import AffineMap
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    opt_result_def,
    prop_def,
)
from xdsl.parser import Parser
from xdsl.utils.exceptions import VerifyException

RANKS_ATTR = "einsum.ranks"
"""The attribute of a function argument naming its ranks, outermost first
(`%q: tensor<64x1024xf32> {einsum.ranks = ["E", "P"]}`): `lower-to-linalg` writes it and
`linalg-to-einsum` reads it. MLIR keeps it as a discardable attribute."""


@irdl_op_definition
class GenericOp(LinalgStructuredOperation):
    """`linalg.generic` as xDSL defines it, reading MLIR's `-> (t1, t2)` result list as well
    as `-> t1`. Construction, printing and queries are xDSL's own."""

    name = "linalg.generic"

    indexing_maps = prop_def(ArrayAttr[AffineMapAttr])
    iterator_types = prop_def(ArrayAttr[IteratorTypeAttr])
    doc = opt_prop_def(StringAttr)
    library_call = opt_prop_def(StringAttr)

    irdl_options = (AttrSizedOperandSegments(as_property=True),)

    def __init__(
        self,
        inputs: Sequence[SSAValue],
        outputs: Sequence[SSAValue],
        body: Region,
        indexing_maps: Sequence[AffineMapAttr],
        iterator_types: Sequence[Attribute],
        result_types: Sequence[Attribute] = (),
        doc: StringAttr | None = None,
        library_call: StringAttr | None = None,
    ) -> None:
        super().__init__(
            operands=[inputs, outputs],
            result_types=[result_types],
            properties={
                "indexing_maps": ArrayAttr(indexing_maps),
                "iterator_types": ArrayAttr(iterator_types),
                "doc": doc,
                "library_call": library_call,
            },
            regions=[body],
        )

    get_indexing_maps = linalg_ops.GenericOp.get_indexing_maps
    get_iterator_types = linalg_ops.GenericOp.get_iterator_types
    print = linalg_ops.GenericOp.print

    @classmethod
    def parse(cls, parser: Parser) -> Self:
        parse = cast(Any, linalg_ops.GenericOp.parse).__func__
        return cast(Self, parse(cls, _ResultListParser(parser)))


class _ResultListParser:
    """The parser as xDSL's `GenericOp.parse` sees it: after `->`, a parenthesised list of
    result types reads like the bare list it expects. Everything else is the parser's own."""

    def __init__(self, parser: Parser):
        self._parser = parser
        self._after_arrow = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def parse_optional_punctuation(self, punctuation: Any) -> Any:
        found = self._parser.parse_optional_punctuation(punctuation)
        if punctuation == "->" and found is not None:
            self._after_arrow = True
        return found

    def parse_comma_separated_list(self, delimiter: Any, parse: Any, context_msg: str = "") -> Any:
        p = self._parser
        if self._after_arrow and delimiter == Parser.Delimiter.NONE:
            return p.parse_optional_comma_separated_list(
                Parser.Delimiter.PAREN, parse, context_msg
            ) or p.parse_comma_separated_list(delimiter, parse, context_msg)
        return p.parse_comma_separated_list(delimiter, parse, context_msg)


@irdl_op_definition
class BatchMatmulOp(NamedOperation):
    """`linalg.batch_matmul`: `C[b, m, n] += A[b, m, k] * B[b, k, n]`."""

    name = "linalg.batch_matmul"

    PRINT_ATTRS_IN_FRONT: ClassVar[bool] = True

    indexing_maps = prop_def(
        ArrayAttr[AffineMapAttr],
        default_value=ArrayAttr(
            [
                AffineMapAttr(AffineMap.from_callable(lambda b, m, _, k: (b, m, k))),
                AffineMapAttr(AffineMap.from_callable(lambda b, _, n, k: (b, k, n))),
                AffineMapAttr(AffineMap.from_callable(lambda b, m, n, _: (b, m, n))),
            ]
        ),
    )

    def __init__(self, inputs: Sequence[SSAValue], outputs: Sequence[SSAValue]) -> None:
        super().__init__(
            ins=inputs,
            outs=outputs,
            result_types=[o.type for o in outputs if isinstance(o.type, TensorType)],
            hidden_region=self.get_hidden_region(inputs, outputs),
        )

    get_hidden_region = linalg_ops.MatmulOp.__dict__["get_hidden_region"]
    get_default_indexing_maps = linalg_ops.MatmulOp.get_default_indexing_maps
    get_indexing_maps = linalg_ops.MatmulOp.get_indexing_maps

    def get_iterator_types(self) -> ArrayAttr[IteratorTypeAttr]:
        parallel, reduction = IteratorTypeAttr.parallel(), IteratorTypeAttr.reduction()
        return ArrayAttr([parallel, parallel, parallel, reduction])


@irdl_op_definition
class SoftmaxOp(IRDLOperation):
    """`linalg.softmax dimension(d)`: `exp(x - max_d x) / sum_d exp(x - max_d x)`."""

    name = "linalg.softmax"

    input = operand_def(TensorType)
    output = operand_def(TensorType)
    dimension = prop_def(IntegerAttr[I64])
    result = opt_result_def(TensorType)

    assembly_format = (
        "`dimension` `(` $dimension `)` attr-dict `ins` `(` $input `:` type($input) `)` "
        "`outs` `(` $output `:` type($output) `)` (`->` type($result)^)?"
    )

    SHAPE_MESSAGE: ClassVar[str] = "linalg.softmax: input, output and result must have one type"

    def verify_(self) -> None:
        types: Sequence[Attribute] = [self.input.type, self.output.type]
        if self.result is not None:
            types = [*types, self.result.type]
        if any(t != types[0] for t in types):
            raise VerifyException(self.SHAPE_MESSAGE)
        t = self.input.type
        assert isinstance(t, TensorType)
        if not 0 <= self.dimension.value.data < t.get_num_dims():
            raise VerifyException(
                f"linalg.softmax: dimension {self.dimension.value.data} of a rank-"
                f"{t.get_num_dims()} tensor"
            )


def _linalg() -> Dialect:
    ops = [op for op in xdsl_linalg.Linalg.operations if op is not linalg_ops.GenericOp]
    return Dialect(
        "linalg", [GenericOp, *ops, BatchMatmulOp, SoftmaxOp], list(xdsl_linalg.Linalg.attributes)
    )


Linalg = _linalg()
"""xDSL's linalg dialect with the ops above."""
