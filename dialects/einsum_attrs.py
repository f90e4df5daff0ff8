"""Types and attributes of the einsum dialect: tensors, rank tables, indices, reductions."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import NoReturn

from xdsl.dialects.builtin import AnyFloat, ArrayAttr, IntegerType, StringAttr
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import (
    Attribute,
    Data,
    ParametrizedAttribute,
    SpacedOpaqueSyntaxAttribute,
    TypeAttribute,
)
from xdsl.irdl import AnyAttr, irdl_attr_definition, param_def
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException
from xdsl.utils.str_enum import StrEnum

from einsum_opt.dialects.einsum_syntax import IndexExpr, parse_index_list

RANK_NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
"""Rank names start with an upper-case letter; their index variable is the lower-case name."""

REDUCE_OPERATORS = ("add", "mul", "max", "min")
"""Reduce operators an Einsum may apply to a reduced rank."""


class ParserTokens:
    """`TokenSource` over xDSL's parser, so the shared grammars read MLIR text."""

    def __init__(self, parser: AttrParser):
        self.parser = parser

    def accept(self, punct: str) -> bool:
        """Consume `punct` if it is next."""
        return self.parser.parse_optional_punctuation(punct) is not None  # type: ignore[arg-type]

    def expect(self, punct: str, what: str) -> None:
        """Consume `punct` or fail."""
        if not self.accept(punct):
            self.fail(f"expected {what}")

    def identifier(self) -> str | None:
        """A bare identifier, if next."""
        return self.parser.parse_optional_identifier()

    def number(self) -> int | float | None:
        """An unsigned integer or float literal, if next."""
        value = self.parser.parse_optional_integer(allow_boolean=False, allow_negative=False)
        if value is not None:
            return value
        return self.parser.parse_optional_float(allow_negative=False)

    def peek_punct(self, punct: str) -> bool:
        """Whether `punct` is next, without consuming it."""
        return _text_ahead(self.parser).startswith(punct)

    def fail(self, message: str) -> NoReturn:
        """Raise a parse error at the current token."""
        self.parser.raise_error(message)

    def peek_percent(self) -> bool:
        """Whether an SSA value name is next."""
        return _text_ahead(self.parser).startswith("%")


def _text_ahead(parser: AttrParser) -> str:
    """The input from the parser's next token on."""
    return parser.lexer.input.content[parser.pos :]


@irdl_attr_definition
class TensorType(ParametrizedAttribute, TypeAttribute):
    """A dense tensor with named ranks: `!einsum.tensor<[M, P], f32>`.

    Rank sizes are not part of the type: a cascade declares them once (`ranks(...)`).
    """

    name = "einsum.tensor"
    ranks: ArrayAttr[StringAttr]
    element_type: Attribute = param_def(AnyAttr())

    def __init__(self, ranks: Sequence[str], element_type: Attribute):
        super().__init__(ArrayAttr([StringAttr(r) for r in ranks]), element_type)

    @property
    def rank_names(self) -> tuple[str, ...]:
        """The rank names, outermost first."""
        return tuple(r.data for r in self.ranks)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        start = parser.pos
        with parser.in_angle_brackets():
            ranks = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, parser.parse_identifier
            )
            parser.parse_punctuation(",")
            elt = parser.parse_type()
        params = (ArrayAttr([StringAttr(r) for r in ranks]), elt)
        problem = _tensor_type_problem(params[0], elt)
        if problem:
            parser.raise_error(problem, start, parser.pos)
        return params

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<[{', '.join(self.rank_names)}], ")
        printer.print_attribute(self.element_type)
        printer.print_string(">")

    def verify(self) -> None:
        problem = _tensor_type_problem(self.ranks, self.element_type)
        if problem:
            raise VerifyException(problem)


def _tensor_type_problem(ranks: ArrayAttr[StringAttr], element_type: Attribute) -> str | None:
    names = [r.data for r in ranks]
    for r in names:
        if not RANK_NAME.fullmatch(r):
            return (
                f"rank name '{r}' must start with an upper-case letter "
                "(its index variable is the lower-case name)"
            )
    dup = sorted({r for r in names if names.count(r) > 1})
    if dup:
        return f"tensor type repeats rank {', '.join(dup)}"
    if not isinstance(element_type, AnyFloat | IntegerType):
        return f"element type must be a float or integer type, got {element_type}"
    return None


RankSize = int | tuple[str, str]
"""A declared rank size: a number, or `(A, B)` meaning ceil(size(A) / size(B))."""


@irdl_attr_definition
class RanksAttr(Data[tuple[tuple[str, RankSize], ...]]):
    """A cascade's rank table: `#einsum.ranks<E = 64, M = 1024, M0 = 256, M1 = M / M0>`.

    A derived size `A / B` is ceil(A / B), so a split rank follows when its parent is resized.
    """

    name = "einsum.ranks"

    @staticmethod
    def from_mapping(sizes: Mapping[str, RankSize]) -> RanksAttr:
        """A rank table from name -> size, in the mapping's order."""
        return RanksAttr(tuple(sizes.items()))

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> tuple[tuple[str, RankSize], ...]:
        with parser.in_angle_brackets():
            return tuple(parse_rank_entries(parser))

    @staticmethod
    def checked(entries: Sequence[tuple[str, RankSize]]) -> RanksAttr | str:
        """The rank table, or the reason it is ill formed."""
        try:
            return RanksAttr(tuple(entries))
        except VerifyException as e:
            return str(e)

    def print_parameter(self, printer: Printer) -> None:
        printer.print_string(f"<{format_rank_entries(self.data)}>")

    def verify(self) -> None:
        seen: dict[str, RankSize] = {}
        for name, size in self.data:
            if not RANK_NAME.fullmatch(name):
                raise VerifyException(f"rank name '{name}' must start with an upper-case letter")
            if name in seen:
                raise VerifyException(
                    f"rank {name} declared twice, with sizes {format_size(seen[name])} and "
                    f"{format_size(size)}"
                )
            seen[name] = size
            if isinstance(size, int) and size <= 0:
                raise VerifyException(f"rank {name} must have a positive size, got {size}")
        for name, size in self.data:
            if isinstance(size, tuple):
                for part in size:
                    if part not in seen:
                        raise VerifyException(
                            f"rank {name} = {format_size(size)} refers to undeclared rank {part}"
                        )
        self.sizes()  # reports cycles

    @property
    def names(self) -> tuple[str, ...]:
        """Declared rank names, in declaration order."""
        return tuple(n for n, _ in self.data)

    def sizes(self) -> dict[str, int]:
        """Every rank's concrete size, with derived sizes resolved."""
        declared = dict(self.data)
        resolved: dict[str, int] = {}

        def size(name: str, trail: tuple[str, ...]) -> int:
            if name in resolved:
                return resolved[name]
            if name in trail:
                raise VerifyException(f"rank sizes depend on each other: {' -> '.join(trail)}")
            spec = declared[name]
            if isinstance(spec, int):
                value = spec
            else:
                num, den = (size(p, (*trail, name)) for p in spec)
                value = -(-num // den)
            resolved[name] = value
            return value

        for name in declared:
            size(name, ())
        return {n: resolved[n] for n in declared}

    def with_sizes(self, overrides: Mapping[str, int]) -> RanksAttr:
        """The table with some ranks set to concrete sizes; unknown names are an error, and
        so is a derived rank (`M1 = M / M0` follows its parents: setting it alone would
        change what the cascade computes)."""
        unknown = [n for n in overrides if n not in self.names]
        if unknown:
            raise VerifyException(
                f"cannot set size of undeclared rank {', '.join(unknown)} "
                f"(declared: {', '.join(self.names)})"
            )
        declared = dict(self.data)
        for name in overrides:
            size = declared[name]
            if isinstance(size, tuple):
                raise VerifyException(
                    f"rank {name} is derived ({name} = {format_size(size)}): set {size[0]} "
                    f"or {size[1]} instead"
                )
        return RanksAttr(tuple((n, overrides.get(n, s)) for n, s in self.data))


def format_size(size: RankSize) -> str:
    """`64` or `M / M0`."""
    return str(size) if isinstance(size, int) else f"{size[0]} / {size[1]}"


def format_rank_entries(entries: Sequence[tuple[str, RankSize]]) -> str:
    """`E = 64, M1 = M / M0`."""
    return ", ".join(f"{n} = {format_size(s)}" for n, s in entries)


def parse_rank_entries(parser: AttrParser) -> list[tuple[str, RankSize]]:
    """`NAME = INT | NAME = NAME / NAME`, comma separated (possibly empty), checked."""
    start = parser.pos
    entries = _parse_rank_entry_list(parser)
    table = RanksAttr.checked(entries)
    if isinstance(table, str):
        parser.raise_error(table, start, parser.pos)
    return entries


def _parse_rank_entry_list(parser: AttrParser) -> list[tuple[str, RankSize]]:
    entries: list[tuple[str, RankSize]] = []
    name = parser.parse_optional_identifier()
    while name is not None:
        parser.parse_punctuation("=")
        size: RankSize
        number = parser.parse_optional_integer(allow_boolean=False, allow_negative=True)
        if number is not None:
            size = number
        else:
            num = parser.parse_identifier(" (a rank size: an integer or A / B)")
            parser.parse_punctuation("/")
            size = (num, parser.parse_identifier())
        entries.append((name, size))
        if parser.parse_optional_punctuation(",") is None:
            break
        name = parser.parse_identifier()
    return entries


@irdl_attr_definition
class IndicesAttr(Data[tuple[IndexExpr, ...]]):
    """One index expression per rank of an access or output: `#einsum.indices<[m1+1, p]>`."""

    name = "einsum.indices"

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> tuple[IndexExpr, ...]:
        with parser.in_angle_brackets():
            return tuple(parse_index_list(ParserTokens(parser)))

    def print_parameter(self, printer: Printer) -> None:
        printer.print_string(f"<{format_indices(self.data)}>")

    def verify(self) -> None:
        for index in self.data:
            for t in index.terms:
                if t.var is not None and not t.var[:1].islower():
                    raise VerifyException(f"index variable '{t.var}' must be lower case")
                for s in t.sizes:
                    if not RANK_NAME.fullmatch(s):
                        raise VerifyException(f"rank size '{s}' must start with upper case")


def format_indices(indices: Sequence[IndexExpr]) -> str:
    """`[m1*M0+m0, p]`."""
    return "[" + ", ".join(str(i) for i in indices) + "]"


@irdl_attr_definition
class ReduceAttr(Data[tuple[tuple[str, str], ...]]):
    """The reduce operator of each reduced rank variable: `#einsum.reduce<e = add, m = max>`.

    Reductions apply in the listed order, which the verifier requires to be the order in which
    the reduced variables first appear in the Einsum's accesses.
    """

    name = "einsum.reduce"

    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> tuple[tuple[str, str], ...]:
        with parser.in_angle_brackets():
            entries: list[tuple[str, str]] = []
            var = parser.parse_optional_identifier()
            while var is not None:
                parser.parse_punctuation("=")
                entries.append((var, parser.parse_identifier()))
                if parser.parse_optional_punctuation(",") is None:
                    break
                var = parser.parse_identifier()
            return tuple(entries)

    def print_parameter(self, printer: Printer) -> None:
        printer.print_string("<" + ", ".join(f"{v} = {o}" for v, o in self.data) + ">")

    def verify(self) -> None:
        for var, op in self.data:
            if op not in REDUCE_OPERATORS:
                raise VerifyException(
                    f"unknown reduce operator '{op}' for rank {var.upper()} "
                    f"(known: {', '.join(REDUCE_OPERATORS)})"
                )

    @property
    def operators(self) -> dict[str, str]:
        """Variable -> operator."""
        return dict(self.data)


class Merge(StrEnum):
    """Which coordinates an Einsum visits when operands are sparse."""

    INTERSECT = "intersect"
    UNION = "union"


@irdl_attr_definition
class MergeAttr(EnumAttribute[Merge], SpacedOpaqueSyntaxAttribute):
    """The merge operator (∩ or ∪): `#einsum<merge union>`. Dense semantics ignore it."""

    name = "einsum.merge"
