"""The einsum dialect: cascades of Extended Einsums over tensors with named ranks.

```
einsum.cascade @softmax(%X : !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32>
    ranks(M = 1024, P = 1024) {
  %GM = einsum.einsum GM[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %SN = einsum.einsum SN[m, p] = exp(%X[m, p] - %GM[p]) : !einsum.tensor<[M, P], f32>
  %SD = einsum.einsum SD[p] = %SN[m, p] : !einsum.tensor<[P], f32>
  %A = einsum.einsum A[m, p] = %SN[m, p] / %SD[p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}
```

An Einsum is named by the tensor it produces. Each tensor access reads one operand (or, in an
iterative Einsum, its own output at the previous index, written without `%`), the map
computation is a region of scalar `arith`/`math` ops printed as an expression when it is one,
ranks that appear only on the right are reduced (`+` unless `:: op(rank)` says otherwise), and
an iterative Einsum (`RM[m1+1, p] = max(RM[m1, p], %LM[m1, p]) init(-inf)`) carries its
initial value. Cascade-wide checks (declared ranks, index ranges, unique names) live in
`einsum_verify.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DenseArrayBase,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    base,
    irdl_op_definition,
    lazy_traits_def,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, Pure, SymbolOpInterface

from einsum_opt.dialects.einsum_attrs import (
    IndicesAttr,
    Merge,
    MergeAttr,
    RanksAttr,
    RankSize,
    ReduceAttr,
    TensorType,
    format_rank_entries,
    parse_rank_entries,
)
from einsum_opt.dialects.einsum_map import (
    is_float,
)
from einsum_opt.dialects.einsum_mapping import MappingAttr
from einsum_opt.dialects.einsum_syntax import (
    IndexExpr,
    root_operator,
)
from einsum_opt.dialects.locations import OpVerifyException, next_token_span, record_location


def _nest_op() -> type[IRDLOperation]:
    from einsum_opt.dialects.loopnest import NestOp

    return NestOp


@irdl_op_definition
class YieldOp(IRDLOperation):
    """Ends an Einsum's map computation with the scalar value written at the current point."""

    name = "einsum.yield"
    value = operand_def()
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(EinsumOp, _nest_op()), Pure()))
    assembly_format = "$value attr-dict `:` type($value)"

    def __init__(self, value: SSAValue):
        super().__init__(operands=[value])


@irdl_op_definition
class SizeOp(IRDLOperation):
    """The size of a declared rank as a scalar inside a map computation (`S[t] / N`)."""

    name = "einsum.size"
    rank = prop_def(StringAttr)
    result = result_def()
    traits = lazy_traits_def(lambda: (HasParent(EinsumOp, _nest_op()), Pure()))
    assembly_format = "$rank attr-dict `:` type($result)"

    def __init__(self, rank: str, result_type: Attribute):
        super().__init__(properties={"rank": StringAttr(rank)}, result_types=[result_type])


@irdl_op_definition
class ReturnOp(IRDLOperation):
    """Ends a cascade, returning its output tensors (named by the Einsums that produce them)."""

    name = "einsum.return"
    values = var_operand_def(TensorType)
    traits = lazy_traits_def(lambda: (IsTerminator(), HasParent(CascadeOp)))
    assembly_format = "($values^ `:` type($values))? attr-dict"

    def __init__(self, values: Sequence[SSAValue]):
        super().__init__(operands=[values])

    def verify_(self) -> None:
        cascade = self.parent_op()
        assert isinstance(cascade, CascadeOp)
        got = [v.type for v in self.values]
        want = list(cascade.function_type.outputs.data)
        if got != want:
            raise OpVerifyException(
                self,
                f"cascade @{cascade.sym_name.data} returns "
                f"({', '.join(map(str, got))}) but declares ({', '.join(map(str, want))})",
            )


class EinsumStructure(IRDLOperation):
    """The fields and queries shared by ops that compute one Extended Einsum (`einsum.einsum`,
    and `loopnest.nest`, the same Einsum over loop variables)."""

    inputs = var_operand_def(TensorType)
    tensor = prop_def(StringAttr)
    output = prop_def(IndicesAttr)
    access = prop_def(ArrayAttr[IndicesAttr])
    self_reads = prop_def(DenseArrayBase[I64])
    reduce = prop_def(ReduceAttr)
    merge = prop_def(MergeAttr)
    init = opt_prop_def(base(FloatAttr) | base(IntegerAttr))
    body = region_def("single_block")
    result = result_def(TensorType)
    traits = traits_def(Pure())

    @property
    def tensor_name(self) -> str:
        """The name of the tensor this Einsum produces (and of the Einsum)."""
        return self.tensor.data

    @property
    def result_type(self) -> TensorType:
        """The output tensor type."""
        assert isinstance(self.result.type, TensorType)
        return self.result.type

    @property
    def output_indices(self) -> tuple[IndexExpr, ...]:
        """One index per output rank: the rank variable, or `var+1` on the iterative rank."""
        return self.output.data

    def self_read_positions(self) -> tuple[int, ...]:
        """Access numbers that read this Einsum's own output."""
        return tuple(self.self_reads.get_values())

    def accesses(self) -> list[tuple[SSAValue | None, tuple[IndexExpr, ...]]]:
        """(operand or None for a self read, indices) for each access, in block-argument order."""
        selfs = set(self.self_read_positions())
        operands = iter(self.inputs)
        return [
            (None if i in selfs else next(operands), ix.data) for i, ix in enumerate(self.access)
        ]

    def access_type(self, value: SSAValue | None) -> TensorType:
        """The tensor type an access reads."""
        t = self.result.type if value is None else value.type
        assert isinstance(t, TensorType)
        return t

    def iterative_rank(self) -> str | None:
        """The variable of the rank this Einsum iterates (`m1` for `RM[m1+1, p]`), if any."""
        return stepped_variable(self.output_indices)

    def output_variables(self) -> tuple[str, ...]:
        """The variables of the output ranks, in order."""
        return tuple(v for ix in self.output_indices for v in ix.variables)

    def reduced_variables(self) -> tuple[str, ...]:
        """Variables that appear in accesses but not in the output, in order of first use."""
        return reduced_of(self.output_indices, (ix.data for ix in self.access))

    def variables(self) -> tuple[str, ...]:
        """All iteration variables: output ranks then reduced ranks."""
        return self.output_variables() + self.reduced_variables()

    def describe(self) -> str:
        """How diagnostics name this Einsum."""
        return f"einsum {self.tensor_name}"

    def access_name(self, value: SSAValue | None) -> str:
        """How diagnostics name the tensor an access reads."""
        if value is None:
            return self.tensor_name
        return tensor_name_of(value)


@irdl_op_definition
class EinsumOp(EinsumStructure):
    """One Extended Einsum: `NAME[outputs] = map(accesses) :: reduce(ranks)`.

    `access[i]` holds the index expressions of the i-th tensor access, which is block argument
    i of the map region. Accesses listed in `self_reads` read this Einsum's own output at the
    previous index of its iterative rank; every other access reads the next operand.
    """

    name = "einsum.einsum"

    def __init__(
        self,
        tensor: str,
        output: Sequence[IndexExpr],
        accesses: Sequence[tuple[SSAValue | None, Sequence[IndexExpr]]],
        body: Region,
        result_type: TensorType,
        reduce: Sequence[tuple[str, str]] = (),
        merge: Merge | None = None,
        init: FloatAttr | IntegerAttr | None = None,
    ):
        """Build an Einsum; an access whose value is None reads the Einsum's own output."""
        operands = [v for v, _ in accesses if v is not None]
        self_reads = [i for i, (v, _) in enumerate(accesses) if v is None]
        props: dict[str, Attribute] = {
            "tensor": StringAttr(tensor),
            "output": IndicesAttr(tuple(output)),
            "access": ArrayAttr([IndicesAttr(tuple(ix)) for _, ix in accesses]),
            "self_reads": DenseArrayBase.from_list(i64, self_reads),
            "reduce": ReduceAttr(tuple(reduce)),
            "merge": MergeAttr(merge or default_merge(body)),
        }
        if init is not None:
            props["init"] = init
        super().__init__(
            operands=[operands], properties=props, regions=[body], result_types=[result_type]
        )
        self.result.name_hint = tensor

    # -- text form ----------------------------------------------------------------------

    def print(self, printer: Printer) -> None:
        from einsum_opt.dialects.einsum_text import print_einsum

        print_einsum(self, printer)

    @classmethod
    def parse(cls, parser: Parser) -> EinsumOp:
        from einsum_opt.dialects.einsum_text import parse_einsum

        return parse_einsum(parser)

    # -- verification ---------------------------------------------------------------------

    def verify_(self) -> None:
        from einsum_opt.dialects.einsum_verify import verify_einsum

        verify_einsum(self)


def stepped_variable(output: Sequence[IndexExpr]) -> str | None:
    """The variable an output index steps along (`m1` of `m1+1`), if one does."""
    for index in output:
        off = index.as_offset()
        if off is not None and off[1] != 0:
            return off[0]
    return None


def reduced_of(
    output: Sequence[IndexExpr], accesses: Iterable[Sequence[IndexExpr]]
) -> tuple[str, ...]:
    """The variables the accesses use and the output does not, in order of first use."""
    out = {v for ix in output for v in ix.variables}
    seen: list[str] = []
    for indices in accesses:
        for index in indices:
            for v in index.variables:
                if v not in out and v not in seen:
                    seen.append(v)
    return tuple(seen)


def tensor_name_of(value: SSAValue) -> str:
    """The cascade-level name of a tensor value: its Einsum's name or its input name."""
    owner = value.owner
    if isinstance(owner, EinsumStructure):
        return owner.tensor_name
    block_parent = getattr(owner, "parent_op", lambda: None)()
    if isinstance(block_parent, CascadeOp):
        index = value.index  # type: ignore[attr-defined]
        return block_parent.input_names.data[index].data
    return value.name_hint or "?"


def default_merge(body: Region) -> Merge:
    """∪ when the map's outermost operator is + or −, ∩ otherwise (TeAAL's convention)."""
    from einsum_opt.dialects.einsum_map import extract_expr

    expr = extract_expr(body)
    return (
        Merge.UNION
        if expr is not None and root_operator(expr) in ("add", "sub")
        else Merge.INTERSECT
    )


# ---------------------------------------------------------------------------------------------
# Cascade


@irdl_op_definition
class CascadeOp(IRDLOperation):
    """A named cascade of Extended Einsums with named inputs, a rank table and returned outputs."""

    name = "einsum.cascade"
    sym_name = prop_def(SymbolNameConstraint())
    function_type = prop_def(FunctionType)
    ranks = prop_def(RanksAttr)
    input_names = prop_def(ArrayAttr[StringAttr])
    body = region_def("single_block")
    traits = traits_def(SymbolOpInterface(), IsolatedFromAbove())

    def __init__(
        self,
        name: str,
        inputs: Sequence[tuple[str, TensorType]],
        output_types: Sequence[Attribute],
        ranks: Mapping[str, RankSize] | RanksAttr,
        body: Region | None = None,
    ):
        """A cascade; without `body`, an empty entry block with one argument per input."""
        from xdsl.ir import Block

        if body is None:
            body = Region(Block(arg_types=[t for _, t in inputs]))
        for (n, _), arg in zip(inputs, body.block.args, strict=True):
            arg.name_hint = n
        super().__init__(
            properties={
                "sym_name": StringAttr(name),
                "function_type": FunctionType.from_lists([t for _, t in inputs], output_types),
                "ranks": ranks if isinstance(ranks, RanksAttr) else RanksAttr.from_mapping(ranks),
                "input_names": ArrayAttr([StringAttr(n) for n, _ in inputs]),
            },
            regions=[body],
        )

    @property
    def cascade_name(self) -> str:
        """The symbol name, without `@`."""
        return self.sym_name.data

    def einsums(self) -> list[EinsumOp]:
        """The Einsums in program order."""
        return [op for op in self.body.block.ops if isinstance(op, EinsumOp)]

    def producers(self) -> list[Operation]:
        """Every op computing a tensor (Einsums, and loop nests once lowered), in order."""
        return [op for op in self.body.block.ops if isinstance(op, EinsumStructure)]

    def inputs(self) -> list[tuple[str, TensorType]]:
        """(name, type) of each input."""
        types = [t for t in self.function_type.inputs.data if isinstance(t, TensorType)]
        return [(n.data, t) for n, t in zip(self.input_names.data, types, strict=True)]

    def return_op(self) -> ReturnOp:
        """The terminator."""
        last = self.body.block.last_op
        assert isinstance(last, ReturnOp)
        return last

    def returns(self, value: SSAValue) -> bool:
        """Whether the cascade returns `value`."""
        return value in self.return_op().values

    def output_names(self) -> list[str]:
        """The names of the returned tensors."""
        return [tensor_name_of(v) for v in self.return_op().values]

    def rank_sizes(self) -> dict[str, int]:
        """Every declared rank's size."""
        return self.ranks.sizes()

    def set_rank_sizes(self, overrides: Mapping[str, int]) -> None:
        """Give some declared ranks new sizes (derived sizes such as `M / M0` follow)."""
        self.ranks = self.ranks.with_sizes(overrides)

    def verify_(self) -> None:
        from einsum_opt.dialects.einsum_verify import verify_cascade

        verify_cascade(self)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.cascade_name)
        args = self.body.block.args
        for arg, n in zip(args, self.input_names.data, strict=False):
            arg.name_hint = n.data
        printer.print_string("(")
        printer.print_list(args, printer.print_block_argument)
        printer.print_string(") -> ")
        outs = self.function_type.outputs.data
        if len(outs) == 1:
            printer.print_attribute(outs[0])
        else:
            printer.print_string("(")
            printer.print_list(outs, printer.print_attribute)
            printer.print_string(")")
        printer.print_string(f" ranks({format_rank_entries(self.ranks.data)})")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)

    @classmethod
    def parse(cls, parser: Parser) -> CascadeOp:
        start = next_token_span(parser)
        name = parser.parse_symbol_name().data
        args = parser.parse_comma_separated_list(parser.Delimiter.PAREN, parser.parse_argument)
        parser.parse_punctuation("->")
        if parser.parse_optional_punctuation("(") is not None:
            outs: list[Attribute] = []
            if parser.parse_optional_punctuation(")") is None:
                outs = parser.parse_comma_separated_list(parser.Delimiter.NONE, parser.parse_type)
                parser.parse_punctuation(")")
        else:
            outs = [parser.parse_type()]
        parser.parse_keyword("ranks")
        with parser.in_parens():
            entries = parse_rank_entries(parser)
        attrs = parser.parse_optional_attr_dict_with_keyword()
        body = parser.parse_region(args)
        inputs = []
        for a in args:
            if not isinstance(a.type, TensorType):
                parser.raise_error(f"cascade input %{a.name.text[1:]} must be an !einsum.tensor")
            inputs.append((a.name.text[1:], a.type))
        for t in outs:
            if not isinstance(t, TensorType):
                parser.raise_error(f"cascade result must be an !einsum.tensor, got {t}")
        op = cls(name, inputs, outs, RanksAttr(tuple(entries)), body)
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op


def cascades_in(target: Operation) -> list[CascadeOp]:
    """The cascades of a module (or the cascade itself), in order."""
    if isinstance(target, CascadeOp):
        return [target]
    return [op for op in target.walk() if isinstance(op, CascadeOp)]


def is_float_tensor(t: TensorType) -> bool:
    """Whether a tensor holds floating-point values."""
    return is_float(t.element_type)


Einsum = Dialect(
    "einsum",
    [CascadeOp, EinsumOp, YieldOp, SizeOp, ReturnOp],
    [TensorType, RanksAttr, IndicesAttr, ReduceAttr, MergeAttr, MappingAttr],
)
"""The einsum dialect."""
