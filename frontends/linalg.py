"""`linalg-to-einsum`: upstream MLIR functions on tensors as cascades of Extended Einsums.

```mlir
func.func @attention(%q: tensor<64x1024xf32>, %k: tensor<64x1024xf32>, ...) -> tensor<...> {
  %qk = linalg.generic {indexing_maps = [...], iterator_types = [...]} ins(%q, %k : ...)
          outs(%zero : ...) { ^bb0(%a: f32, %b: f32, %acc: f32): ... }
  ...
}
```
becomes `einsum.cascade @attention(%q: !einsum.tensor<[A, B], f32>, ...)`. Each function with
a body is one cascade with the same name; its arguments are the inputs, named by their SSA
names (`%q` -> `q`); the values it returns are the outputs. Ranks are named by
`linalg_ranks` (A, B, ...), with the sizes of the tensor dimensions.

A `linalg.generic` (and a named structured op: `linalg.matmul`, `linalg.batch_matmul`,
`linalg.transpose`, the elementwise ones, and `linalg.reduce` and `linalg.broadcast` as the
generics they stand for) becomes one Einsum per result: its indexing maps become index
expressions (`d0 * 256 + d1` -> `256*a+b`; floordiv, mod and symbols have no Einsum form), its
body the map computation (`linalg_body`), named after the result (`%qk` -> `qk`). With
reduction loops, a yielded value `op(out, value)` with op one of add, mul, max, min (addf /
addi, mulf / muli, maximumf / maxnumf / maxsi, minimumf / minnumf / minsi) gives the reduced
ranks that operator. The output's initial value is a `linalg.fill` of the operator's identity
(0, 1, -inf, +inf) in the usual case; any other initial value is combined by a second Einsum
(`out = op(init, reduced)`). A body combining its outputs in any other way (an online
softmax) is a recurrence over its one reduced rank: iterative Einsums. Without reduction
loops, a body that reads `out` reads the initial value. `linalg.fill` of a constant becomes
an Einsum with a constant map where it is read, `linalg.softmax dimension(d)` the four Einsums
of its definition (max, exp of the difference, sum, quotient over rank d), `tensor.empty` and
scalar `arith.constant` what the other ops take. Anything else is an error naming the op.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects import arith, func, tensor
from xdsl.dialects.builtin import ArrayAttr, FloatAttr, IntegerAttr, ModuleOp, StringAttr
from xdsl.dialects.linalg.abstract_ops import LinalgStructuredOperation
from xdsl.dialects.linalg.ops import BroadcastOp, FillOp, ReduceOp
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, ReturnOp
from einsum_opt.dialects.einsum_attrs import RANK_NAME, TensorType
from einsum_opt.dialects.einsum_map import MapBuildError, build_map_region, constant_attr, is_float
from einsum_opt.dialects.einsum_syntax import (
    FUNCTIONS,
    Access,
    Call,
    Const,
    Expr,
    IndexExpr,
    IndexTerm,
)
from einsum_opt.dialects.upstream import RANKS_ATTR, SoftmaxOp
from einsum_opt.frontends.linalg_body import (
    LinalgImportError,
    as_reduction,
    leaves,
    renumbered,
    yielded_expressions,
)
from einsum_opt.frontends.linalg_ranks import RankNames, Structured, shape

__all__ = ["LinalgImportError", "function_to_cascade", "import_linalg"]

_IDENTITIES = {"add": 0.0, "mul": 1.0, "max": float("-inf"), "min": float("inf")}
_INT_IDENTITIES = {"add": 0, "mul": 1}
_RESERVED = {"inf", "nan", *FUNCTIONS}


def import_linalg(module: ModuleOp) -> int:
    """Replace every `func.func` with a body by its cascade, in place; returns how many."""
    count = 0
    for fn in [op for op in module.body.block.ops if isinstance(op, func.FuncOp)]:
        if fn.is_declaration:
            continue
        cascade = function_to_cascade(fn)
        module.body.block.insert_op_before(cascade, fn)
        fn.detach()
        fn.erase(safe_erase=False)
        count += 1
    return count


def function_to_cascade(fn: func.FuncOp) -> CascadeOp:
    """The cascade computing `fn`; LinalgImportError when it has no Extended Einsum form."""
    return _FunctionImporter(fn).cascade()


@dataclass(frozen=True)
class _Fill:
    """A tensor holding one constant everywhere (made only where it is read)."""

    value: float | int
    name: str


@dataclass(frozen=True)
class _Output:
    """One result of a linalg op: its `outs` operand, the result, its ranks, element type and
    Einsum name."""

    out: SSAValue
    result: SSAValue
    ranks: tuple[str, ...]
    element: Attribute
    name: str


@dataclass(frozen=True)
class _Empty:
    """A tensor whose values are undefined (`tensor.empty`)."""


def _structured(op: Operation, where: str) -> Structured | None:
    """The uniform view of a linalg op, or None for other ops."""
    if isinstance(op, SoftmaxOp):
        rank = len(shape(op.input, where))
        identity = AffineMap.identity(rank)
        return Structured(op, [op.input], [op.output], [identity, identity], [True] * rank, None)
    if isinstance(op, ReduceOp | BroadcastOp):
        return _reduce_or_broadcast(op, where)
    if isinstance(op, LinalgStructuredOperation) and not isinstance(op, FillOp):
        try:
            maps = [m.data for m in op.get_indexing_maps()]
            kinds = [t.data.value for t in op.get_iterator_types()]
        except (AttributeError, NotImplementedError) as e:
            raise LinalgImportError(f"{where}: {op.name} has no indexing maps ({e})") from e
        return Structured(
            op,
            list(op.inputs),
            list(op.outputs),
            maps,
            [k == "parallel" for k in kinds],
            op.body.block,
        )
    return None


def _reduce_or_broadcast(op: ReduceOp | BroadcastOp, where: str) -> Structured:
    """`linalg.reduce` (its `dimensions` reduced) or `linalg.broadcast` (its `dimensions`
    added) as the generic it stands for."""
    listed = set(op.dimensions.get_values())
    if isinstance(op, ReduceOp):
        loops = len(shape(op.input, where))
        kept = [d for d in range(loops) if d not in listed]
        maps = [
            AffineMap.identity(loops),
            AffineMap(loops, 0, tuple(AffineExpr.dimension(d) for d in kept)),
        ]
        return Structured(
            op,
            [op.input],
            [op.init],
            maps,
            [d not in listed for d in range(loops)],
            op.region.block,
        )
    loops = len(shape(op.init, where))
    kept = [d for d in range(loops) if d not in listed]
    maps = [
        AffineMap(loops, 0, tuple(AffineExpr.dimension(d) for d in kept)),
        AffineMap.identity(loops),
    ]
    return Structured(op, [op.input], [op.init], maps, [True] * loops, op.hidden_region.block)


class _FunctionImporter:
    """Builds the cascade of one function, op by op."""

    def __init__(self, fn: func.FuncOp):
        self.fn = fn
        self.where = f"@{fn.sym_name.data}"
        self.block = Block()
        self.values: dict[SSAValue, SSAValue | _Fill | _Empty] = {}
        self.scalars: dict[SSAValue, float | int] = {}
        self.fills: dict[SSAValue, float | int] = {}
        """The constant of every `linalg.fill` result (kept once the fill is materialized)."""
        self.names: set[str] = set()

    # -- names -------------------------------------------------------------------------

    def _name(self, hint: str | None, fallback: str) -> str:
        """A fresh identifier from an SSA name hint."""
        base = re.sub(r"\W", "_", hint or "") or fallback
        if not base[0].isalpha():
            base = f"t_{base}"
        if base in _RESERVED:
            base = f"{base}_"
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    # -- the cascade -------------------------------------------------------------------

    def cascade(self) -> CascadeOp:
        body = self.fn.body.block
        structured: list[Structured] = []
        ties: list[tuple[SSAValue, SSAValue]] = []
        for op in body.ops:
            s = _structured(op, self.where)
            if s is not None:
                structured.append(s)
                ties.extend(zip(s.outputs, op.results, strict=True))
            elif isinstance(op, FillOp):
                ties.extend(zip(op.outputs, op.results, strict=True))
        self.ranks = RankNames(body.args, structured, ties, self.where, self._given_ranks())
        inputs: list[tuple[str, TensorType]] = []
        for k, arg in enumerate(body.args):
            name = self._name(arg.name_hint, f"in{k}")
            inputs.append((name, self._type(arg, f"argument %{arg.name_hint or k}")))
        self.block = Block(arg_types=[t for _, t in inputs])
        for arg, value in zip(body.args, self.block.args, strict=True):
            self.values[arg] = value
        views = iter(structured)
        outputs: list[SSAValue] = []
        for op in body.ops:
            if _structured(op, self.where) is not None:
                self._convert(next(views))
            elif isinstance(op, func.ReturnOp):
                outputs = [self._returned(v) for v in op.arguments]
            else:
                self._other(op)
        self.block.add_op(ReturnOp(outputs))
        output_types = [v.type for v in outputs]
        return CascadeOp(
            self.fn.sym_name.data, inputs, output_types, self.ranks.sizes, Region(self.block)
        )

    def _given_ranks(self) -> dict[SSAValue, list[str]]:
        """Rank names from the arguments' `einsum.ranks` attributes."""
        given: dict[SSAValue, list[str]] = {}
        attrs = self.fn.arg_attrs.data if self.fn.arg_attrs is not None else ()
        for arg, attr in zip(self.fn.body.block.args, attrs, strict=False):
            names = attr.data.get(RANKS_ATTR)
            if names is None:
                continue
            what = f"{self.where}: {RANKS_ATTR} of %{arg.name_hint or arg.index}"
            if not isinstance(names, ArrayAttr) or not all(
                isinstance(n, StringAttr) and RANK_NAME.fullmatch(n.data) for n in names
            ):
                raise LinalgImportError(f'{what} must be a list of rank names ("E", "P")')
            ranks = [n.data for n in names if isinstance(n, StringAttr)]
            if len(ranks) != len(shape(arg, what)) or len(set(ranks)) != len(ranks):
                raise LinalgImportError(f"{what} must name each dimension once")
            given[arg] = ranks
        return given

    def _type(self, value: SSAValue, what: str) -> TensorType:
        t = value.type
        element = getattr(t, "element_type", None)
        if element is None:
            raise LinalgImportError(f"{self.where}: {what} is not a tensor ({t})")
        return TensorType(self.ranks.tensor_ranks(value, what), element)

    def _other(self, op: Operation) -> None:
        """Ops that define what the linalg ops take."""
        if isinstance(op, arith.ConstantOp) and isinstance(op.value, FloatAttr | IntegerAttr):
            self.scalars[op.result] = op.value.value.data
        elif isinstance(op, tensor.EmptyOp):
            self.values[op.tensor] = _Empty()
        elif isinstance(op, FillOp):
            value = op.inputs[0]
            if value not in self.scalars:
                raise LinalgImportError(
                    f"{self.where}: linalg.fill of a value that is not an arith.constant"
                )
            self.fills[op.results[0]] = self.scalars[value]
            self.values[op.results[0]] = _Fill(self.scalars[value], op.results[0].name_hint or "")
        else:
            raise LinalgImportError(
                f"{self.where}: {op.name} has no Extended Einsum form (the import reads "
                "linalg.generic, linalg.fill, the named structured ops, linalg.reduce, "
                "linalg.broadcast, linalg.softmax, "
                "tensor.empty, scalar arith.constant and func.return)"
            )

    def _read(self, value: SSAValue, what: str) -> SSAValue:
        """The einsum value of a tensor a linalg op reads (a fill becomes an Einsum here)."""
        known = self.values.get(value)
        if known is None:
            raise LinalgImportError(f"{self.where}: {what} is defined outside the function")
        if isinstance(known, _Empty):
            raise LinalgImportError(
                f"{self.where}: {what} reads a tensor.empty, whose values are undefined"
            )
        if isinstance(known, _Fill):
            ranks = self.ranks.tensor_ranks(value, what)
            element = self._type(value, what).element_type
            name = self._name(known.name, "fill")
            result = self._einsum(name, ranks, Const(known.value), [], element, [])
            self.values[value] = result
            return result
        return known

    def _returned(self, value: SSAValue) -> SSAValue:
        result = self._read(value, "a returned value")
        if isinstance(result.owner, Block):  # an argument returned as it is: copy it
            t = result.type
            assert isinstance(t, TensorType)
            name = self._name(f"{result.name_hint}_out", "out")
            indices = [IndexExpr.var(r.lower()) for r in t.rank_names]
            return self._einsum(
                name, t.rank_names, Access(0), [(result, indices)], t.element_type, []
            )
        return result

    # -- Einsums -----------------------------------------------------------------------

    def _einsum(
        self,
        name: str,
        ranks: Sequence[str],
        expr: Expr,
        accesses: Sequence[tuple[SSAValue, Sequence[IndexExpr]]],
        element: Attribute,
        reduce: Sequence[tuple[str, str]],
    ) -> SSAValue:
        op = EinsumOp(
            name,
            [IndexExpr.var(r.lower()) for r in ranks],
            list(accesses),
            self._region(name, expr, accesses, element),
            TensorType(ranks, element),
            reduce=reduce,
        )
        self.block.add_op(op)
        return op.result

    def _region(
        self,
        name: str,
        expr: Expr,
        accesses: Sequence[tuple[SSAValue | None, Sequence[IndexExpr]]],
        result: Attribute | _Output,
    ) -> Region:
        """The map region computing `expr` over the accesses (None: the output itself)."""
        element = result.element if isinstance(result, _Output) else result
        arg_types = []
        for value, _ in accesses:
            t = value.type if value is not None else None
            arg_types.append(t.element_type if isinstance(t, TensorType) else element)
        try:
            return build_map_region(expr, arg_types, element)
        except MapBuildError as e:
            raise LinalgImportError(f"{self.where}: {name}: {e}") from e

    def _convert(self, s: Structured) -> None:
        if isinstance(s.op, SoftmaxOp):
            self._softmax(s.op)
            return
        where = f"{self.where}: {s.op.name}"
        variables = self.ranks.loop_variables(s)
        assert s.body is not None
        exprs = yielded_expressions(s.body, where)
        n = len(s.inputs)
        reduced = {variables[d] for d in range(s.loops) if not s.parallel[d]}
        parallel = [variables[d] for d in range(s.loops) if s.parallel[d]]
        outputs: list[_Output] = []
        for j, (out, result) in enumerate(zip(s.outputs, s.op.results, strict=True)):
            ranks = self.ranks.tensor_ranks(result, f"result %{result.name_hint or j}")
            self._check_output(s.maps[n + j], variables, ranks, parallel, where)
            element = self._type(result, "a result").element_type
            name = self._name(result.name_hint, "t")
            outputs.append(_Output(out, result, ranks, element, name))
        reductions = [as_reduction(e, n + j) for j, e in enumerate(exprs)]
        plain = all(
            r is not None and all(leaf.index < n for leaf in leaves(r.value)) for r in reductions
        )
        if reduced and not plain:
            self._recurrence(s, variables, exprs, outputs, where)
            return
        for j, (output, expr) in enumerate(zip(outputs, exprs, strict=True)):
            reduction = reductions[j] if reduced else None
            value = expr if reduction is None else reduction.value
            accesses = self._accesses(s, value, variables, where)
            reduce: list[tuple[str, str]] = []
            if reduction is not None:
                order = [v for _, ix in accesses for i in ix for v in i.variables if v in reduced]
                missing = sorted(reduced - set(order))
                if missing:
                    raise LinalgImportError(
                        f"{where}: reduction dimension of rank {missing[0].upper()} is read by "
                        "no operand the body uses"
                    )
                reduce = [(v, reduction.operator) for v in dict.fromkeys(order)]
            operator = None if reduction is None else reduction.operator
            combined = operator is not None and not self._is_identity(
                output.out, operator, output.element
            )
            name = self._name(f"{output.name}_part", "t") if combined else output.name
            computed = self._einsum(
                name,
                output.ranks,
                renumbered(value, leaves(value)),
                accesses,
                output.element,
                reduce,
            )
            if combined:
                assert operator is not None
                init = self._read(output.out, f"the initial value of {output.name}")
                indices = [IndexExpr.var(r.lower()) for r in output.ranks]
                both = Call(operator, (Access(0), Access(1)))
                accesses = [(init, indices), (computed, indices)]
                computed = self._einsum(
                    output.name, output.ranks, both, accesses, output.element, []
                )
            self.values[output.result] = computed

    def _accesses(
        self, s: Structured, value: Expr, variables: Sequence[str], where: str
    ) -> list[tuple[SSAValue, list[IndexExpr]]]:
        """The operand each leaf of `value` reads, with its indices."""
        accesses = []
        for leaf in leaves(value):
            operand = s.operands[leaf.index]
            indices = [_index(r, variables, where) for r in s.maps[leaf.index].results]
            accesses.append((self._read(operand, f"operand {leaf.index} of {s.op.name}"), indices))
        return accesses

    def _recurrence(
        self,
        s: Structured,
        variables: Sequence[str],
        exprs: Sequence[Expr],
        outputs: Sequence[_Output],
        where: str,
    ) -> None:
        """A body combining its outputs other than by one reduce operator (an online softmax
        keeping a running max and a rescaled sum): iterative Einsums over the reduced rank,
        each output's previous value read at r and its new value written at r+1 (where a later
        output uses an earlier one's new value, it reads it at r+1), from the constant its
        `outs` is filled with; the results are the final values (index R)."""
        reduced = [variables[d] for d in range(s.loops) if not s.parallel[d]]
        if len(reduced) != 1:
            raise LinalgImportError(
                f"{where}: a body that does not yield op(out, value) with op one of add, mul, "
                "max, min and value reading inputs only must reduce exactly one dimension (it "
                "is then a recurrence over it)"
            )
        r = reduced[0]
        n = len(s.inputs)
        placeholders = Block(
            arg_types=[TensorType([r.upper(), *o.ranks], o.element) for o in outputs]
        )
        runs: list[SSAValue] = []
        for j, (output, expr) in enumerate(zip(outputs, exprs, strict=True)):
            start = self.fills.get(output.out)
            if start is None:
                raise LinalgImportError(
                    f"{where}: the initial value of {output.name} must be a linalg.fill of a "
                    "constant (it starts a recurrence over the reduced rank)"
                )
            # the new value of an earlier output, where this one uses it, is read at r+1
            for i in range(j):
                if isinstance(exprs[i], Call):
                    expr = _substituted(expr, exprs[i], Access(-1 - i))
            accesses: list[tuple[SSAValue | None, list[IndexExpr]]] = []
            for leaf in leaves(expr):
                if 0 <= leaf.index < n:
                    accesses.extend(self._accesses(s, leaf, variables, where))
                    continue
                i = leaf.index - n if leaf.index >= 0 else -1 - leaf.index
                step = IndexExpr.var(r, 1 if leaf.index < 0 else 0)
                indices = [step, *(IndexExpr.var(v.lower()) for v in outputs[i].ranks)]
                source = None if i == j else (runs[i] if i < j else placeholders.args[i])
                accesses.append((source, indices))
            run_ranks = [r.upper(), *output.ranks]
            op = EinsumOp(
                self._name(f"{output.name}_run", "t"),
                [IndexExpr.var(r, 1), *(IndexExpr.var(v.lower()) for v in output.ranks)],
                accesses,
                self._region(output.name, renumbered(expr, leaves(expr)), accesses, output),
                TensorType(run_ranks, output.element),
                init=constant_attr(start, output.element),
            )
            self.block.add_op(op)
            runs.append(op.result)
        for placeholder, run in zip(placeholders.args, runs, strict=True):
            placeholder.replace_all_uses_with(run)
        for output, run in zip(outputs, runs, strict=True):
            final = [IndexExpr.extent(r.upper()), *(IndexExpr.var(v.lower()) for v in output.ranks)]
            self.values[output.result] = self._einsum(
                output.name, output.ranks, Access(0), [(run, final)], output.element, []
            )

    def _check_output(
        self,
        out_map: AffineMap,
        variables: Sequence[str],
        ranks: Sequence[str],
        parallel: Sequence[str],
        where: str,
    ) -> None:
        written = []
        for result in out_map.results:
            if not isinstance(result, AffineDimExpr) or variables[result.position] not in parallel:
                raise LinalgImportError(
                    f"{where}: output indexing map {out_map} must be parallel dimensions only"
                )
            written.append(variables[result.position])
        if sorted(written) != sorted(parallel):
            raise LinalgImportError(
                f"{where}: output indexing map {out_map} must use every parallel dimension once"
            )
        assert [r.lower() for r in ranks] == written

    def _is_identity(self, init: SSAValue, operator: str, element: Attribute) -> bool:
        """Whether the initial value is a fill with the identity of `operator`."""
        value = self.fills.get(init)
        if value is None:
            return False
        if is_float(element):
            return float(value) == _IDENTITIES[operator]
        return operator in _INT_IDENTITIES and value == _INT_IDENTITIES[operator]

    def _softmax(self, op: SoftmaxOp) -> None:
        """`softmax(x)` along dimension d: max, exp of the difference, sum, quotient."""
        result = op.result
        if result is None:
            raise LinalgImportError(f"{self.where}: linalg.softmax on buffers (expected tensors)")
        x = self._read(op.input, "the input of linalg.softmax")
        t = x.type
        assert isinstance(t, TensorType)
        ranks = t.rank_names
        d = op.dimension.value.data
        rest = [r for k, r in enumerate(ranks) if k != d]
        v = ranks[d].lower()
        full = [IndexExpr.var(r.lower()) for r in ranks]
        part = [IndexExpr.var(r.lower()) for r in rest]
        base = self._name(result.name_hint, "softmax")
        element = t.element_type
        maximum = self._einsum(
            self._name(f"{base}_max", "t"), rest, Access(0), [(x, full)], element, [(v, "max")]
        )
        shifted = Call("exp", (Call("sub", (Access(0), Access(1))),))
        exp = self._einsum(
            self._name(f"{base}_exp", "t"),
            ranks,
            shifted,
            [(x, full), (maximum, part)],
            element,
            [],
        )
        total = self._einsum(
            self._name(f"{base}_sum", "t"), rest, Access(0), [(exp, full)], element, [(v, "add")]
        )
        quotient = Call("div", (Access(0), Access(1)))
        self.values[result] = self._einsum(
            base, ranks, quotient, [(exp, full), (total, part)], element, []
        )


def _substituted(expr: Expr, part: Expr, by: Expr) -> Expr:
    """`expr` with every occurrence of the subexpression `part` replaced by `by`."""
    if expr == part:
        return by
    if isinstance(expr, Call):
        return Call(expr.fn, tuple(_substituted(a, part, by) for a in expr.args))
    return expr


def _index(expr: AffineExpr, variables: Sequence[str], where: str) -> IndexExpr:
    """An indexing-map result as an index expression over the loop variables."""
    const, factors = _linear(expr, where)
    terms = [IndexTerm(c, variables[d]) for d, c in sorted(factors.items())]
    return IndexExpr.normalised(terms, const)


def _linear(expr: AffineExpr, where: str) -> tuple[int, dict[int, int]]:
    if isinstance(expr, AffineDimExpr):
        return 0, {expr.position: 1}
    if isinstance(expr, AffineConstantExpr):
        return expr.value, {}
    if isinstance(expr, AffineBinaryOpExpr):
        if expr.kind == AffineBinaryOpKind.Add:
            (c1, f1), (c2, f2) = _linear(expr.lhs, where), _linear(expr.rhs, where)
            return c1 + c2, {d: f1.get(d, 0) + f2.get(d, 0) for d in {*f1, *f2}}
        if expr.kind == AffineBinaryOpKind.Mul:
            (c1, f1), (c2, f2) = _linear(expr.lhs, where), _linear(expr.rhs, where)
            if not f1:
                return c1 * c2, {d: c1 * f for d, f in f2.items()}
            if not f2:
                return c1 * c2, {d: c2 * f for d, f in f1.items()}
    raise LinalgImportError(
        f"{where}: index {expr} is not a sum of dimensions times constants (floordiv, mod, "
        "ceildiv and symbols have no Extended Einsum form)"
    )
