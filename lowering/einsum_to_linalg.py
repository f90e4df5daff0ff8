"""`lower-to-linalg`: every cascade becomes a `func.func` on tensors in upstream MLIR.

```mlir
func.func @softmax(%X: tensor<1024x256xf32>) -> tensor<1024x256xf32> {
  %GM = linalg.generic {indexing_maps = [...], iterator_types = ["parallel", "reduction"]}
          ins(%X : tensor<1024x256xf32>) outs(%0 : tensor<256xf32>) {...} -> tensor<256xf32>
  ...
}
```

The function takes the cascade's inputs in order (named as they are, their ranks in an
`einsum.ranks` argument attribute, which `linalg-to-einsum` reads back) and returns its outputs
in order; every rank has its declared size. Each Einsum is one `linalg.generic` (its indexing
maps from the index expressions, its body the map region followed by the reduce operator),
writing into a `linalg.fill` of the operator's identity when it reduces. Einsums run in the
reference interpreter's schedule (`einsum_schedule`): an iterative Einsum, or a cycle of
Einsums that read each other's running values, becomes one `scf.for` over the iterative rank
carrying their tensors, initialised by a `linalg.fill` of the initial value; each member
computes its slice at the current index. An iterative tensor holds size + 1 entries along its
iterative rank (index 0: the initial value), as in the interpreter, also when it is returned.
Blocked and shifted indices read through slices and reshapes (`linalg_views`). Loop nests
(after `lower-to-loopnest`) keep their loops (`loopnest_to_linalg`).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_attrs import TensorType
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.dialects.upstream import RANKS_ATTR
from einsum_opt.interpreters.compute_ops import (
    ComputeOp,
    compute_ops,
    iterative_rank_name,
    unique,
    variable_extents,
)
from einsum_opt.interpreters.einsum import rank_sizes
from einsum_opt.interpreters.einsum_kernel import EinsumKernel, Layout
from einsum_opt.interpreters.einsum_schedule import (
    check_loop_reads,
    execution_order,
    loop_variable,
)
from einsum_opt.interpreters.einsum_values import ExecutionError
from einsum_opt.lowering.linalg_ir import IRBuilder, tensor_type
from einsum_opt.lowering.linalg_step import Step, StepPlan
from einsum_opt.lowering.linalg_views import ViewError
from einsum_opt.lowering.loopnest_to_linalg import nest_plan


class ExportError(Exception):
    """A cascade that cannot be exported (the message names the cascade and the culprit; `op`
    is the Einsum or nest at fault, else the cascade)."""

    def __init__(self, op: Operation, message: str):
        super().__init__(message)
        self.op = op


def einsum_plan(op: EinsumOp, fixed: str | None, extents: Mapping[str, int]) -> StepPlan:
    """An Einsum is one tile: its output variables, then its reduced ones."""
    variables = [v for v in unique(op.variables()) if v != fixed]
    return StepPlan((), tuple((v, extents[v]) for v in variables))


def _plan(
    op: ComputeOp, fixed: str | None, extents: Mapping[str, int], sizes: Mapping[str, int]
) -> StepPlan:
    if isinstance(op, NestOp):
        return nest_plan(op, fixed, sizes)
    return einsum_plan(op, fixed, extents)


def cascade_to_func(cascade: CascadeOp, ranks: Mapping[str, int] | None = None) -> func.FuncOp:
    """The `func.func` computing `cascade` (with `ranks` overriding declared rank sizes).

    Raises ExportError when the cascade cannot run (as the interpreter would refuse it) or
    when an output index cannot be written through slices and reshapes.
    """
    where = f"@{cascade.cascade_name}"
    culprit: Operation = cascade
    try:
        sizes = rank_sizes(cascade, ranks)
        ops = compute_ops(cascade)
        layout = Layout(sizes, {e.tensor_name: it for e in ops if (it := iterative_rank_name(e))})
        inputs = [(n, tensor_type(t.element_type, layout.shape(n, t))) for n, t in cascade.inputs()]
        results: list[Attribute] = []
        for name, value in zip(cascade.output_names(), cascade.return_op().values, strict=True):
            t = value.type
            assert isinstance(t, TensorType)
            results.append(tensor_type(t.element_type, layout.shape(name, t)))
        rank_names = [
            DictionaryAttr({RANKS_ATTR: ArrayAttr([StringAttr(r) for r in t.rank_names])})
            for _, t in cascade.inputs()
        ]
        fn = func.FuncOp(
            cascade.cascade_name,
            ([t for _, t in inputs], results),
            arg_attrs=ArrayAttr(rank_names),
        )
        tensors: dict[str, SSAValue] = {}
        for (name, _), arg in zip(inputs, fn.body.block.args, strict=True):
            arg.name_hint = name
            tensors[name] = arg
        b = IRBuilder(InsertPoint.at_end(fn.body.block))
        for group in execution_order(ops):
            if len(group) == 1 and group[0].iterative_rank() is None:
                culprit = group[0]
                _emit_single(b, group[0], tensors, layout)
            else:
                culprit = cascade  # a loop of several: the message names them
                _emit_loop(b, group, tensors, layout)
        culprit = cascade
        b.add(func.ReturnOp(*[tensors[n] for n in cascade.output_names()]))
    except (ExecutionError, ViewError) as e:
        raise ExportError(culprit, f"{where}: {e}") from e
    return fn


def _emit_single(
    b: IRBuilder, op: ComputeOp, tensors: MutableMapping[str, SSAValue], layout: Layout
) -> None:
    """A non-iterative Einsum (or nest) on its own."""
    EinsumKernel(op, layout)  # the interpreter's checks: indices in range, outputs one-to-one
    extents = variable_extents(op, layout.sizes)
    t = op.result_type
    out = b.empty(t.element_type, layout.shape(op.tensor_name, t))
    plan = _plan(op, None, extents, layout.sizes)
    result = Step(op, plan, tensors, extents, layout.sizes).emit(b, out, {})
    result.name_hint = op.tensor_name
    tensors[op.tensor_name] = result


def _emit_loop(
    b: IRBuilder,
    members: Sequence[ComputeOp],
    tensors: MutableMapping[str, SSAValue],
    layout: Layout,
) -> None:
    """Einsums iterating one rank together: one `scf.for` carrying their tensors."""
    r = loop_variable(members)
    check_loop_reads(members, r)
    extents = {}
    for op in members:
        EinsumKernel(op, layout, fixed=r)
        extents[op.tensor_name] = variable_extents(op, layout.sizes)
    trips = {e[r] for e in extents.values()}
    if len(trips) != 1:
        raise ExecutionError(
            f"einsums {', '.join(op.tensor_name for op in members)} iterate {r} together with "
            f"different trip counts ({', '.join(map(str, sorted(trips)))})"
        )
    initial = []
    for op in members:
        t = op.result_type
        shape = layout.shape(op.tensor_name, t)
        if op.iterative_rank() is not None:
            assert op.init is not None
            initial.append(b.filled(op.init.value.data, t.element_type, shape))
        else:
            initial.append(b.empty(t.element_type, shape))
    names = [op.tensor_name for op in members]

    def body(inner: IRBuilder, iv: SSAValue, args: list[SSAValue]) -> list[SSAValue]:
        current = dict(tensors)
        current.update(zip(names, args, strict=True))
        for op in members:
            loops = extents[op.tensor_name]
            step = Step(op, _plan(op, r, loops, layout.sizes), current, loops, layout.sizes)
            current[op.tensor_name] = step.emit(inner, current[op.tensor_name], {r: iv})
        return [current[n] for n in names]

    results = b.for_loop(trips.pop(), initial, body)
    for name, value in zip(names, results, strict=True):
        value.name_hint = name
        tensors[name] = value


def lower_module_to_linalg(module: ModuleOp, ranks: Mapping[str, int] | None = None) -> None:
    """Replace every cascade of `module` by its `func.func`, in place."""
    for cascade in cascades_in(module):
        fn = cascade_to_func(cascade, ranks)
        parent = cascade.parent_block()
        assert parent is not None
        parent.insert_op_before(fn, cascade)
        cascade.detach()
        cascade.erase(safe_erase=False)


@dataclass(frozen=True)
class LowerToLinalgPass(ModulePass):
    """Turn every cascade (Einsums, loop nests or both) into a `func.func` on tensors in
    upstream MLIR (linalg, scf, tensor, arith, math), which `mlir-opt-22` reads."""

    name = "lower-to-linalg"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            lower_module_to_linalg(op)
        except ExportError as e:
            raise OpPassFailedException(e.op, f"lower-to-linalg: {e}") from e
