"""The Extended Einsum notation frontend: paper-style `.einsum` text -> one `einsum.cascade`.

```
cascade attention                        # optional; default: the file stem, or "main"
ranks E=64, F=64, M=1024, P=1024         # rank sizes, in order; `M1=M/M0` is ceil(M/M0)
input Q[E,P], K[E,M], V[F,M]             # inputs and their ranks; `: f16` etc. after `]`
output AV                                # returned tensors, in order
QK[m,p]  = Q[e,p] * K[e,m]               # ranks only on the right are reduced with +
GM[p]    = QK[m,p] :: max(m)             # ... or with the operator named after `::`
RM[m1=0,p] = -inf                        # initial value of an iterative rank
RM[m1+1,p] = max(RM[m1,p], LM[m1,p])     # iterative rank, reading its own previous value
AV[f,p]  = RNV[M1,f,p] / RD[M1,p]        # upper-case index: the rank's extent (final value)
BK[e,m1,m0] = K[e, m1*M0+m0]             # affine index
```

One statement per line; `#` starts a comment. Index and scalar expressions use the grammar
shared with the dialect's text form (`einsum_syntax`); this module only lexes lines, reads the
statement forms around those expressions, and builds the IR with the dialect's constructors.
Reading happens in two phases: every line is parsed into a statement record first (syntax
errors), then the records are turned into ops in order (semantic errors), so a statement may
read a tensor that a later statement defines. Every error is a `NotationError` at a
`file:line:column`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xdsl.dialects.builtin import (
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    f32,
)
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.parser.core import ForwardDeclaredValue
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, ReturnOp
from einsum_opt.dialects.einsum_attrs import (
    RANK_NAME,
    RanksAttr,
    TensorType,
    format_indices,
)
from einsum_opt.dialects.einsum_map import (
    build_map_region,
    constant_attr,
    is_float,
    widens_to,
)
from einsum_opt.dialects.einsum_syntax import (
    IndexExpr,
    is_variable_name,
    rank_of,
)
from einsum_opt.dialects.locations import SourceLocation, location_of, record_location
from einsum_opt.frontends.notation_lexer import NotationTokens, fail_at, tokenize
from einsum_opt.frontends.notation_statements import (
    CONSTANT_ERRORS,
    ELEMENT_TYPES,
    AccessRef,
    CascadeDecl,
    EinsumStmt,
    ForwardRead,
    InitStmt,
    InputDecl,
    OutputDecl,
    RankDecl,
    Statement,
    format_start,
    iterative_variable,
    parse_statements,
)

__all__ = [
    "ELEMENT_TYPES",
    "CascadeBuilder",
    "NotationTokens",
    "parse_einsum_notation",
    "parse_statements",
    "tokenize",
]


class CascadeBuilder:
    """Turns statement records into one verified-ready `einsum.cascade`, in statement order."""

    def __init__(self, statements: Sequence[Statement], filename: str):
        self.statements = statements
        self.filename = filename
        self.ranks: dict[str, RankDecl] = {}
        self.inputs: list[tuple[str, TensorType]] = []
        self.block = Block()
        self.values: dict[str, SSAValue] = {}
        self.definitions: dict[str, SourceLocation] = {}
        self.einsums: dict[str, EinsumStmt] = {}
        self.inits: dict[str, InitStmt] = {}
        self.pending: dict[str, list[ForwardRead]] = {}

    # -- declarations ---------------------------------------------------------------------

    def cascade_name(self) -> tuple[str, SourceLocation]:
        """The `cascade` line's name and place, else the file stem (or "main") at 1:1."""
        decls = [s for s in self.statements if isinstance(s, CascadeDecl)]
        if len(decls) > 1:
            fail_at(decls[1].at, f"cascade name given twice (first on line {decls[0].at.line})")
        if decls:
            return decls[0].name, decls[0].at
        stem = Path(self.filename).stem
        return (stem if stem.isidentifier() else "main"), SourceLocation(self.filename, 1, 1)

    def declare_ranks(self) -> RanksAttr:
        """The rank table, in declaration order; a derived size refers to earlier ranks."""
        for decl in (s for s in self.statements if isinstance(s, RankDecl)):
            if not RANK_NAME.fullmatch(decl.name) or decl.name != decl.name.upper():
                fail_at(
                    decl.at,
                    f"rank names are upper case (their index variable is the lower-case "
                    f"name): write {decl.name.upper()}",
                )
            if decl.name in self.ranks:
                first = self.ranks[decl.name].at.line
                fail_at(decl.at, f"rank {decl.name} declared twice (first on line {first})")
            if isinstance(decl.size, int) and decl.size <= 0:
                fail_at(
                    decl.size_at, f"rank {decl.name} must have a positive size, got {decl.size}"
                )
            if isinstance(decl.size, tuple):
                for part, at in zip(decl.size, decl.part_at, strict=True):
                    if part not in self.ranks:
                        fail_at(at, f"rank {part} is not declared before {decl.name}")
            self.ranks[decl.name] = decl
        return RanksAttr(tuple((n, d.size) for n, d in self.ranks.items()))

    def check_rank(self, rank: str, at: SourceLocation, what: str = "") -> None:
        """Fail at `at` unless `rank` is declared."""
        if rank not in self.ranks:
            declared = ", ".join(self.ranks) or "none"
            fail_at(at, f"rank {rank}{what} is not declared (declared: {declared})")

    def tensor_type(
        self, ranks: Sequence[str], element: Attribute, at: SourceLocation
    ) -> TensorType:
        """`TensorType(ranks, element)`, failing at `at` when it is ill formed."""
        repeated = sorted({r for r in ranks if list(ranks).count(r) > 1})
        if repeated:
            fail_at(at, f"rank {repeated[0]} appears twice in one tensor")
        try:
            return TensorType(ranks, element)
        except VerifyException as e:
            fail_at(at, str(e))

    def declare_inputs(self) -> None:
        """The cascade's block arguments, one per input, in declaration order."""
        for decl in (s for s in self.statements if isinstance(s, InputDecl)):
            self.define_name(decl.name, decl.at)
            for rank, at in decl.ranks:
                if is_variable_name(rank):
                    fail_at(at, f"input ranks are rank names: write {rank.upper()}, not {rank}")
                self.check_rank(rank, at)
            element = ELEMENT_TYPES.get(decl.element)
            if element is None:
                fail_at(
                    decl.element_at,
                    f"unknown element type '{decl.element}' (known: {', '.join(ELEMENT_TYPES)})",
                )
            t = self.tensor_type([r for r, _ in decl.ranks], element, decl.at)
            self.inputs.append((decl.name, t))
            self.values[decl.name] = self.block.insert_arg(t, len(self.block.args))

    def define_name(self, name: str, at: SourceLocation) -> None:
        """Record that `name` is defined at `at`; fail if it already is."""
        if name in self.definitions:
            first = self.definitions[name]
            fail_at(at, f"tensor {name} is already defined on line {first.line}")
        self.definitions[name] = at

    def collect_definitions(self) -> None:
        """Every tensor an Einsum defines, so later statements may be read ahead."""
        for stmt in self.statements:
            if isinstance(stmt, EinsumStmt):
                self.define_name(stmt.tensor, stmt.at)
                self.einsums[stmt.tensor] = stmt

    # -- statements -----------------------------------------------------------------------

    def add_init(self, stmt: InitStmt) -> None:
        """Remember an initial value for the iterative Einsum that follows."""
        target = self.einsums.get(stmt.tensor)
        if target is None:
            what = "an input" if stmt.tensor in self.definitions else "not defined by any line"
            fail_at(stmt.at, f"initial value for {stmt.tensor}, which is {what}")
        if iterative_variable(target) is None:
            fail_at(
                stmt.at,
                f"initial value for {stmt.tensor}, whose definition on line {target.at.line} "
                f"is not iterative (write {stmt.tensor}[{stmt.variable}+1, ...] = ...)",
            )
        if stmt.tensor in self.inits:
            first = self.inits[stmt.tensor].at.line
            fail_at(stmt.at, f"initial value of {stmt.tensor} given twice (first on line {first})")
        self.inits[stmt.tensor] = stmt

    def output_ranks(self, stmt: EinsumStmt) -> list[str]:
        """The result's ranks from the output indices (`m1+1` -> M1)."""
        ranks: list[str] = []
        iterative: str | None = None
        for index, place in zip(stmt.output, stmt.output_at, strict=True):
            off = index.as_offset()
            if off is None or off[1] not in (0, 1):
                fail_at(
                    place,
                    f"output index '{index}' must be a rank variable (or r+1 for an "
                    "iterative rank)",
                )
            var, step = off
            self.check_rank(rank_of(var), place, f" (of index {var})")
            if rank_of(var) in ranks:
                fail_at(place, f"rank {rank_of(var)} appears twice in the output of {stmt.tensor}")
            if step == 1:
                if iterative is not None:
                    fail_at(place, f"{stmt.tensor} iterates two ranks ({iterative} and {var})")
                iterative = var
            ranks.append(rank_of(var))
        return ranks

    def initial_value(self, stmt: EinsumStmt) -> InitStmt | None:
        """The init line of an iterative Einsum, which must come earlier and match it."""
        var = iterative_variable(stmt)
        if var is None:
            return None
        init = self.inits.get(stmt.tensor)
        expected = tuple(
            IndexExpr.var(var) if ix.as_offset() == (var, 1) else ix for ix in stmt.output
        )
        if init is None:
            fail_at(
                stmt.at,
                f"{stmt.tensor} iterates rank {rank_of(var)} but no earlier line gives its "
                f"initial value (write {format_start(stmt.tensor, expected, var)} = value "
                "before it)",
            )
        if init.variable != var or init.indices != expected:
            fail_at(
                init.at,
                f"initial value {format_start(init.tensor, init.indices, init.variable)} does "
                f"not match the iterative definition {stmt.tensor}{format_indices(stmt.output)} "
                f"on line {stmt.at.line}",
            )
        return init

    def check_access(self, stmt: EinsumStmt, access: AccessRef) -> None:
        """The tensor exists and every rank its indices use is declared."""
        if access.tensor != stmt.tensor and access.tensor not in self.definitions:
            fail_at(access.at, f"unknown tensor '{access.tensor}'")
        for index in access.indices:
            for var in index.variables:
                self.check_rank(rank_of(var), access.names[var], f" (of index {var})")
            for size in index.sizes:
                self.check_rank(size, access.names[size])

    def element_type(
        self, stmt: EinsumStmt, known: Sequence[tuple[AccessRef, Attribute]]
    ) -> Attribute:
        """The widest float type among the operands, or their integer type; f32 if none."""
        if not known:
            return f32
        floats = [(a, t) for a, t in known if is_float(t)]
        ints = [(a, t) for a, t in known if not is_float(t)]
        if floats and ints:
            later = max(floats[0], ints[0], key=lambda pair: known.index(pair))
            fail_at(
                later[0].at,
                f"{stmt.tensor} mixes floating-point and integer operands: "
                f"{floats[0][0].tensor} is {floats[0][1]}, {ints[0][0].tensor} is {ints[0][1]}",
            )
        group = floats or ints
        kinds: list[Attribute] = []
        for _, t in group:
            if t not in kinds:
                kinds.append(t)
        widest = [t for t in kinds if all(u == t or widens_to(u, t) for u in kinds)]
        if not widest:
            other = next(pair for pair in group if pair[1] != group[0][1])
            fail_at(
                other[0].at,
                f"{stmt.tensor} mixes {group[0][1]} ({group[0][0].tensor}) and {other[1]} "
                f"({other[0].tensor}); neither converts to the other",
            )
        return widest[0]

    def read_ahead(self, stmt: EinsumStmt, access: AccessRef, element: Attribute) -> SSAValue:
        """A placeholder for a tensor defined later; its ranks follow from the indices."""
        ranks: list[str] = []
        for index in access.indices:
            off, extent = index.as_offset(), index.as_extent()
            if off is None and extent is None:
                fail_at(
                    access.at,
                    f"{access.tensor} is defined by a later line, so its ranks are read from "
                    f"its indices: index '{index}' must be a rank variable",
                )
            ranks.append(rank_of(off[0]) if off is not None else str(extent))
        placeholder = ForwardDeclaredValue(self.tensor_type(ranks, element, access.at))
        self.pending.setdefault(access.tensor, []).append(
            ForwardRead(placeholder, access, stmt.tensor)
        )
        return placeholder

    def reductions(self, stmt: EinsumStmt) -> list[tuple[str, str]]:
        """Reduced variables in order of first use, each `add` unless named after `::`."""
        outputs = {v for ix in stmt.output for v in ix.variables}
        reduced: list[str] = []
        for access in stmt.accesses:
            for index in access.indices:
                reduced += [v for v in index.variables if v not in outputs and v not in reduced]
        named: dict[str, str] = {}
        for op, var, at in stmt.reduce:
            if var in named:
                fail_at(at, f"reduce operator for {var} given twice")
            if var not in reduced:
                why = "an output index" if var in outputs else "not used on the right"
                fail_at(at, f"cannot reduce {var}: it is {why} of {stmt.tensor}")
            named[var] = op
        return [(v, named.get(v, "add")) for v in reduced]

    def resolve_accesses(
        self, stmt: EinsumStmt
    ) -> tuple[list[tuple[SSAValue | None, Sequence[IndexExpr]]], Attribute]:
        """(value or None for a self read, indices) per access, and the element type."""
        for access in stmt.accesses:
            self.check_access(stmt, access)
        known = [
            (a, _element_of(self.values[a.tensor]))
            for a in stmt.accesses
            if a.tensor != stmt.tensor and a.tensor in self.values
        ]
        element = self.element_type(stmt, known)
        accesses: list[tuple[SSAValue | None, Sequence[IndexExpr]]] = []
        for access in stmt.accesses:
            value: SSAValue | None = None
            if access.tensor in self.values:
                value = self.values[access.tensor]
            elif access.tensor != stmt.tensor:
                value = self.read_ahead(stmt, access, element)
            accesses.append((value, access.indices))
        return accesses, element

    def add_einsum(self, stmt: EinsumStmt) -> None:
        """Build the Einsum op of one statement and resolve reads that waited for it."""
        for rank, at in stmt.sizes_at:
            if rank not in self.ranks and rank in self.definitions:
                fail_at(at, f"expected '[' after tensor name '{rank}'")
            self.check_rank(rank, at, " (used as a value)")
        ranks = self.output_ranks(stmt)
        init = self.initial_value(stmt)
        accesses, element = self.resolve_accesses(stmt)
        arg_types = [element if v is None else _element_of(v) for v, _ in accesses]
        reduce = self.reductions(stmt)
        result_type = self.tensor_type(ranks, element, stmt.at)
        init_attr = None if init is None else self.init_attr(init, element)
        try:
            body = build_map_region(stmt.expr, arg_types, element)
        except CONSTANT_ERRORS as e:
            fail_at(stmt.at, f"{stmt.tensor}: {_constant_problem(e, element)}")
        op = EinsumOp(
            stmt.tensor, stmt.output, accesses, body, result_type, reduce, None, init_attr
        )
        record_location(op, stmt.at)
        self.block.add_op(op)
        self.define_value(stmt.tensor, op.result)

    def init_attr(self, init: InitStmt, element: Attribute) -> FloatAttr | IntegerAttr:
        """The initial value as a constant of the Einsum's element type."""
        try:
            return constant_attr(init.value, element)
        except CONSTANT_ERRORS as e:
            fail_at(init.at, f"bad initial value of {init.tensor}: {_constant_problem(e, element)}")

    def define_value(self, name: str, value: SSAValue) -> None:
        """Make `name` readable and replace the placeholders of earlier reads ahead."""
        self.values[name] = value
        for read in self.pending.pop(name, []):
            if read.value.type != value.type:
                fail_at(
                    read.access.at,
                    f"{name}{format_indices(read.access.indices)} is read by {read.reader} "
                    f"before its definition as {read.value.type} (ranks from the indices, "
                    f"element type of {read.reader}), but line {self.definitions[name].line} "
                    f"defines it as {value.type}",
                )
            read.value.replace_all_uses_with(value)

    def outputs(self) -> list[tuple[SSAValue, SourceLocation]]:
        """The returned tensors, in order."""
        decls = [s for s in self.statements if isinstance(s, OutputDecl)]
        if not decls:
            fail_at(
                SourceLocation(self.filename, 1, 1),
                "the cascade has no outputs (add a line 'output NAME')",
            )
        seen: dict[str, OutputDecl] = {}
        for decl in decls:
            if decl.name not in self.values:
                fail_at(decl.at, f"output names unknown tensor '{decl.name}'")
            if decl.name in seen:
                fail_at(decl.at, f"output {decl.name} listed twice")
            seen[decl.name] = decl
        return [(self.values[d.name], d.at) for d in decls]

    def build(self) -> CascadeOp:
        """The cascade of all statements (not yet verified)."""
        name, name_at = self.cascade_name()
        ranks = self.declare_ranks()
        self.declare_inputs()
        self.collect_definitions()
        for stmt in self.statements:
            if isinstance(stmt, InitStmt):
                self.add_init(stmt)
            elif isinstance(stmt, EinsumStmt):
                self.add_einsum(stmt)
        outputs = self.outputs()
        ret = ReturnOp([v for v, _ in outputs])
        record_location(ret, outputs[0][1])
        self.block.add_op(ret)
        output_types = [v.type for v, _ in outputs]
        cascade = CascadeOp(name, self.inputs, output_types, ranks, Region(self.block))
        record_location(cascade, name_at)
        return cascade


def _constant_problem(error: Exception, element: Attribute) -> str:
    """A one-line reason why a constant or map computation cannot be built."""
    if isinstance(error, OverflowError):
        return f"a constant is out of range for {element}"
    return _first_line(str(error))


def _element_of(value: SSAValue) -> Attribute:
    """The element type of a tensor value."""
    assert isinstance(value.type, TensorType)
    return value.type.element_type


# ---------------------------------------------------------------------------------------------
# Entry point


def _first_line(message: str) -> str:
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "verification failed"


def _failing_op(cascade: CascadeOp, error: VerifyException) -> Operation:
    """The op a verifier failure is about: its `.op`, else the first op failing on its own."""
    op = getattr(error, "op", None)
    if isinstance(op, Operation):
        return op
    for candidate in cascade.body.block.ops:
        try:
            candidate.verify()
        except VerifyException:
            return candidate
    return cascade


def verify_cascade_module(module: ModuleOp, cascade: CascadeOp, filename: str) -> None:
    """`module.verify()`, reporting a failure at the line of the statement behind the op."""
    try:
        module.verify()
    except VerifyException as e:
        where = location_of(_failing_op(cascade, e)) or SourceLocation(filename, 1, 1)
        message = str(e.args[0]) if e.args else str(e)
        fail_at(where, _first_line(message))


def parse_einsum_notation(text: str, filename: str) -> ModuleOp:
    """Parse the Extended Einsum notation into a verified module holding one cascade.

    Raises `NotationError` (`file:line:col: error: message`) for any bad input.
    """
    statements = parse_statements(text, filename)
    cascade = CascadeBuilder(statements, filename).build()
    module = ModuleOp([cascade])
    verify_cascade_module(module, cascade, filename)
    return module
