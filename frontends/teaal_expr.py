"""One TeAAL expression (`Z[m, n] = A[k, m] * B[k, n]`) read with the shared grammar.

The expression is lexed by the notation frontend's lexer and parsed by the grammar shared with
the dialect (`einsum_syntax`), through a `TokenSource` that adds what TeAAL writes and our
notation does not:

- `take(A[k, m], B[k, n], 1)`: the value of argument 1 (counting from 0). Under dense
  semantics "where all arguments are non-empty" is everywhere, so every argument stays an
  access of the Einsum (its ranks are iterated, the merge operator stays intersect) and the
  map computation yields the chosen one;
- scalars: a lower-case name outside brackets that is not a declared tensor (`a` in
  `a * T1[m, n]`) reads a scalar input of that name; a declared tensor without ranks may be
  written without `[]`;
- stride constants: a lower-case name multiplying an index variable inside an index (`g` in
  `g * x + r`) whose upper-case name is not a declared rank is a constant. It is read as the
  rank size `G` (`x*G+r`), which the frontend declares in the rank table with a default value.

Lower-case index variables range over the rank of the same upper-case name, as in the dialect.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from einsum_opt.dialects.einsum_syntax import (
    FUNCTIONS,
    Expr,
    IndexExpr,
    is_variable_name,
    parse_index,
    rank_of,
    sizes_in,
)
from einsum_opt.dialects.locations import SourceLocation
from einsum_opt.frontends.notation_lexer import NotationTokens, Token, fail_at

TAKE = "take"
"""TeAAL's selection operator: `take(X, Y, ..., i)`."""


@dataclass(frozen=True)
class TeaalAccess:
    """A tensor read by an expression; `scalar` when it names a scalar input."""

    tensor: str
    indices: tuple[IndexExpr, ...]
    at: SourceLocation
    scalar: bool = False


@dataclass(frozen=True)
class TeaalExpression:
    """A parsed expression: `expr` numbers its accesses as `accesses` lists them."""

    tensor: str
    output: tuple[IndexExpr, ...]
    expr: Expr
    accesses: tuple[TeaalAccess, ...]
    at: SourceLocation
    constants: tuple[str, ...] = ()
    """Stride constants the indices use, as rank-size names (`G` for `g`)."""


class TeaalTokens(NotationTokens):
    """The notation lexer over one expression, knowing `take` and TeAAL's stride constants."""

    def __init__(self, text: str, at: SourceLocation, ranks: Collection[str]):
        # Leading blanks keep the columns those of the YAML file.
        super().__init__(" " * (at.column - 1) + text, at.filename, at.line)
        self.constants = self._rename_constants(ranks)

    def _rename_constants(self, ranks: Collection[str]) -> tuple[str, ...]:
        """Upper-case every stride constant inside brackets; returns their rank-size names."""
        found: list[str] = []
        depth = 0
        for i, tok in enumerate(self.tokens):
            if tok.kind == "punct" and tok.text in "[]":
                depth += 1 if tok.text == "[" else -1
                continue
            if depth <= 0 or tok.kind != "ident" or not is_variable_name(tok.text):
                continue
            before = self.tokens[i - 1] if i else None
            after = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
            multiplies = any(
                t is not None and (t.kind, t.text) == ("punct", "*") for t in (before, after)
            )
            if multiplies and rank_of(tok.text) not in ranks:
                self.tokens[i] = Token("ident", rank_of(tok.text), tok.column)
                if rank_of(tok.text) not in found:
                    found.append(rank_of(tok.text))
        return tuple(found)

    def identifier(self) -> str | None:
        """An identifier; inside an expression a call must be a known function or `take`."""
        tok = self.current
        if tok.kind == "ident" and self.in_expression and self.next_is("(", 1):
            if tok.text == TAKE:
                self.pos += 1
                return tok.text
            if tok.text not in FUNCTIONS:
                known = ", ".join([*FUNCTIONS, TAKE])
                self.fail(f"unknown function '{tok.text}' (known: {known})")
        return super().identifier()


def parse_expression(
    text: str,
    at: SourceLocation,
    declared: Mapping[str, Sequence[str]],
    ranks: Collection[str],
) -> TeaalExpression:
    """Parse one expression of `einsum.expressions` starting at `at`.

    `declared` maps each declared tensor to its ranks and `ranks` holds every declared rank.
    Raises `NotationError` at the offending token.
    """
    src = TeaalTokens(text, at, ranks)
    name, name_at = src.expect_identifier("the name of the tensor the expression writes")
    if name not in declared:
        fail_at(name_at, f"tensor {name} is not declared in einsum.declaration")
    output = _output_indices(src, name, declared[name])
    src.expect("=", "'=' after the output")
    reader = _Accesses(src, declared, {*ranks, *src.constants})
    start = src.mark()
    expr = src.parse_expression(reader.access)
    places = src.names_since(start)
    src.expect_end("an operator or the end of the expression")
    for size in sizes_in(expr):
        if size in declared:
            fail_at(
                places[size], f"tensor {size} has ranks {list(declared[size])}: write {size}[...]"
            )
        if size not in ranks and size not in src.constants:
            fail_at(places[size], f"'{size}' is neither a declared tensor nor a rank")
    return TeaalExpression(name, output, expr, tuple(reader.accesses), name_at, src.constants)


def _output_indices(src: TeaalTokens, tensor: str, ranks: Sequence[str]) -> tuple[IndexExpr, ...]:
    """`[m, n]` after the output tensor: exactly the variables of its declared ranks."""
    bracket = src.location()
    src.expect("[", f"'[' and the indices of {tensor}")
    indices: list[IndexExpr] = []
    if not src.accept("]"):
        while True:
            indices.append(parse_index(src))
            if not src.accept(","):
                break
        src.expect("]", "']' or ',' in the output indices")
    expected = [IndexExpr.var(r.lower()) for r in ranks]
    if indices != expected:
        fail_at(
            bracket,
            f"{tensor} is declared with ranks [{', '.join(ranks)}], so the expression writes "
            f"{tensor}[{', '.join(map(str, expected))}], not "
            f"{tensor}[{', '.join(map(str, indices))}]",
        )
    return tuple(indices)


class _Accesses:
    """The access hook of the shared grammar: tensor accesses, scalars and `take`."""

    def __init__(
        self, src: TeaalTokens, declared: Mapping[str, Sequence[str]], sizes: Collection[str]
    ):
        self.src = src
        self.declared = declared
        self.sizes = sizes
        self.accesses: list[TeaalAccess] = []

    def access(self, tensor: str | None) -> int | None:
        """The access number of the primary at hand (None: not an access)."""
        src = self.src
        if tensor is not None:
            if not src.next_is("["):
                return None
            return self.indexed(tensor, src.previous_location())
        tok = src.current
        if tok.kind != "ident" or src.next_is("[", 1) or tok.text in ("inf", "nan"):
            return None
        if src.next_is("(", 1):
            return self.take() if tok.text == TAKE else None
        ranks = self.declared.get(tok.text)
        if ranks is not None and ranks:
            src.fail(f"tensor {tok.text} has ranks [{', '.join(ranks)}]: write {tok.text}[...]")
        if ranks is None and not is_variable_name(tok.text):
            return None  # an upper-case name: a rank size used as a value
        at = src.location()
        src.identifier()
        return self.record(TeaalAccess(tok.text, (), at, scalar=ranks is None))

    def indexed(self, tensor: str, at: SourceLocation) -> int:
        """`T[indices]` after the name `T` was read."""
        ranks = self.declared.get(tensor)
        if ranks is None:
            known = ", ".join(self.declared)
            fail_at(at, f"unknown tensor '{tensor}' (declared: {known})")
        src = self.src
        src.expect("[", "'['")
        places: list[SourceLocation] = []
        indices: list[IndexExpr] = []
        if not src.accept("]"):
            while True:
                places.append(src.location())
                indices.append(parse_index(src))
                if not src.accept(","):
                    break
            src.expect("]", "']' or ',' in the index list")
        if len(indices) != len(ranks):
            fail_at(
                at,
                f"{tensor} has {len(ranks)} ranks [{', '.join(ranks)}] but is read with "
                f"{len(indices)} indices",
            )
        for rank, index, place in zip(ranks, indices, places, strict=True):
            unknown = [s for s in index.sizes if s not in self.sizes]
            if unknown:
                fail_at(place, f"'{unknown[0]}' in index {index} is not a declared rank")
            var = index.as_variable()
            if var is not None and rank_of(var) != rank:
                fail_at(
                    place,
                    f"index {var} ranges over rank {rank_of(var)}, but this position of "
                    f"{tensor} is rank {rank} (write {rank.lower()}, or an affine index)",
                )
        return self.record(TeaalAccess(tensor, tuple(indices), at))

    def record(self, access: TeaalAccess) -> int:
        """The number of `access`, shared with an identical earlier one."""
        for number, known in enumerate(self.accesses):
            if (known.tensor, known.indices) == (access.tensor, access.indices):
                return number
        self.accesses.append(access)
        return len(self.accesses) - 1

    def take(self) -> int:
        """`take(X[...], Y[...], ..., i)`: every argument is an access; the value is the i-th."""
        src = self.src
        take_at = src.location()
        src.identifier()
        src.expect("(", "'(' after take")
        chosen: list[int] = []
        while True:
            number_at = src.location()
            number = src.number()
            if number is not None:
                break
            found = self.access(None)
            if found is None:
                name = src.identifier()
                found = None if name is None else self.access(name)
            if found is None:
                fail_at(
                    number_at,
                    "expected a tensor access (take's arguments are tensors, then the number "
                    "of the one to keep)",
                )
            chosen.append(found)
            src.expect(",", "',' and the next argument of take")
        src.expect(")", "')' after the number of the argument take keeps")
        if not chosen:
            fail_at(take_at, "take needs at least one tensor argument before the number")
        if not isinstance(number, int) or not 0 <= number < len(chosen):
            fail_at(
                number_at,
                f"take keeps argument {number}, but its arguments are numbered 0 to "
                f"{len(chosen) - 1}",
            )
        return chosen[number]
