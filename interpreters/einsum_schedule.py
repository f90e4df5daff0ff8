"""The order in which a cascade's Einsums (and loop nests) run, and the loops over iterative
ranks.

Loop nests are scheduled exactly like the Einsums they compute (below, "Einsum" means either):
a nest's iterative loop is the variable of its output index `r+1`, and a Python loop runs over
its trip count. Einsum A depends on Einsum B when A reads B's output. Reads usually go to
earlier Einsums, but an Einsum may read the previous value of a later iterative Einsum (the
1-pass cascade's `SPD[m1, p] = PRM[m1, p] * RD[m1, p]` before
`RD[m1+1, p] = SPD[m1, p] + SLD[m1, p]`), so the dependency graph can have cycles. Its strongly
connected components run in topological order (ties broken by program order):

- a single Einsum without an iterative rank runs fully vectorised;
- an iterative Einsum, or a cycle, runs a Python loop over the iterative variable `r` that all
  members share; at each `r` every member, in program order, computes its slice (index r+1 of
  an iterative tensor, index r of any other), vectorised over everything else. The loop runs
  over the extent of `r` (a nest's trip count); preparing each member's kernel checks that its
  steps write its whole output.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import TypeVar

import numpy as np

from einsum_opt.dialects.einsum_attrs import format_indices
from einsum_opt.dialects.einsum_syntax import rank_of
from einsum_opt.interpreters.compute_ops import (
    ComputeOp,
    iterative_position,
    output_position,
    producer_of,
)
from einsum_opt.interpreters.einsum_kernel import EinsumKernel, Layout
from einsum_opt.interpreters.einsum_values import (
    Array,
    ExecutionError,
    constant_value,
    numeric_type,
)

Node = TypeVar("Node")


def producers(op: ComputeOp) -> list[ComputeOp]:
    """The other Einsums and nests whose outputs `op` reads, each once, in access order."""
    found: list[ComputeOp] = []
    for value, _ in op.accesses():
        owner = producer_of(value)
        if owner is not None and owner is not op and owner not in found:
            found.append(owner)
    return found


def strongly_connected(
    nodes: Sequence[Node], successors: Callable[[Node], Iterable[Node]]
) -> list[list[Node]]:
    """The strongly connected components of a graph (Tarjan's algorithm, without recursion)."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    stack: list[Node] = []
    on_stack: set[Node] = set()
    components: list[list[Node]] = []

    def visit(node: Node) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in nodes:
        if root in index:
            continue
        visit(root)
        work = [(root, iter(successors(root)))]
        while work:
            node, pending = work[-1]
            descended = False
            for succ in pending:
                if succ not in index:
                    visit(succ)
                    work.append((succ, iter(successors(succ))))
                    descended = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[Node] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member is node:
                        break
                components.append(component)
    return components


def execution_order(einsums: Sequence[ComputeOp]) -> list[list[ComputeOp]]:
    """Groups of Einsums to run one after the other; each group is in program order."""
    position = {op: i for i, op in enumerate(einsums)}
    reads = {op: [p for p in producers(op) if p in position] for op in einsums}
    groups = [
        sorted(c, key=position.__getitem__) for c in strongly_connected(einsums, reads.__getitem__)
    ]
    group_of = {op: g for g, members in enumerate(groups) for op in members}
    waiting_on = [
        {group_of[p] for op in members for p in reads[op]} - {g} for g, members in enumerate(groups)
    ]
    consumers: list[set[int]] = [set() for _ in groups]
    for g, needs in enumerate(waiting_on):
        for n in needs:
            consumers[n].add(g)
    ready = [(position[members[0]], g) for g, members in enumerate(groups) if not waiting_on[g]]
    heapq.heapify(ready)
    order: list[list[ComputeOp]] = []
    while ready:
        _, g = heapq.heappop(ready)
        order.append(groups[g])
        for c in consumers[g]:
            waiting_on[c].discard(g)
            if not waiting_on[c]:
                heapq.heappush(ready, (position[groups[c][0]], c))
    return order


def run_group(
    members: Sequence[ComputeOp], layout: Layout, store: MutableMapping[str, Array]
) -> None:
    """Compute the outputs of one group of Einsums (or nests) into `store`."""
    if len(members) == 1 and members[0].iterative_rank() is None:
        op = members[0]
        store[op.tensor_name] = EinsumKernel(op, layout).compute(store)
        return
    r = loop_variable(members)
    check_loop_reads(members, r)
    kernels = [EinsumKernel(op, layout, fixed=r) for op in members]
    arrays = []
    for op in members:
        store[op.tensor_name] = array = _allocate(op, layout)
        arrays.append(array)
    for i in range(max(kernel.fixed_extent for kernel in kernels)):
        for kernel, array in zip(kernels, arrays, strict=True):
            if i < kernel.fixed_extent:
                kernel.write(array, store, i)


def _allocate(op: ComputeOp, layout: Layout) -> Array:
    """The array of `op`'s output; an iterative one holds its initial value at index 0."""
    t = op.result_type
    array = np.zeros(layout.shape(op.tensor_name, t), numeric_type(t.element_type).dtype)
    axis = iterative_position(op)
    if axis is not None:
        assert op.init is not None  # the kernels, prepared first, check it
        key: list[slice | int] = [slice(None)] * array.ndim
        key[axis] = 0
        array[tuple(key)] = constant_value(op.init, t.element_type)
    return array


def loop_variable(members: Sequence[ComputeOp]) -> str:
    """The iterative variable every member of a loop group iterates; ExecutionError if none."""
    names = ", ".join(op.tensor_name for op in members)
    variables = sorted({v for op in members if (v := op.iterative_rank()) is not None})
    if len(variables) != 1:
        found = ", ".join(rank_of(v) for v in variables) or "none"
        raise ExecutionError(
            f"einsums {names} read each other but do not iterate one common rank "
            f"(iterative ranks: {found})"
        )
    r = variables[0]
    for op in members:
        if r not in op.output_variables():
            raise ExecutionError(
                f"{op.describe()} is computed together with {names} (they read each "
                f"other) but does not iterate rank {rank_of(r)}"
            )
    return r


def check_loop_reads(members: Sequence[ComputeOp], r: str) -> None:
    """ExecutionError if a member reads another member's value before the loop computes it.

    At step r, the previous index r of an iterative member is always known (its initial value
    or the previous step), index r+1 only once that member has run; a non-iterative member's
    index r is known once it has run.
    """
    position = {op: i for i, op in enumerate(members)}
    rank = rank_of(r)
    for op in members:
        for value, indices in op.accesses():
            producer = producer_of(value)
            if producer is None or producer not in position or producer is op:
                continue
            k = output_position(producer, r)
            if k is None or k >= len(indices):
                raise ExecutionError(
                    f"{producer.describe()} is computed in the loop over {rank} but does not "
                    f"iterate it"
                )
            index = indices[k]
            offset = index.as_offset()
            earlier = position[producer] < position[op]
            iterative = producer.iterative_rank() == r
            known = {0: iterative or earlier, 1: iterative and earlier}
            if offset is not None and offset[0] == r and known.get(offset[1], False):
                continue
            available = f"{r}+1" if iterative and earlier else r
            raise ExecutionError(
                f"{op.describe()}: reads {producer.tensor_name}{format_indices(indices)} "
                f"inside the loop over {rank}, where only index {available} of "
                f"{producer.tensor_name} along {rank} is available"
            )
