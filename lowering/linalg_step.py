"""One Einsum or loop nest as upstream MLIR: `scf.for` loops around a `linalg.generic` tile.

A *step* computes an op's output (or, inside the loop over an iterative rank, its slice at
the current index). Its plan names the loops run as `scf.for` (outermost first, carrying the
output tensor) and the loops of the tile, the `linalg.generic` inside them. An Einsum is one
tile; a loop nest keeps its loops down to its first spatial loop as `scf.for` and makes the
rest its tile (`loopnest_to_linalg`).

Reductions accumulate into the output: the part of the output the tile writes is filled with
the reduce operator's identity the first time it is visited (when every enclosing reduced
loop is at 0), then each tile combines into it. Reductions with different operators
(`max` over one rank of a `+`-reduction over another) run as one generic per run of equal
operators, innermost (first listed) first, through temporaries; their loops are all in the
tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import AffineMapAttr
from xdsl.dialects.linalg.attrs import IteratorTypeAttr
from xdsl.dialects.linalg.ops import GenericOp
from xdsl.ir import Attribute, Region, SSAValue
from xdsl.ir.affine import AffineExpr, AffineMap

from einsum_opt.dialects.einsum import EinsumStructure, tensor_name_of
from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.lowering.linalg_body import combine_body, map_body
from einsum_opt.lowering.linalg_ir import IRBuilder, element_of, identity_of
from einsum_opt.lowering.linalg_views import Dims, View, view_of

Loop = tuple[str, int]
"""A loop variable and its trip count."""


@dataclass(frozen=True)
class StepPlan:
    """The loops of one step: `outer` as `scf.for`, outermost first; `tile` as the generic's
    dimensions, in order."""

    outer: tuple[Loop, ...]
    tile: tuple[Loop, ...]


@dataclass(frozen=True)
class Operand:
    """One operand of a generic: the viewed tensor and its indexing map results."""

    value: SSAValue
    results: tuple[AffineExpr, ...]
    pure: frozenset[str]


def reduction_runs(op: EinsumStructure) -> list[tuple[str, list[str]]]:
    """The reductions as runs of one operator, in the order they apply: (operator, variables)."""
    runs: list[tuple[str, list[str]]] = []
    for var, operator in op.reduce.data:
        if runs and runs[-1][0] == operator:
            runs[-1][1].append(var)
        else:
            runs.append((operator, [var]))
    return runs


@dataclass(frozen=True)
class Step:
    """One Einsum or nest to emit, with what it reads: `tensors` holds the current value of
    every tensor by name, `extents` every loop variable's trip count, `sizes` the ranks'."""

    op: EinsumStructure
    plan: StepPlan
    tensors: Mapping[str, SSAValue]
    extents: Mapping[str, int]
    sizes: Mapping[str, int]

    def emit(self, b: IRBuilder, out: SSAValue, induction: Mapping[str, SSAValue]) -> SSAValue:
        """Emit the op into `out` (its current value) inside loops over `induction`; returns
        the new value of `out`."""
        return self._level(b, 0, out, induction)

    def _level(
        self, b: IRBuilder, k: int, out: SSAValue, induction: Mapping[str, SSAValue]
    ) -> SSAValue:
        if k == len(self.plan.outer):
            return self._tile(b, out, induction)
        var, extent = self.plan.outer[k]

        def body(inner: IRBuilder, iv: SSAValue, args: list[SSAValue]) -> list[SSAValue]:
            return [self._level(inner, k + 1, args[0], {**induction, var: iv})]

        return b.for_loop(extent, [out], body)[0]

    def _sources(self, out: SSAValue) -> list[SSAValue]:
        """The tensor each access reads (a self read reads `out`)."""
        return [
            out if value is None else self.tensors[tensor_name_of(value)]
            for value, _ in self.op.accesses()
        ]

    def _inputs(self, b: IRBuilder, out: SSAValue, dims: Dims) -> list[Operand]:
        """The accesses as operands over `dims`."""
        indices = [ix for _, ix in self.op.accesses()]
        return [
            _operand(b, value, ix, self.sizes, dims)
            for value, ix in zip(self._sources(out), indices, strict=True)
        ]

    def _tile(self, b: IRBuilder, out: SSAValue, induction: Mapping[str, SSAValue]) -> SSAValue:
        op, plan = self.op, self.plan
        outputs = set(op.output_variables())
        tile = [v for v, _ in plan.tile]
        runs = reduction_runs(op)
        if len(runs) > 1:
            return self._stages(b, runs, [v for v in tile if v in outputs], out, induction)
        dims = _dims(tile, self.extents, induction)
        inputs = self._inputs(b, out, dims)
        out_view = view_of(b, out, op.output_indices, self.sizes, dims, output=True)
        target = out_view.apply(b, out)
        operator = runs[0][0] if runs else None
        if operator is not None:
            outer_reduced = [induction[v] for v, _ in plan.outer if v not in outputs]
            target = _initialised(b, target, operator, outer_reduced)
        body = _map_body(op, inputs, target, operator, self.sizes)
        destination = _out_operand(target, out_view)
        iterators = [v in outputs for v in tile]
        result = _generic(b, inputs, destination, iterators, body, self.extents, tile)
        return out_view.restore(b, out, result)

    def _stages(
        self,
        b: IRBuilder,
        runs: list[tuple[str, list[str]]],
        out_vars: list[str],
        out: SSAValue,
        induction: Mapping[str, SSAValue],
    ) -> SSAValue:
        """Reductions with several operators: one generic per run, through temporaries."""
        element = element_of(out)
        previous: SSAValue | None = None
        out_view: View | None = None
        for k, (operator, reduced) in enumerate(runs):
            later = [v for _, vs in runs[k + 1 :] for v in vs]
            tile = [*out_vars, *reduced, *later]
            dims = _dims(tile, self.extents, induction)
            if k == len(runs) - 1:
                out_view = view_of(b, out, self.op.output_indices, self.sizes, dims, output=True)
                target = _initialised(b, out_view.apply(b, out), operator, [])
                destination = _out_operand(target, out_view)
            else:
                kept = [*out_vars, *later]
                shape = [self.extents[v] for v in kept]
                target = b.filled(identity_of(operator, element), element, shape)
                destination = Operand(target, tuple(dims.dim(v) for v in kept), frozenset(kept))
            iterators = [v in out_vars or v in later for v in tile]
            if previous is None:
                inputs = self._inputs(b, out, dims)
                body = _map_body(self.op, inputs, target, operator, self.sizes)
            else:
                inputs = [Operand(previous, tuple(dims.dim(v) for v in tile), frozenset(tile))]
                body = combine_body(element, operator)
            previous = _generic(b, inputs, destination, iterators, body, self.extents, tile)
        assert previous is not None and out_view is not None
        return out_view.restore(b, out, previous)


def _dims(
    tile: Sequence[str], extents: Mapping[str, int], induction: Mapping[str, SSAValue]
) -> Dims:
    return Dims({v: k for k, v in enumerate(tile)}, extents, induction)


def _operand(
    b: IRBuilder,
    value: SSAValue,
    indices: Sequence[IndexExpr],
    sizes: Mapping[str, int],
    dims: Dims,
) -> Operand:
    view = view_of(b, value, indices, sizes, dims)
    return Operand(view.apply(b, value), tuple(view.results), frozenset(view.pure))


def _out_operand(target: SSAValue, view: View) -> Operand:
    return Operand(target, tuple(view.results), frozenset(view.pure))


def _initialised(
    b: IRBuilder, target: SSAValue, operator: str, outer_reduced: Sequence[SSAValue]
) -> SSAValue:
    """`target` filled with the identity of `operator`, the first time the enclosing reduced
    loops visit it."""
    identity = identity_of(operator, element_of(target))
    if not outer_reduced:
        return b.fill(identity, target)
    first = b.all_zero(outer_reduced)
    return b.if_else(first, lambda inner: inner.fill(identity, target), lambda inner: target)


def _map_body(
    op: EinsumStructure,
    inputs: Sequence[Operand],
    target: SSAValue,
    operator: str | None,
    sizes: Mapping[str, int],
) -> Region:
    arg_types: list[Attribute] = [element_of(o.value) for o in inputs]
    return map_body(
        op.body,
        arg_types,
        list(range(len(inputs))),
        element_of(target),
        operator,
        sizes,
        op.describe(),
    )


def _generic(
    b: IRBuilder,
    inputs: Sequence[Operand],
    out: Operand,
    parallel: Sequence[bool],
    body: Region,
    extents: Mapping[str, int],
    tile: Sequence[str],
) -> SSAValue:
    """A `linalg.generic` over `tile`; a dimension no operand spans whole gets a shape-only
    input (`tensor.empty`) so that MLIR can infer its range."""
    covered = set(out.pure).union(*(o.pure for o in inputs))
    missing = [v for v in tile if v not in covered]
    operands = list(inputs)
    if missing:
        element = element_of(out.value)
        carrier = b.empty(element, [extents[v] for v in missing])
        operands.append(
            Operand(
                carrier,
                tuple(AffineExpr.dimension(tile.index(v)) for v in missing),
                frozenset(missing),
            )
        )
        block = body.block
        block.insert_arg(element, len(inputs))
    n = len(tile)
    maps = [AffineMapAttr(AffineMap(n, 0, o.results)) for o in (*operands, out)]
    iterators = [
        IteratorTypeAttr.parallel() if p else IteratorTypeAttr.reduction() for p in parallel
    ]
    generic = GenericOp(
        [o.value for o in operands], [out.value], body, maps, iterators, [out.value.type]
    )
    return b.value(generic)
