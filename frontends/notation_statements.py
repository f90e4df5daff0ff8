"""Statements of the Extended Einsum notation (phase 1: syntax) and the line parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from xdsl.dialects.builtin import (
    bf16,
    f16,
    f32,
    f64,
    i32,
    i64,
)
from xdsl.ir import Attribute
from xdsl.parser.core import ForwardDeclaredValue
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum_attrs import (
    REDUCE_OPERATORS,
    RankSize,
)
from einsum_opt.dialects.einsum_map import (
    MapBuildError,
)
from einsum_opt.dialects.einsum_syntax import (
    Const,
    Expr,
    IndexExpr,
    is_variable_name,
    parse_index,
    parse_index_list,
    sizes_in,
)
from einsum_opt.dialects.locations import SourceLocation
from einsum_opt.frontends.notation_lexer import NotationTokens, fail_at

ELEMENT_TYPES: Mapping[str, Attribute] = {
    "f16": f16,
    "bf16": bf16,
    "f32": f32,
    "f64": f64,
    "i32": i32,
    "i64": i64,
}
"""Element types an input may declare after its ranks (`: f16`); f32 when none is given."""

KEYWORDS = ("cascade", "ranks", "input", "output")
"""Words that start a declaration line (unless followed by `[`, which makes a tensor name)."""

STATEMENT_FORMS = (
    "expected a statement: 'cascade NAME', 'ranks ...', 'input ...', 'output ...' "
    "or 'TENSOR[indices] = expression'"
)

CONSTANT_ONLY = "an initial value must be a constant: a number, inf or -inf"

CONSTANT_ERRORS = (MapBuildError, VerifyException, ValueError, OverflowError)
"""What building a map region or a constant raises for a value its type cannot hold."""


# ---------------------------------------------------------------------------------------------
# Statements (phase 1: syntax)


@dataclass(frozen=True)
class CascadeDecl:
    """`cascade NAME`."""

    name: str
    at: SourceLocation


@dataclass(frozen=True)
class RankDecl:
    """One `NAME=SIZE` or `NAME=A/B` entry of a `ranks` line; `part_at` places A and B."""

    name: str
    size: RankSize
    at: SourceLocation
    size_at: SourceLocation
    part_at: tuple[SourceLocation, ...] = ()


@dataclass(frozen=True)
class InputDecl:
    """One `NAME[R1, R2]: type` entry of an `input` line."""

    name: str
    ranks: tuple[tuple[str, SourceLocation], ...]
    element: str
    at: SourceLocation
    element_at: SourceLocation


@dataclass(frozen=True)
class OutputDecl:
    """One name of an `output` line."""

    name: str
    at: SourceLocation


@dataclass(frozen=True)
class AccessRef:
    """A tensor access in an expression; `names` places each identifier of its indices."""

    tensor: str
    indices: tuple[IndexExpr, ...]
    at: SourceLocation
    names: Mapping[str, SourceLocation]


@dataclass(frozen=True)
class InitStmt:
    """`T[r=0, ...] = constant`: the initial value of `T`'s iterative rank `variable`."""

    tensor: str
    indices: tuple[IndexExpr, ...]
    variable: str
    value: int | float
    at: SourceLocation


@dataclass(frozen=True)
class EinsumStmt:
    """`T[outputs] = expr :: op(var), ...`; `expr` numbers its accesses as in `accesses`."""

    tensor: str
    output: tuple[IndexExpr, ...]
    output_at: tuple[SourceLocation, ...]
    expr: Expr
    accesses: tuple[AccessRef, ...]
    reduce: tuple[tuple[str, str, SourceLocation], ...]
    at: SourceLocation
    sizes_at: tuple[tuple[str, SourceLocation], ...] = ()
    """Ranks whose size the expression uses as a value (`S[t] / N`), with their places."""


Statement = CascadeDecl | RankDecl | InputDecl | OutputDecl | InitStmt | EinsumStmt


def parse_statements(text: str, filename: str) -> list[Statement]:
    """Parse every line of the notation into statement records (syntax errors only)."""
    statements: list[Statement] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        code = raw.rstrip("\r").split("#", 1)[0]
        src = NotationTokens(code, filename, number)
        if not src.at_end():
            statements.extend(_parse_line(src))
    return statements


def _parse_line(src: NotationTokens) -> list[Statement]:
    """One non-blank line: a declaration or a definition."""
    first = src.current
    if first.kind == "ident" and src.next_is("[", 1):
        return [_parse_definition(src)]
    if first.kind == "ident" and first.text in KEYWORDS:
        src.identifier()
        parsers: dict[str, Callable[[NotationTokens], list[Statement]]] = {
            "cascade": _parse_cascade,
            "ranks": _parse_ranks,
            "input": _parse_inputs,
            "output": _parse_outputs,
        }
        statements = parsers[first.text](src)
        src.expect_end("',' or the end of the line")
        return statements
    fail_at(src.location(), STATEMENT_FORMS)


def _parse_cascade(src: NotationTokens) -> list[Statement]:
    """`cascade NAME`."""
    name, at = src.expect_identifier("the cascade's name")
    return [CascadeDecl(name, at)]


def _parse_ranks(src: NotationTokens) -> list[Statement]:
    """`ranks NAME=INT, NAME=A/B, ...`."""
    entries: list[Statement] = []
    while True:
        name, at = src.expect_identifier("a rank name")
        src.expect("=", f"'=' and the size of rank {name}")
        size_at = src.location()
        number = src.number()
        if number is not None:
            if not isinstance(number, int):
                fail_at(size_at, f"rank {name} must have a positive integer size, got {number}")
            entries.append(RankDecl(name, number, at, size_at))
        else:
            num, num_at = src.expect_identifier("a rank size: an integer or A/B")
            src.expect("/", f"'/' (a derived size is {num}/B)")
            den, den_at = src.expect_identifier("the rank to divide by")
            entries.append(RankDecl(name, (num, den), at, size_at, (num_at, den_at)))
        if not src.accept(","):
            return entries


def _parse_inputs(src: NotationTokens) -> list[Statement]:
    """`input NAME[R, ...] [: type], ...`."""
    entries: list[Statement] = []
    while True:
        name, at = src.expect_identifier("an input tensor name")
        src.expect("[", f"'[' and the ranks of input {name}")
        ranks: list[tuple[str, SourceLocation]] = []
        if not src.accept("]"):
            while True:
                ranks.append(src.expect_identifier("a rank name"))
                if not src.accept(","):
                    break
            src.expect("]", "']' or ',' in the rank list")
        element, element_at = "f32", at
        if src.accept(":"):
            element, element_at = src.expect_identifier(
                f"an element type ({', '.join(ELEMENT_TYPES)})"
            )
        entries.append(InputDecl(name, tuple(ranks), element, at, element_at))
        if not src.accept(","):
            return entries


def _parse_outputs(src: NotationTokens) -> list[Statement]:
    """`output NAME, ...`."""
    entries: list[Statement] = []
    while True:
        name, at = src.expect_identifier("an output tensor name")
        entries.append(OutputDecl(name, at))
        if not src.accept(","):
            return entries


@dataclass
class _Lhs:
    """The left-hand side of a definition: indices, their places, `r=0` marks."""

    tensor: str
    at: SourceLocation
    indices: list[IndexExpr] = field(default_factory=list)
    places: list[SourceLocation] = field(default_factory=list)
    starts: list[tuple[str, SourceLocation]] = field(default_factory=list)


def _parse_lhs(src: NotationTokens) -> _Lhs:
    """`NAME[index, ...]` where an index may be `var=0` (an initial-value line)."""
    name, at = src.expect_identifier("a tensor name")
    lhs = _Lhs(name, at)
    src.expect("[", "'['")
    if not src.accept("]"):
        while True:
            place = src.location()
            index = parse_index(src)
            if src.accept("="):
                index = _parse_start(src, index, place, lhs)
            lhs.indices.append(index)
            lhs.places.append(place)
            if not src.accept(","):
                break
        src.expect("]", "']' or ',' in index list")
    src.expect("=", "'=' after the output indices")
    return lhs


def _parse_start(
    src: NotationTokens, index: IndexExpr, place: SourceLocation, lhs: _Lhs
) -> IndexExpr:
    """The `=0` after the variable of an iterative rank in an initial-value line."""
    var = index.as_variable()
    if var is None:
        fail_at(place, f"only a rank variable can be given its start index, not '{index}'")
    if src.current.text != "0":
        src.fail(f"an iterative rank starts at index 0: write {var}=0")
    src.number()
    if lhs.starts:
        fail_at(place, f"only one rank can be iterative (already {lhs.starts[0][0]})")
    lhs.starts.append((var, place))
    return IndexExpr.var(var)


def _parse_definition(src: NotationTokens) -> Statement:
    """An initial-value line or an Einsum."""
    lhs = _parse_lhs(src)
    if lhs.starts:
        return _parse_init(src, lhs)
    return _parse_einsum(src, lhs)


def _parse_init(src: NotationTokens, lhs: _Lhs) -> InitStmt:
    """`T[r=0, ...] = constant`."""
    value_at = src.location()

    def no_access(tensor: str | None) -> int | None:
        if tensor is None:
            return None
        fail_at(src.previous_location(), CONSTANT_ONLY)

    expr = src.parse_expression(no_access)
    if not isinstance(expr, Const):
        fail_at(value_at, CONSTANT_ONLY)
    src.expect_end("the end of the line after the initial value")
    return InitStmt(lhs.tensor, tuple(lhs.indices), lhs.starts[0][0], expr.value, lhs.at)


def _parse_einsum(src: NotationTokens, lhs: _Lhs) -> EinsumStmt:
    """`T[outputs] = expr [:: op(var, ...), ...]`."""
    accesses: list[AccessRef] = []

    def access(tensor: str | None) -> int | None:
        if tensor is None or not src.next_is("["):
            return None
        at = src.previous_location()
        mark = src.mark()
        indices = tuple(parse_index_list(src))
        for number, known in enumerate(accesses):
            if (known.tensor, known.indices) == (tensor, indices):
                return number
        accesses.append(AccessRef(tensor, indices, at, src.names_since(mark)))
        return len(accesses) - 1

    start = src.mark()
    expr = src.parse_expression(access)
    names = src.names_since(start)
    sizes_at = tuple((rank, names[rank]) for rank in sizes_in(expr))
    reduce: list[tuple[str, str, SourceLocation]] = []
    if src.accept("::"):
        reduce = _parse_reduce_list(src)
    src.expect_end("an operator, '::' or the end of the line")
    return EinsumStmt(
        lhs.tensor,
        tuple(lhs.indices),
        tuple(lhs.places),
        expr,
        tuple(accesses),
        tuple(reduce),
        lhs.at,
        sizes_at,
    )


def _parse_reduce_list(src: NotationTokens) -> list[tuple[str, str, SourceLocation]]:
    """`op(var, ...), ...` after `::`: (operator, variable, place of the variable)."""
    entries: list[tuple[str, str, SourceLocation]] = []
    while True:
        op, op_at = src.expect_identifier(f"a reduce operator ({', '.join(REDUCE_OPERATORS)})")
        if op not in REDUCE_OPERATORS:
            fail_at(op_at, f"unknown reduce operator '{op}' (known: {', '.join(REDUCE_OPERATORS)})")
        src.expect("(", f"'(' and the rank variables {op} reduces")
        while True:
            var, var_at = src.expect_identifier("a rank variable")
            if not is_variable_name(var):
                fail_at(var_at, f"reduce operators name index variables: write {var.lower()}")
            entries.append((op, var, var_at))
            if not src.accept(","):
                break
        src.expect(")", "')' or ','")
        if not src.accept(","):
            return entries


# ---------------------------------------------------------------------------------------------
# Building the cascade (phase 2: meaning)


@dataclass(frozen=True)
class ForwardRead:
    """A placeholder for a tensor read before the statement that defines it."""

    value: ForwardDeclaredValue[Attribute]
    access: AccessRef
    reader: str


def iterative_variable(stmt: EinsumStmt) -> str | None:
    """The variable written `v+1` among the outputs, if any."""
    for index in stmt.output:
        off = index.as_offset()
        if off is not None and off[1] == 1:
            return off[0]
    return None


def format_start(tensor: str, indices: Sequence[IndexExpr], variable: str) -> str:
    """`RM[m1=0, p]`: the left-hand side of an initial-value line."""
    parts = [f"{ix}=0" if ix.as_variable() == variable else str(ix) for ix in indices]
    return f"{tensor}[{', '.join(parts)}]"
