"""What the cascade rewrites share: Einsum maps as trees of resolved reads, building Einsums
from such trees, fresh names, retargeting reads, and removing dead Einsums.

A *resolved* expression replaces each access number by the read itself (`Read(value, indices)`),
so expressions of different Einsums can be compared and moved between Einsums. Nothing here
knows a tensor's name: rewrites match structure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from xdsl.dialects.builtin import ArrayAttr, FloatAttr, IntegerAttr
from xdsl.ir import Attribute, Operation, SSAValue

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_attrs import IndicesAttr, TensorType
from einsum_opt.dialects.einsum_map import build_map_region, constant_attr, extract_expr
from einsum_opt.dialects.einsum_syntax import Access, Call, Const, Expr, IndexExpr, Size, rank_of
from einsum_opt.dialects.locations import carry_location

M = TypeVar("M")


@dataclass(frozen=True)
class Read:
    """A tensor read at given indices; `value` None reads the Einsum's own previous value."""

    value: SSAValue | None
    indices: tuple[IndexExpr, ...]


@dataclass(frozen=True)
class RCall:
    """An operator applied to resolved arguments."""

    fn: str
    args: tuple[Tree, ...]


Tree = Const | Size | Read | RCall
"""A resolved scalar expression."""


def resolved(op: EinsumOp) -> Tree | None:
    """The map of `op` with its reads in place, or None when it is not an expression."""
    expr = extract_expr(op.body)
    if expr is None:
        return None
    reads = [Read(v, tuple(ix)) for v, ix in op.accesses()]

    def go(e: Expr) -> Tree:
        if isinstance(e, Access):
            return reads[e.index]
        if isinstance(e, Call):
            return RCall(e.fn, tuple(go(a) for a in e.args))
        return e

    return go(expr)


def reads_in(tree: Tree) -> list[Read]:
    """Every read of a tree, left to right."""
    if isinstance(tree, Read):
        return [tree]
    if isinstance(tree, RCall):
        return [r for a in tree.args for r in reads_in(a)]
    return []


def variables_in(tree: Tree) -> set[str]:
    """Index variables the reads of a tree use."""
    return {v for r in reads_in(tree) for ix in r.indices for v in ix.variables}


def call(fn: str, *args: Tree) -> RCall:
    """`fn(args...)`."""
    return RCall(fn, tuple(args))


def product_factors(tree: Tree) -> list[Tree]:
    """The factors of a product (a lone non-product is one factor)."""
    if isinstance(tree, RCall) and tree.fn == "mul":
        return [f for a in tree.args for f in product_factors(a)]
    return [tree]


def product_of(factors: Sequence[Tree]) -> Tree:
    """The left-nested product of factors."""
    out = factors[0]
    for f in factors[1:]:
        out = call("mul", out, f)
    return out


def rename_variables(tree: Tree, mapping: dict[str, IndexExpr]) -> Tree | None:
    """Substitute variables by indices; None if a substituted variable is not a bare index."""
    if isinstance(tree, Read):
        out: list[IndexExpr] = []
        for ix in tree.indices:
            off = ix.as_offset()
            if off is None:
                if any(v in mapping for v in ix.variables):
                    return None
                out.append(ix)
                continue
            var, shift = off
            if var not in mapping:
                out.append(ix)
                continue
            target = mapping[var].as_offset()
            if target is None:
                if shift:
                    return None
                out.append(mapping[var])
            else:
                out.append(IndexExpr.var(target[0], target[1] + shift))
        return Read(tree.value, tuple(out))
    if isinstance(tree, RCall):
        args = [rename_variables(a, mapping) for a in tree.args]
        if any(a is None for a in args):
            return None
        return RCall(tree.fn, tuple(a for a in args if a is not None))
    return tree


def elementwise_producer(read: Read) -> EinsumOp | None:
    """The Einsum computing `read`'s tensor when it is elementwise: no reduction, not
    iterative, a plain expression that reads no previous value."""
    producer = read.value.owner if read.value is not None else None
    if not isinstance(producer, EinsumOp) or producer.reduced_variables():
        return None
    if producer.iterative_rank() is not None:
        return None
    return producer


def producer_value(read: Read) -> Tree | None:
    """The value `read` reads, as its elementwise producer computes it, in the reader's
    indices; None when the producer is not elementwise or its indices cannot be carried over
    (an output assembled from tiles is carried over only when read at the same indices)."""
    producer = elementwise_producer(read)
    if producer is None:
        return None
    body = resolved(producer)
    if body is None or any(r.value is None for r in reads_in(body)):
        return None
    outs = producer.output_indices
    if any(ix.as_variable() is None for ix in outs):
        return body if tuple(outs) == read.indices else None
    mapping = {ix.as_variable() or "": at for ix, at in zip(outs, read.indices, strict=True)}
    return rename_variables(body, mapping)


def inlined_elementwise(tree: Tree, same_type: Attribute | None = None) -> Tree:
    """Replace reads of elementwise Einsums (no reduction, not iterative, a plain expression)
    by their expressions, recursively: the value as computed. With `same_type`, only Einsums
    of that element type are inlined (so the rounding of every step is the same)."""
    if isinstance(tree, RCall):
        return RCall(tree.fn, tuple(inlined_elementwise(a, same_type) for a in tree.args))
    if not isinstance(tree, Read):
        return tree
    if same_type is not None and (tree.value is None or element_type_of(tree.value) != same_type):
        return tree
    value = producer_value(tree)
    return tree if value is None else inlined_elementwise(value, same_type)


class EinsumBuilder:
    """Collects the reads of a new Einsum and builds it from a resolved expression."""

    def __init__(self, name: str, output: Sequence[IndexExpr], result_type: TensorType):
        self.name = name
        self.output = list(output)
        self.result_type = result_type
        self.accesses: list[tuple[SSAValue | None, tuple[IndexExpr, ...]]] = []

    def _access(self, read: Read) -> Access:
        key = (read.value, read.indices)
        for i, (v, ix) in enumerate(self.accesses):
            if v is read.value and ix == read.indices:
                return Access(i)
        self.accesses.append(key)
        return Access(len(self.accesses) - 1)

    def expr(self, tree: Tree) -> Expr:
        """The tree with its reads numbered as this Einsum's accesses."""
        if isinstance(tree, Read):
            return self._access(tree)
        if isinstance(tree, RCall):
            return Call(tree.fn, tuple(self.expr(a) for a in tree.args))
        return tree

    def build(
        self,
        tree: Tree,
        reduce: Sequence[tuple[str, str]] = (),
        init: float | None = None,
    ) -> EinsumOp:
        """The Einsum computing `tree`; `reduce` lists (variable, operator) in any order."""
        expr = self.expr(tree)
        elt = self.result_type.element_type
        arg_types: list[Attribute] = []
        for value, _ in self.accesses:
            t = self.result_type if value is None else value.type
            assert isinstance(t, TensorType)
            arg_types.append(t.element_type)
        body = build_map_region(expr, arg_types, elt)
        outs = {v for ix in self.output for v in ix.variables}
        order: list[str] = []
        for _, indices in self.accesses:
            for ix in indices:
                for v in ix.variables:
                    if v not in outs and v not in order:
                        order.append(v)
        operators = dict(reduce)
        init_attr: FloatAttr | IntegerAttr | None = (
            None if init is None else constant_attr(init, elt)
        )
        return EinsumOp(
            self.name,
            self.output,
            self.accesses,
            body,
            self.result_type,
            [(v, operators.get(v, "add")) for v in order],
            None,
            init_attr,
        )


def build_einsum(
    name: str,
    output: Sequence[IndexExpr],
    ranks: Sequence[str],
    element_type: Attribute,
    tree: Tree,
    reduce: Sequence[tuple[str, str]] = (),
    init: float | None = None,
) -> EinsumOp:
    """Build an Einsum named `name` with output indices `output` over `ranks`."""
    return EinsumBuilder(name, output, TensorType(ranks, element_type)).build(tree, reduce, init)


class Names:
    """Fresh tensor names for a cascade: the wanted name, or it with a number appended."""

    def __init__(self, cascade: CascadeOp):
        self.taken = {n for n, _ in cascade.inputs()} | {e.tensor_name for e in cascade.einsums()}

    def fresh(self, wanted: str) -> str:
        """`wanted` if free, else `wanted1`, `wanted2`, ..."""
        name, n = wanted, 0
        while name in self.taken:
            n += 1
            name = f"{wanted}{n}"
        self.taken.add(name)
        return name


def element_type_of(value: SSAValue) -> Attribute:
    """The element type of a tensor value."""
    assert isinstance(value.type, TensorType)
    return value.type.element_type


def ranks_of(value: SSAValue) -> tuple[str, ...]:
    """The rank names of a tensor value."""
    assert isinstance(value.type, TensorType)
    return value.type.rank_names


IndexMap = Callable[[tuple[IndexExpr, ...]], tuple[IndexExpr, ...]]
"""How the indices of a read of an old tensor become the indices of a read of a new one."""


def retarget_reads(
    cascade: CascadeOp, old: SSAValue, new: SSAValue, prefix: Sequence[IndexExpr] = ()
) -> None:
    """Make every Einsum read `new[prefix..., idx...]` where it read `old[idx...]`."""
    retarget_reads_with(cascade, old, new, lambda ix: (*prefix, *ix))


def retarget_reads_with(
    cascade: CascadeOp,
    old: SSAValue,
    new: SSAValue,
    indices: IndexMap,
    only: Iterable[EinsumOp] | None = None,
) -> None:
    """Make every Einsum (of `only`, if given) read `new[indices(idx)]` where it read
    `old[idx]`."""
    for op in cascade.einsums() if only is None else only:
        if old not in op.inputs:
            continue
        selfs = set(op.self_read_positions())
        operands = list(op.inputs)
        access = list(op.access.data)
        k = 0
        for i in range(len(access)):
            if i in selfs:
                continue
            if operands[k] is old:
                operands[k] = new
                access[i] = IndicesAttr(indices(access[i].data))
            k += 1
        op.operands = operands
        op.access = ArrayAttr(access)


def permuted(
    old_ranks: Sequence[str], new_ranks: Sequence[str], prefix: Sequence[IndexExpr] = ()
) -> IndexMap:
    """The index map of a read of a tensor over `old_ranks` turned into a read of one over
    `prefix` ranks then `new_ranks` (a permutation of `old_ranks`): each index follows its
    rank."""
    order = [list(old_ranks).index(r) for r in new_ranks]
    return lambda ix: (*prefix, *(ix[k] for k in order))


def insert_before(anchor: Operation, ops: Iterable[Operation]) -> None:
    """Insert Einsums before `anchor`, in order."""
    block = anchor.parent_block()
    assert block is not None
    block.insert_ops_before(list(ops), anchor)


def replace_einsum(old: EinsumOp, new: EinsumOp) -> None:
    """Put `new` where `old` is, redirect every use, and erase `old`."""
    insert_before(old, [new])
    carry_location(old, new)
    old.result.replace_all_uses_with(new.result)
    old.detach()
    old.erase()


def invalidate_analyses(cascade: CascadeOp) -> None:
    """Drop analysis results (the `passes` attribute) that a rewrite makes stale."""
    from einsum_opt.transforms.count_passes import PASSES_ATTR

    cascade.attributes.pop(PASSES_ATTR, None)


def remove_dead_einsums(cascade: CascadeOp) -> list[str]:
    """Erase Einsums whose values reach no output; returns their names."""
    live: set[EinsumOp] = set()
    work = [v for v in cascade.return_op().values]
    while work:
        owner = work.pop().owner
        if isinstance(owner, EinsumOp) and owner not in live:
            live.add(owner)
            work.extend(owner.inputs)
    dead = [op for op in cascade.einsums() if op not in live]
    erase_einsums(dead)
    invalidate_analyses(cascade)
    return [op.tensor_name for op in dead]


def erase_einsums(ops: Sequence[EinsumOp]) -> None:
    """Erase Einsums that may read each other (but nothing else may still read them)."""
    for op in ops:
        op.detach()
    for op in ops:
        op.erase(safe_erase=False)


def is_returned(cascade: CascadeOp, value: SSAValue) -> bool:
    """Whether the cascade returns `value`."""
    return cascade.returns(value)


class Ahead:
    """A stand-in for a tensor built later (a read-ahead such as SPD reading RD)."""

    def __init__(self, ranks: Sequence[str], element_type: Attribute):
        from xdsl.parser.core import ForwardDeclaredValue

        self.value: SSAValue = ForwardDeclaredValue(TensorType(ranks, element_type))

    def resolve(self, actual: SSAValue) -> None:
        """Point every read of the stand-in at the real tensor."""
        self.value.replace_all_uses_with(actual)


def remark(message: str) -> None:
    """Tell the user why a pass they asked for changed nothing (stderr, one line)."""
    from einsum_opt.support.diagnostics import Diagnostic, emit

    emit(Diagnostic("remark", message))


def split_pair(cascade: CascadeOp, outer: str, inner: str) -> bool:
    """Whether the ranks of variables `outer` and `inner` come from splitting one rank
    (the rank table declares `OUTER = R / INNER`)."""
    from einsum_opt.dialects.einsum_syntax import rank_of

    size = dict(cascade.ranks.data).get(rank_of(outer))
    return isinstance(size, tuple) and size[1] == rank_of(inner)


def parent_rank(cascade: CascadeOp, rank: str) -> str:
    """The rank that `rank` is the outer tile rank of (M for M1 = M / M0), else `rank`."""
    size = dict(cascade.ranks.data).get(rank)
    return size[0] if isinstance(size, tuple) else rank


def is_tile_level(cascade: CascadeOp, rank: str) -> bool:
    """Whether `rank` is the inner level of a split rank (M0 for M1 = M / M0): a reduction
    over it alone stays within one tile, which is not a pass over the input."""
    return any(isinstance(size, tuple) and size[1] == rank for _, size in cascade.ranks.data)


def merges_over(cascade: CascadeOp, outer: str, rank: str | None) -> bool:
    """Whether a merge whose outer variable is `outer` is one over `rank` (any rank but a
    tile level when None)."""
    whole = parent_rank(cascade, rank_of(outer))
    return whole == rank if rank is not None else not is_tile_level(cascade, rank_of(outer))


def read_final_value(
    cascade: CascadeOp,
    old: EinsumOp,
    running: EinsumOp,
    rank: str,
    returned_as: Callable[[Read], Tree] | None = None,
) -> None:
    """Make every read of `old[o]` read the final value `running[R, o]` instead (the ranks of
    `old` may be in another order than `running`'s other ranks); a returned `old` becomes a
    copy of that final value (or `returned_as` of it), keeping its name."""
    final = (IndexExpr.extent(rank),)
    index_map = permuted(old.result_type.rank_names, ranks_of(running.result)[1:], final)
    retarget_reads_with(cascade, old.result, running.result, index_map)
    if is_returned(cascade, old.result):
        o = tuple(old.output_indices)
        read = Read(running.result, index_map(o))
        value = read if returned_as is None else returned_as(read)
        t = old.result_type
        replace_einsum(old, build_einsum(old.tensor_name, o, t.rank_names, t.element_type, value))


def merge_all(
    cascade: CascadeOp,
    find: Callable[[CascadeOp, str | None], M | None],
    merge: Callable[[CascadeOp, M], None],
    rank: str | None = None,
) -> int:
    """Apply `merge` to what `find` matches until nothing matches; returns how many."""
    count = 0
    while (match := find(cascade, rank)) is not None:
        merge(cascade, match)
        count += 1
    return count


def rescaled_running_sum(
    names: Names,
    wanted: tuple[str, str, str],
    factor: Read,
    local: Tree,
    inner: Sequence[str],
    now: Sequence[IndexExpr],
    ranks: Sequence[str],
    element_type: Attribute,
) -> list[EinsumOp]:
    """The three Einsums of a running sum whose previous value is rescaled each step:
    ```
    SCALED[r, o]    = factor * RUNNING[r, o]
    LOCAL[r, o]     = local :: add(inner)
    RUNNING[r+1, o] = SCALED[r, o] + LOCAL[r, o]       init 0
    ```
    (`wanted` names them, in that order; `now` is [r, o...]). FuseMax's SPD, SLD, RD and
    SPNV, SLNV, RNV are two instances."""
    scaled_name, local_name, running_name = (names.fresh(n) for n in wanted)
    nxt = [IndexExpr.var(now[0].variables[0], 1), *now[1:]]
    ahead = Ahead(ranks, element_type)
    here = tuple(now)
    scaled = build_einsum(
        scaled_name, now, ranks, element_type, call("mul", factor, Read(ahead.value, here))
    )
    part = build_einsum(
        local_name, now, ranks, element_type, local, reduce=[(v, "add") for v in inner]
    )
    running = build_einsum(
        running_name,
        nxt,
        ranks,
        element_type,
        call("add", Read(scaled.result, here), Read(part.result, here)),
        init=0.0,
    )
    ahead.resolve(running.result)
    return [scaled, part, running]
