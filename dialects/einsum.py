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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DenseArrayBase,
    FloatAttr,
    FunctionType,
    IntegerAttr,
    IntegerType,
    StringAttr,
    SymbolNameConstraint,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, OpResult, Region, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    VarOperand,
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
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.traits import HasParent, IsolatedFromAbove, IsTerminator, Pure, SymbolOpInterface
from xdsl.utils.lexer import Span

from einsum_opt.dialects.einsum_attrs import (
    REDUCE_OPERATORS,
    IndicesAttr,
    Merge,
    MergeAttr,
    ParserTokens,
    RanksAttr,
    RankSize,
    ReduceAttr,
    TensorType,
    format_indices,
    format_rank_entries,
    parse_rank_entries,
)
from einsum_opt.dialects.einsum_map import (
    build_map_region,
    constant_attr,
    is_float,
    map_expression_printer,
)
from einsum_opt.dialects.einsum_mapping import MappingAttr
from einsum_opt.dialects.einsum_syntax import (
    Expr,
    IndexExpr,
    format_number,
    parse_expr,
    parse_index_list,
    root_operator,
)
from einsum_opt.dialects.locations import OpVerifyException, record_location


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


class EinsumStructure:
    """Queries shared by ops that compute one Extended Einsum (`einsum.einsum`, and
    `loopnest.nest`, the same Einsum over loop variables); they read the op's properties."""

    if TYPE_CHECKING:  # provided by the ops' IRDL definitions (IRDL must not see them here)
        tensor: StringAttr
        output: IndicesAttr
        access: ArrayAttr[IndicesAttr]
        self_reads: DenseArrayBase[IntegerType]
        inputs: VarOperand
        result: OpResult

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
        for index in self.output_indices:
            off = index.as_offset()
            if off is not None and off[1] != 0:
                return off[0]
        return None

    def output_variables(self) -> tuple[str, ...]:
        """The variables of the output ranks, in order."""
        return tuple(v for ix in self.output_indices for v in ix.variables)

    def reduced_variables(self) -> tuple[str, ...]:
        """Variables that appear in accesses but not in the output, in order of first use."""
        out = set(self.output_variables())
        seen: list[str] = []
        for ix in self.access:
            for index in ix.data:
                for v in index.variables:
                    if v not in out and v not in seen:
                        seen.append(v)
        return tuple(seen)

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
class EinsumOp(EinsumStructure, IRDLOperation):
    """One Extended Einsum: `NAME[outputs] = map(accesses) :: reduce(ranks)`.

    `access[i]` holds the index expressions of the i-th tensor access, which is block argument
    i of the map region. Accesses listed in `self_reads` read this Einsum's own output at the
    previous index of its iterative rank; every other access reads the next operand.
    """

    name = "einsum.einsum"
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
        print_einsum(self, printer)

    @classmethod
    def parse(cls, parser: Parser) -> EinsumOp:
        return parse_einsum(parser)

    # -- verification ---------------------------------------------------------------------

    def verify_(self) -> None:
        name = self.tensor_name
        if not name.isidentifier():
            raise OpVerifyException(self, f"einsum name '{name}' is not an identifier")
        where = self.describe()
        accesses = self.accesses()
        selfs = self.self_read_positions()
        if len(selfs) + len(self.inputs) != len(self.access) or any(
            not 0 <= s < len(self.access) for s in selfs
        ):
            raise OpVerifyException(
                self,
                f"{where}: {len(self.access)} accesses do not match {len(self.inputs)} operands "
                f"and self reads {list(selfs)}",
            )
        out_t = self.result_type
        # Output indices: one per rank, the rank's own variable (+1 on an iterative rank).
        if len(self.output_indices) != len(out_t.rank_names):
            raise OpVerifyException(
                self,
                f"{where}: output has {len(self.output_indices)} indices but type {out_t} has "
                f"{len(out_t.rank_names)} ranks",
            )
        iterative: list[str] = []
        for rank, index in zip(out_t.rank_names, self.output_indices, strict=True):
            off = index.as_offset()
            if off is None or off[0] != rank.lower() or off[1] not in (0, 1):
                raise OpVerifyException(
                    self,
                    f"{where}: output rank {rank} is not iterated: its index is '{index}', "
                    f"expected '{rank.lower()}' (or '{rank.lower()}+1' for an iterative rank)",
                )
            if off[1] == 1:
                iterative.append(off[0])
        if len(iterative) > 1:
            raise OpVerifyException(
                self, f"{where}: more than one iterative rank ({', '.join(iterative)})"
            )
        # Accesses: one index per rank of the tensor read.
        for i, (value, indices) in enumerate(accesses):
            t = self.access_type(value)
            if len(indices) != len(t.rank_names):
                raise OpVerifyException(
                    self,
                    f"{where}: access {self.access_name(value)}{format_indices(indices)} has "
                    f"{len(indices)} indices but {self.access_name(value)} has "
                    f"{len(t.rank_names)} ranks [{', '.join(t.rank_names)}]",
                )
            for rank, index in zip(t.rank_names, indices, strict=True):
                var = index.as_variable()
                if var is not None and var.upper() != rank:
                    raise OpVerifyException(
                        self,
                        f"{where}: access {self.access_name(value)}{format_indices(indices)} "
                        f"indexes rank {rank} with variable {var} of rank {var.upper()}",
                    )
            arg_t = self.body.block.args[i].type if i < len(self.body.block.args) else None
            if arg_t != t.element_type:
                raise OpVerifyException(
                    self,
                    f"{where}: map argument {i} has type {arg_t} but "
                    f"{self.access_name(value)} holds {t.element_type}",
                )
        if len(self.body.block.args) != len(accesses):
            raise OpVerifyException(
                self,
                f"{where}: map region takes {len(self.body.block.args)} arguments for "
                f"{len(accesses)} accesses",
            )
        last = self.body.block.last_op
        if not isinstance(last, YieldOp) or last.value.type != out_t.element_type:
            raise OpVerifyException(
                self, f"{where}: map region must end in einsum.yield of a {out_t.element_type}"
            )
        # Iteration and self reads.
        it = iterative[0] if iterative else None
        if selfs and it is None:
            raise OpVerifyException(
                self,
                f"{where}: reads its own output but has no iterative rank (write it as "
                f"{name}[..., r+1, ...])",
            )
        for s in selfs:
            assert it is not None
            expected = [
                IndexExpr.var(it) if ix.as_offset() == (it, 1) else ix for ix in self.output_indices
            ]
            if list(self.access.data[s].data) != expected:
                raise OpVerifyException(
                    self,
                    f"{where}: self read {name}{format_indices(self.access.data[s].data)} must "
                    f"read the previous value {name}{format_indices(expected)}",
                )
        if it is not None and self.init is None:
            raise OpVerifyException(
                self,
                f"{where}: iterative rank {it.upper()} has no initial value "
                f"(declare {name}[{it}=0, ...] = value)",
            )
        if it is None and self.init is not None:
            raise OpVerifyException(self, f"{where}: has an initial value but no iterative rank")
        if self.init is not None and self.init.type != out_t.element_type:
            raise OpVerifyException(
                self,
                f"{where}: initial value has type {self.init.type}, expected {out_t.element_type}",
            )
        # Reductions: exactly the reduced variables, in order of first appearance.
        reduced = self.reduced_variables()
        ops = self.reduce.data
        outs = set(self.output_variables())
        for var, _ in ops:
            if var in outs:
                raise OpVerifyException(
                    self,
                    f"{where}: reduce operator on rank {var.upper()}, which is not reduced "
                    "(it is an output rank)",
                )
            if var not in reduced:
                raise OpVerifyException(
                    self, f"{where}: reduce operator on rank {var.upper()}, which no access uses"
                )
        listed = tuple(v for v, _ in ops)
        for var in reduced:
            if var not in listed:
                raise OpVerifyException(
                    self, f"{where}: reduced rank {var.upper()} has no reduce operator"
                )
        if listed != reduced:
            raise OpVerifyException(
                self,
                f"{where}: reductions must be listed in order of first use: {', '.join(reduced)}",
            )


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
# EinsumOp text form


def _ranks_from_indices(indices: Sequence[IndexExpr]) -> list[str] | None:
    """The ranks of a tensor read at plain variables (`m1+1` included), else None."""
    offsets = [ix.as_offset() for ix in indices]
    return [o[0].upper() for o in offsets if o] if all(offsets) else None


def _is_read_ahead(op: Operation, value: SSAValue) -> bool:
    owner = value.owner
    if not isinstance(owner, Operation) or owner.parent is not op.parent:
        return False
    block = op.parent
    assert block is not None
    return block.get_operation_index(owner) > block.get_operation_index(op)


def _print_access(
    printer: Printer, op: EinsumOp, value: SSAValue | None, indices: Sequence[IndexExpr]
) -> None:
    if value is None:
        printer.print_string(op.tensor_name)
    else:
        printer.print_ssa_value(value)
    printer.print_string(format_indices(indices))
    if value is not None and _is_read_ahead(op, value):
        ranks = list(op.access_type(value).rank_names)
        if _ranks_from_indices(indices) != ranks:
            printer.print_string(f" as [{', '.join(ranks)}]")


def print_einsum(op: EinsumOp | Any, printer: Printer) -> None:
    """Print `NAME[out] = expression :: reductions init(..) merge(..) {attrs} : type` (also the
    body of a `loopnest.nest`, which has the same fields)."""
    printer.print_string(f" {op.tensor_name}{format_indices(op.output_indices)} = ")
    accesses = op.accesses()
    marker = "\x00"
    text = map_expression_printer(op.body, lambda i: f"{marker}{i}{marker}")
    if text is not None:
        for k, piece in enumerate(text.split(marker)):
            if k % 2 == 0:
                printer.print_string(piece)
            else:
                value, indices = accesses[int(piece)]
                _print_access(printer, op, value, indices)
    else:
        printer.print_string("map(")
        for i, (value, indices) in enumerate(accesses):
            if i:
                printer.print_string(", ")
            _print_access(printer, op, value, indices)
        printer.print_string(") ")
        printer.print_region(op.body)
    groups: list[tuple[str, list[str]]] = []  # consecutive ranks with one operator: max(m1, m0)
    for v, o in op.reduce.data:
        if o == "add":
            continue
        if groups and groups[-1][0] == o:
            groups[-1][1].append(v)
        else:
            groups.append((o, [v]))
    if groups:
        printer.print_string(" :: " + ", ".join(f"{o}({', '.join(vs)})" for o, vs in groups))
    if op.init is not None:
        printer.print_string(f" init({format_number(op.init.value.data)})")
    if op.merge.data != default_merge(op.body):
        printer.print_string(f" merge({op.merge.data.value})")
    printer.print_op_attributes(op.attributes)
    printer.print_string(" : ")
    printer.print_attribute(op.result.type)


def parse_einsum(parser: Parser) -> EinsumOp:
    """Parse what `print_einsum` prints (after the op name) into a new EinsumOp."""
    tokens = ParserTokens(parser)
    start = parser._current_token.span  # noqa: SLF001 - xDSL keeps no op locations itself
    name = parser.parse_identifier(" (the name of the tensor the einsum produces)")
    output = parse_index_list(tokens)
    parser.parse_punctuation("=")
    # Accesses are collected as (operand or None for self, indices); identical ones are shared.
    accesses: list[tuple[UnresolvedOperand | None, tuple[IndexExpr, ...]]] = []
    ahead_ranks: dict[str, list[str]] = {}  # `%X[...] as [R1, R2]`: ranks of a read-ahead

    def access(tensor: str | None) -> int | None:
        operand: UnresolvedOperand | None = None
        if tensor is None:
            if not tokens.peek_percent():
                return None
            operand = parser.parse_unresolved_operand()
        elif tensor != name:
            parser.raise_error(
                f"'{tensor}' is not this einsum's own output: read other tensors as %values"
            )
        key = (operand, tuple(parse_index_list(tokens)))
        if operand is not None and parser.parse_optional_keyword("as") is not None:
            ahead_ranks[operand.operand_name] = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, parser.parse_identifier
            )
        for i, (o, ix) in enumerate(accesses):
            same = (o is None and operand is None) or (
                o is not None
                and operand is not None
                and (o.operand_name, o.index) == (operand.operand_name, operand.index)
            )
            if same and ix == key[1]:
                return i
        accesses.append(key)
        return len(accesses) - 1

    expr: Expr | None = None
    region: Region | None = None
    if parser.parse_optional_keyword("map") is not None:
        parser.parse_punctuation("(")
        if parser.parse_optional_punctuation(")") is None:
            while True:
                if access(None) is None:
                    name_tok = parser.parse_identifier(" (an access: %value[...] or own name[...])")
                    access(name_tok)
                if parser.parse_optional_punctuation(",") is None:
                    break
            parser.parse_punctuation(")")
        region = parser.parse_region()
    else:
        expr = parse_expr(tokens, access)
    reduce_ops: dict[str, str] = {}
    reduce_spans: dict[str, Span] = {}
    if parser.parse_optional_punctuation(":") is not None:
        # `::` lists reduce operators; a single `:` starts the type.
        if parser.parse_optional_punctuation(":") is not None:
            while True:
                op_span = parser._current_token.span  # noqa: SLF001
                op_name = parser.parse_identifier(" (a reduce operator)")
                if op_name not in REDUCE_OPERATORS:
                    parser.raise_error(
                        f"unknown reduce operator '{op_name}' "
                        f"(known: {', '.join(REDUCE_OPERATORS)})",
                        op_span,
                    )
                parser.parse_punctuation("(")
                while True:
                    var_span = parser._current_token.span  # noqa: SLF001
                    var = parser.parse_identifier(" (a reduced rank variable)")
                    reduce_ops[var] = op_name
                    reduce_spans[var] = var_span
                    if parser.parse_optional_punctuation(",") is None:
                        break
                parser.parse_punctuation(")")
                if parser.parse_optional_punctuation(",") is None:
                    break
            colon_seen = False
        else:
            colon_seen = True
    else:
        colon_seen = False
    init_value: float | int | None = None
    if parser.parse_optional_keyword("init") is not None:
        with parser.in_parens():
            negative = parser.parse_optional_punctuation("-") is not None
            number = tokens.number()
            if number is None:
                word = parser.parse_identifier(" (a number, inf or -inf)")
                if word != "inf":
                    parser.raise_error(f"expected a number, inf or -inf, got '{word}'")
                number = float("inf")
            init_value = -number if negative else number
    merge: Merge | None = None
    if parser.parse_optional_keyword("merge") is not None:
        with parser.in_parens():
            merge = parser.parse_str_enum(Merge)
    attrs = parser.parse_optional_attr_dict()
    if not colon_seen:
        parser.parse_punctuation(":")
    result_type = parser.parse_type()
    if not isinstance(result_type, TensorType):
        parser.raise_error(f"einsum result must be an !einsum.tensor, got {result_type}", start)
    resolved: list[tuple[SSAValue | None, tuple[IndexExpr, ...]]] = []
    for operand, indices in accesses:
        if operand is None:
            resolved.append((None, indices))
            continue
        defined = parser.ssa_values.get(operand.operand_name)
        if defined is not None and operand.index < len(defined):
            resolved.append((defined[operand.index], indices))
            continue
        # A read ahead (the previous value of a later iterative Einsum): its ranks follow from
        # its rank-variable indices, or are given (`as [M1, P]`); its element type is taken to
        # be this Einsum's.
        ranks = ahead_ranks.get(operand.operand_name) or _ranks_from_indices(indices)
        if ranks is None:
            parser.raise_error(
                f"%{operand.operand_name} is used before it is defined; a tensor read ahead "
                "must be indexed by plain rank variables or name its ranks (as [R1, R2])",
                operand.span,
            )
        ahead = TensorType(ranks, result_type.element_type)
        resolved.append((parser.resolve_operand(operand, ahead), indices))
    arg_types = [
        result_type.element_type if v is None else _element_type(v, parser) for v, _ in resolved
    ]
    if region is None:
        assert expr is not None
        from einsum_opt.dialects.einsum_map import MapBuildError

        try:
            region = build_map_region(expr, arg_types, result_type.element_type)
        except MapBuildError as e:
            parser.raise_error(f"einsum {name}: {e}", start)
    reduced = _reduced_in_order(output, [ix for _, ix in resolved])
    unknown = [v for v in reduce_ops if v not in reduced]
    if unknown:
        parser.raise_error(
            f"einsum {name}: reduce operator on rank {unknown[0].upper()}, which is not reduced",
            reduce_spans[unknown[0]],
        )
    init_attr = None
    if init_value is not None:
        try:
            init_attr = constant_attr(init_value, result_type.element_type)
        except Exception as e:  # noqa: BLE001 - any conversion failure is a parse error
            parser.raise_error(f"einsum {name}: bad initial value: {e}", start)
    op = EinsumOp(
        name,
        output,
        resolved,
        region,
        result_type,
        [(v, reduce_ops.get(v, "add")) for v in reduced],
        merge,
        init_attr,
    )
    op.attributes.update(attrs)
    record_location(op, start)
    return op


def _element_type(value: SSAValue, parser: Parser) -> Attribute:
    if not isinstance(value.type, TensorType):
        parser.raise_error(f"einsum operand must be an !einsum.tensor, got {value.type}")
    return value.type.element_type


def _reduced_in_order(
    output: Sequence[IndexExpr], accesses: Sequence[Sequence[IndexExpr]]
) -> list[str]:
    outs = {v for ix in output for v in ix.variables}
    seen: list[str] = []
    for indices in accesses:
        for index in indices:
            for v in index.variables:
                if v not in outs and v not in seen:
                    seen.append(v)
    return seen


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
        return [op for op in self.body.block.ops if isinstance(op, EinsumStructure)]  # type: ignore[misc]

    def inputs(self) -> list[tuple[str, TensorType]]:
        """(name, type) of each input."""
        types = [t for t in self.function_type.inputs.data if isinstance(t, TensorType)]
        return [(n.data, t) for n, t in zip(self.input_names.data, types, strict=True)]

    def return_op(self) -> ReturnOp:
        """The terminator."""
        last = self.body.block.last_op
        assert isinstance(last, ReturnOp)
        return last

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
        start = parser._current_token.span  # noqa: SLF001
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
