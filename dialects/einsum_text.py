"""The text form of an Einsum: `NAME[out] = expression :: reductions init(..) : type`.

Shared by `einsum.einsum` and `loopnest.nest` (which prints its loops first). Accesses read
`%value[indices]`, or the Einsum's own previous value as `NAME[indices]`; a read of a tensor
defined later (a read-ahead) names its ranks with `as [R1, R2]` when its indices do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xdsl.ir import Attribute, Operation, Region, SSAValue
from xdsl.parser import Parser, UnresolvedOperand
from xdsl.printer import Printer
from xdsl.utils.lexer import Span

from einsum_opt.dialects.einsum import EinsumOp, default_merge, reduced_of
from einsum_opt.dialects.einsum_attrs import (
    REDUCE_OPERATORS,
    Merge,
    ParserTokens,
    TensorType,
    format_indices,
)
from einsum_opt.dialects.einsum_map import (
    build_map_region,
    constant_attr,
    is_float,
    map_expression_printer,
    shortest_float,
)
from einsum_opt.dialects.einsum_syntax import (
    Expr,
    IndexExpr,
    format_number,
    parse_expr,
    parse_index_list,
)
from einsum_opt.dialects.locations import next_token_span, record_location


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
        elt = op.result_type.element_type
        shortest = (lambda v: shortest_float(v, elt)) if is_float(elt) else None
        printer.print_string(f" init({format_number(op.init.value.data, shortest)})")
    if op.merge.data != default_merge(op.body):
        printer.print_string(f" merge({op.merge.data.value})")
    printer.print_op_attributes(op.attributes)
    printer.print_string(" : ")
    printer.print_attribute(op.result.type)


def parse_einsum(parser: Parser) -> EinsumOp:
    """Parse what `print_einsum` prints (after the op name) into a new EinsumOp."""
    tokens = ParserTokens(parser)
    start = next_token_span(parser)
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
                op_span = next_token_span(parser)
                op_name = parser.parse_identifier(" (a reduce operator)")
                if op_name not in REDUCE_OPERATORS:
                    parser.raise_error(
                        f"unknown reduce operator '{op_name}' "
                        f"(known: {', '.join(REDUCE_OPERATORS)})",
                        op_span,
                    )
                parser.parse_punctuation("(")
                while True:
                    var_span = next_token_span(parser)
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
    reduced = reduced_of(output, [ix for _, ix in resolved])
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
