"""The expression language shared by the einsum dialect's text form and the `.einsum` notation.

Two small languages live here, each as a value type, a printer and a parser:

- index expressions: affine forms of rank variables (lower case, `m1`) and rank sizes
  (upper case, `M0`), e.g. `m1*M0+m0`, `m1+1`, `M1`;
- scalar map expressions: `exp(QK[m,p] - GM[p])`, built from numbers, `inf`, rank sizes
  (`S[t] / N`), tensor accesses, `+ - * /`, unary minus and the functions in `FUNCTIONS`.

The parsers read from a `TokenSource`, so the same grammar serves the MLIR parser (through an
adapter in the dialect) and the notation frontend's own lexer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, Protocol


def rank_of(variable: str) -> str:
    """The rank a lower-case index variable ranges over (`m1` -> `M1`)."""
    return variable.upper()


def variable_of(rank: str) -> str:
    """The index variable of a rank (`M1` -> `m1`)."""
    return rank.lower()


def is_variable_name(name: str) -> bool:
    """Lower-case first letter: an index variable; upper-case: a rank size."""
    return name[:1].islower()


# ---------------------------------------------------------------------------------------------
# Index expressions


@dataclass(frozen=True)
class IndexTerm:
    """`coef * var * size_1 * ... * size_n`; `var` is None for a term made of sizes only."""

    coef: int
    var: str | None
    sizes: tuple[str, ...] = ()


@dataclass(frozen=True)
class IndexExpr:
    """An affine index: a sum of terms plus a constant, normalised (like terms merged)."""

    terms: tuple[IndexTerm, ...]
    const: int = 0

    @staticmethod
    def var(name: str, offset: int = 0) -> IndexExpr:
        """The index `name` or `name+offset`."""
        return IndexExpr((IndexTerm(1, name),), offset)

    @staticmethod
    def extent(rank: str) -> IndexExpr:
        """The index equal to a rank's size: the final value of an iterative rank."""
        return IndexExpr((IndexTerm(1, None, (rank,)),))

    @staticmethod
    def normalised(terms: list[IndexTerm], const: int) -> IndexExpr:
        """Merge like terms (same variable and sizes), dropping zero coefficients."""
        merged: dict[tuple[str | None, tuple[str, ...]], int] = {}
        for t in terms:
            key = (t.var, tuple(sorted(t.sizes)))
            merged[key] = merged.get(key, 0) + t.coef
        return IndexExpr(tuple(IndexTerm(c, v, s) for (v, s), c in merged.items() if c != 0), const)

    @property
    def variables(self) -> tuple[str, ...]:
        """The index variables used, in order of appearance."""
        return tuple(t.var for t in self.terms if t.var is not None)

    @property
    def sizes(self) -> tuple[str, ...]:
        """The rank sizes used, in order of appearance."""
        return tuple(s for t in self.terms for s in t.sizes)

    def as_variable(self) -> str | None:
        """The variable if this index is exactly one bare variable, else None."""
        if self.const == 0 and len(self.terms) == 1:
            t = self.terms[0]
            if t.coef == 1 and t.var is not None and not t.sizes:
                return t.var
        return None

    def as_offset(self) -> tuple[str, int] | None:
        """`(var, offset)` if this index is `var+offset` (offset may be 0), else None."""
        if len(self.terms) == 1:
            t = self.terms[0]
            if t.coef == 1 and t.var is not None and not t.sizes:
                return t.var, self.const
        return None

    def as_extent(self) -> str | None:
        """The rank if this index is exactly that rank's size (a final-value read)."""
        if self.const == 0 and len(self.terms) == 1:
            t = self.terms[0]
            if t.coef == 1 and t.var is None and len(t.sizes) == 1:
                return t.sizes[0]
        return None

    def as_blocked(self) -> tuple[str, str] | None:
        """`(outer, inner)` if this index is `outer*INNER+inner`, the coordinate of a rank split
        into tiles (`m1*M0+m0`), where INNER is the rank of `inner`; else None."""
        if self.const != 0 or len(self.terms) != 2:
            return None
        scaled = [t for t in self.terms if t.sizes]
        plain = [t for t in self.terms if not t.sizes]
        if len(scaled) != 1 or len(plain) != 1:
            return None
        outer, inner = scaled[0], plain[0]
        if outer.coef != 1 or inner.coef != 1 or outer.var is None or inner.var is None:
            return None
        if outer.sizes != (rank_of(inner.var),) or outer.var == inner.var:
            return None
        return outer.var, inner.var

    @staticmethod
    def blocked(outer: str, inner: str) -> IndexExpr:
        """`outer*INNER+inner`: the coordinate of tile `outer`, element `inner`."""
        return IndexExpr((IndexTerm(1, outer, (rank_of(inner),)), IndexTerm(1, inner)), 0)

    def bounds(self, size_of: Callable[[str], int]) -> tuple[int, int]:
        """Smallest and largest value over all variables in `[0, size-1]` of their ranks."""
        lo = hi = self.const
        for t in self.terms:
            factor = t.coef * math.prod(size_of(s) for s in t.sizes)
            if t.var is None:
                lo, hi = lo + factor, hi + factor
            else:
                top = factor * (size_of(rank_of(t.var)) - 1)
                lo, hi = lo + min(0, top), hi + max(0, top)
        return lo, hi

    def substituted(self, mapping: Mapping[str, IndexExpr]) -> IndexExpr:
        """Replace variables by affine expressions (`p` -> `p2*256+p0`); the result is affine."""
        terms: list[IndexTerm] = []
        const = self.const
        for t in self.terms:
            if t.var is None or t.var not in mapping:
                terms.append(t)
                continue
            sub = mapping[t.var]
            for s in sub.terms:
                terms.append(IndexTerm(t.coef * s.coef, s.var, (*t.sizes, *s.sizes)))
            if sub.const:
                if t.sizes:
                    terms.append(IndexTerm(t.coef * sub.const, None, t.sizes))
                else:
                    const += t.coef * sub.const
        return IndexExpr.normalised(terms, const)

    def renamed(self, mapping: Callable[[str], str]) -> IndexExpr:
        """The same index with every variable and size name passed through `mapping`."""
        return IndexExpr(
            tuple(
                IndexTerm(
                    t.coef,
                    None if t.var is None else mapping(t.var),
                    tuple(mapping(s) for s in t.sizes),
                )
                for t in self.terms
            ),
            self.const,
        )

    def __str__(self) -> str:
        out = ""
        for t in self.terms:
            factors = ([t.var] if t.var else []) + list(t.sizes)
            mag = abs(t.coef)
            body = "*".join(([str(mag)] if mag != 1 else []) + factors)
            if not out:
                out = ("-" if t.coef < 0 else "") + body
            else:
                out += ("-" if t.coef < 0 else "+") + body
        if self.const or not out:
            if not out:
                out = str(self.const)
            else:
                out += f"{'-' if self.const < 0 else '+'}{abs(self.const)}"
        return out


# ---------------------------------------------------------------------------------------------
# Scalar map expressions


@dataclass(frozen=True)
class Const:
    """A numeric constant (may be +-inf)."""

    value: float | int


@dataclass(frozen=True)
class Access:
    """The value of the einsum's `index`-th tensor access at the current point."""

    index: int


@dataclass(frozen=True)
class Call:
    """An operator applied to arguments: binary arithmetic, unary minus or a function."""

    fn: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Size:
    """The size of a rank, as a scalar value (`S[t] / N`); it follows when the rank is resized."""

    rank: str


Expr = Const | Access | Call | Size

BINARY_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
"""Infix operators and their spelling."""

FUNCTIONS = {"exp": 1, "log": 1, "sqrt": 1, "abs": 1, "max": 2, "min": 2}
"""Functions callable by name, with their arity."""

_PRECEDENCE = {"add": 1, "sub": 1, "mul": 2, "div": 2, "neg": 3}


def format_number(value: float | int, shortest: Callable[[float], str] | None = None) -> str:
    """Print a constant the way the parsers read it back (`inf`, `-inf`, `2`, `0.5`)."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if math.isnan(value):
        return "nan"
    text = shortest(value) if shortest else repr(value)
    if "." not in text:  # MLIR reads 1.0e-05 as a float but not 1e-05
        mantissa, e, exponent = text.partition("e")
        text = f"{mantissa}.0{e}{exponent}"
    return text


def format_expr(
    expr: Expr,
    access: Callable[[int], str],
    number: Callable[[float | int], str] = format_number,
) -> str:
    """Print a scalar expression with minimal parentheses; `access(i)` spells access i."""

    def go(e: Expr, parent: int, right: bool) -> str:
        if isinstance(e, Const):
            text = number(e.value)
            return f"({text})" if text.startswith("-") and parent > 0 else text
        if isinstance(e, Access):
            return access(e.index)
        if isinstance(e, Size):
            return e.rank
        if e.fn in BINARY_SYMBOLS:
            prec = _PRECEDENCE[e.fn]
            left = go(e.args[0], prec, False)
            rightside = go(e.args[1], prec, True)
            text = f"{left} {BINARY_SYMBOLS[e.fn]} {rightside}"
            needs = prec < parent or (prec == parent and right)
            return f"({text})" if needs else text
        if e.fn == "neg":
            inner = go(e.args[0], _PRECEDENCE["neg"], False)
            if isinstance(e.args[0], Const) and not inner.startswith("("):
                inner = f"({inner})"  # `-2` would read back as the constant -2
            text = "-" + inner
            return f"({text})" if parent >= _PRECEDENCE["neg"] else text
        return f"{e.fn}({', '.join(go(a, 0, False) for a in e.args)})"

    return go(expr, 0, False)


class TokenSource(Protocol):
    """What the shared parsers need from a lexer."""

    def accept(self, punct: str) -> bool:
        """Consume `punct` if it is next."""
        ...

    def expect(self, punct: str, what: str) -> None:
        """Consume `punct` or fail with `expected <what>`."""
        ...

    def identifier(self) -> str | None:
        """Consume and return a bare identifier if one is next."""
        ...

    def peek_punct(self, punct: str) -> bool:
        """Whether `punct` is next, without consuming it."""
        ...

    def number(self) -> int | float | None:
        """Consume and return an unsigned numeric literal if one is next."""
        ...

    def fail(self, message: str) -> NoReturn:
        """Raise the source's own error at the current position."""
        ...


def parse_index(src: TokenSource) -> IndexExpr:
    """Parse `index := ['-'] term (('+'|'-') term)*`, `term := factor ('*' factor)*`.

    A factor is an integer, a rank variable (lower case) or a rank size (upper case).
    """
    terms: list[IndexTerm] = []
    const = 0
    sign = -1 if src.accept("-") else 1
    while True:
        coef, var, sizes = sign, None, []
        while True:
            num = src.number()
            if num is not None:
                if not isinstance(num, int):
                    src.fail("index expressions take integers only")
                coef *= num
            else:
                name = src.identifier()
                if name is None:
                    src.fail("expected a rank variable, rank size or integer in index")
                if is_variable_name(name):
                    if var is not None:
                        src.fail(f"index is not affine: {var}*{name}")
                    var = name
                else:
                    sizes.append(name)
            if not src.accept("*"):
                break
        if var is None and not sizes:
            const += coef
        else:
            terms.append(IndexTerm(coef, var, tuple(sizes)))
        if src.accept("+"):
            sign = 1
        elif src.accept("-"):
            sign = -1
        else:
            return IndexExpr.normalised(terms, const)


def parse_index_list(src: TokenSource) -> list[IndexExpr]:
    """`[` index (`,` index)* `]`, or `[]`."""
    src.expect("[", "'[' to open an index list")
    if src.accept("]"):
        return []
    out = [parse_index(src)]
    while src.accept(","):
        out.append(parse_index(src))
    src.expect("]", "']' or ',' in index list")
    return out


AccessHook = Callable[[str | None], int | None]
"""Called for a primary that is not a number, call or parenthesis.

With a tensor name (an identifier followed by `[`) it must parse the index list and return the
access number; with None it may parse a source-specific access (e.g. `%X[...]`) or return None.
"""


MAX_NESTING = 100
"""How deeply parentheses, calls and unary minus may nest in a scalar expression."""

MAX_DEPTH = 300
"""How many operations deep a scalar expression may be (a sum of N terms is N - 1 deep): the
tools walk expressions recursively, so deeper ones are refused where they are written."""


def parse_expr(src: TokenSource, access: AccessHook) -> Expr:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)*.

    Fails (at the place) when nesting exceeds `MAX_NESTING` or depth exceeds `MAX_DEPTH`."""
    nesting = 0
    depth: dict[int, int] = {}  # id of a Call -> its depth (leaves are depth 0)

    def call(fn: str, args: tuple[Expr, ...]) -> Call:
        result = Call(fn, args)
        level = 1 + max(depth.get(id(a), 0) for a in args)
        if level > MAX_DEPTH:
            src.fail(
                f"expression is more than {MAX_DEPTH} operations deep (a sum or product of N "
                "terms is N - 1 deep); split it into several einsums"
            )
        depth[id(result)] = level
        return result

    def nested() -> None:
        nonlocal nesting
        nesting += 1
        if nesting > MAX_NESTING:
            src.fail(
                f"expression nests more than {MAX_NESTING} levels of parentheses, calls or "
                "unary minus"
            )

    def expression() -> Expr:
        left = term()
        while True:
            if src.accept("+"):
                left = call("add", (left, term()))
            elif src.accept("-"):
                left = call("sub", (left, term()))
            else:
                return left

    def term() -> Expr:
        left = unary()[0]
        while True:
            if src.accept("*"):
                left = call("mul", (left, unary()[0]))
            elif src.accept("/"):
                left = call("div", (left, unary()[0]))
            else:
                return left

    # A minus directly before a numeric literal (`-2`, `-inf`) is part of the constant; before
    # anything else, parenthesised constants included (`-(2)`), it is a negation.
    def unary() -> tuple[Expr, bool]:
        nonlocal nesting
        if src.accept("-"):
            nested()
            inner, literal = unary()
            nesting -= 1
            if literal and isinstance(inner, Const):
                return Const(-inner.value), True
            return call("neg", (inner,)), False
        return primary()

    def primary() -> tuple[Expr, bool]:
        nonlocal nesting
        num = src.number()
        if num is not None:
            return Const(num), True
        if src.accept("("):
            nested()
            inner = expression()
            src.expect(")", "')'")
            nesting -= 1
            return inner, False
        expr = named()
        return expr, isinstance(expr, Const)  # `inf` and `nan` are literals too

    def named() -> Expr:
        nonlocal nesting
        found = access(None)
        if found is not None:
            return Access(found)
        name = src.identifier()
        if name is None:
            src.fail("expected an expression")
        if src.accept("("):
            if name not in FUNCTIONS:
                src.fail(f"unknown function '{name}' (known: {', '.join(FUNCTIONS)})")
            nested()
            args = [expression()]
            while src.accept(","):
                args.append(expression())
            src.expect(")", "')' or ',' in call")
            nesting -= 1
            if len(args) != FUNCTIONS[name]:
                src.fail(f"{name} takes {FUNCTIONS[name]} argument(s), got {len(args)}")
            return call(name, tuple(args))
        if name == "inf":
            return Const(math.inf)
        if name == "nan":
            return Const(math.nan)
        if not is_variable_name(name) and not src.peek_punct("["):
            return Size(name)
        index = access(name)
        if index is None:
            src.fail(f"expected '[' after tensor name '{name}'")
        return Access(index)

    return expression()


def accesses_in_order(expr: Expr) -> list[int]:
    """Access numbers in order of first appearance (left to right)."""
    seen: list[int] = []

    def go(e: Expr) -> None:
        if isinstance(e, Access):
            if e.index not in seen:
                seen.append(e.index)
        elif isinstance(e, Call):
            for a in e.args:
                go(a)

    go(expr)
    return seen


def sizes_in(expr: Expr) -> list[str]:
    """Ranks whose size the expression uses as a value, in order of first appearance."""
    found: list[str] = []

    def go(e: Expr) -> None:
        if isinstance(e, Size) and e.rank not in found:
            found.append(e.rank)
        elif isinstance(e, Call):
            for a in e.args:
                go(a)

    go(expr)
    return found


def root_operator(expr: Expr) -> str | None:
    """The outermost operator of an expression, or None for a leaf."""
    return expr.fn if isinstance(expr, Call) else None
