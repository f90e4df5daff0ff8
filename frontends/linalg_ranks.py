"""Named ranks for upstream tensors: which tensor dimensions are one rank, and what each loop
dimension of a linalg op is called.

Upstream tensors have shapes, not rank names. Two tensor dimensions are one rank when a loop
dimension of some linalg op indexes both as a bare dimension (`affine_map<(d0, d1) -> (d1)>`
reads dimension 0 of its operand along `d1`), or when one is the result of an op writing the
other (a result and its `outs` operand, a `linalg.fill` and the tensor it fills). Ranks are
named by the `einsum.ranks` attribute of a function argument where one names them
(`%q: tensor<64x1024xf32> {einsum.ranks = ["E", "P"]}`), the others A, B, ..., Z, AA, ... in
order of first appearance (the function's arguments first).
A loop dimension's variable is its rank's name in lower case. The einsum dialect indexes a
rank only by its own variable, so a tensor that would hold one rank twice (`A * A` or
`A + transpose(A)` of a square `A` join its two dimensions) has no Extended Einsum form: that
is an error naming the tensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Block, Operation, SSAValue
from xdsl.ir.affine import AffineDimExpr, AffineMap

from einsum_opt.frontends.linalg_body import LinalgImportError


@dataclass
class Structured:
    """A linalg op seen uniformly: operands (inputs, then outputs), indexing maps, iterator
    kinds and body (None for ops without one here, such as `linalg.softmax`)."""

    op: Operation
    inputs: list[SSAValue]
    outputs: list[SSAValue]
    maps: list[AffineMap]
    parallel: list[bool]
    body: Block | None

    @property
    def operands(self) -> list[SSAValue]:
        """Inputs, then outputs."""
        return [*self.inputs, *self.outputs]

    @property
    def loops(self) -> int:
        """The number of loop dimensions."""
        return len(self.parallel)


Node = tuple[SSAValue, int] | tuple[int, int]
"""A tensor dimension (value, k) or a loop dimension (op number, d)."""


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Node, Node] = {}
        self.order: list[Node] = []

    def add(self, node: Node) -> None:
        if node not in self.parent:
            self.parent[node] = node
            self.order.append(node)

    def find(self, node: Node) -> Node:
        self.add(node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: Node, b: Node) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the class keeps the root seen first, so names follow first appearance
            first, second = sorted((ra, rb), key=self.order.index)
            self.parent[second] = first


def shape(value: SSAValue, where: str) -> tuple[int, ...]:
    """The static shape of a tensor value; LinalgImportError for anything else."""
    t = value.type
    if not isinstance(t, TensorType):
        raise LinalgImportError(f"{where}: expected a tensor, got {t}")
    dims = tuple(t.get_shape())
    if any(d < 0 for d in dims):
        raise LinalgImportError(f"{where}: tensor {t} has a dynamic size (sizes must be static)")
    return dims


def _letters(n: int) -> str:
    """A, B, ..., Z, AA, AB, ..."""
    name = ""
    n += 1
    while n:
        n, r = divmod(n - 1, 26)
        name = chr(ord("A") + r) + name
    return name


class RankNames:
    """The rank of every tensor dimension and the variable of every loop dimension."""

    def __init__(
        self,
        arguments: Sequence[SSAValue],
        ops: Sequence[Structured],
        ties: Iterable[tuple[SSAValue, SSAValue]],
        where: str,
        given: Mapping[SSAValue, Sequence[str]] | None = None,
    ):
        """Name the ranks of `arguments`, of the operands and results of `ops`, and of the
        pairs of tensors in `ties` (same shape, same ranks); `given` names the ranks of some
        arguments."""
        self.where = where
        uf = _UnionFind()
        self._uf = uf
        self._ops = {id(s): k for k, s in enumerate(ops)}
        for k, value in enumerate(arguments):
            for position in range(len(shape(value, f"{where}: argument %{value.name_hint or k}"))):
                uf.add((value, position))
        for k, s in enumerate(ops):
            for d in range(s.loops):
                uf.add((k, d))
            for value, m in zip(s.operands, s.maps, strict=True):
                dims = shape(value, f"{where}: {s.op.name}")
                if len(dims) != len(m.results) or m.num_dims != s.loops:
                    raise LinalgImportError(
                        f"{where}: {s.op.name}: indexing map {m} does not match {value.type}"
                    )
                for position, result in enumerate(m.results):
                    uf.add((value, position))
                    if isinstance(result, AffineDimExpr):
                        uf.union((k, result.position), (value, position))
        for a, b in ties:
            for position in range(len(shape(a, where))):
                uf.union((a, position), (b, position))
        names = self._given_names(uf, given or {})
        taken = set(names.values())
        letters = (
            name
            for k in range(len(uf.order) + len(taken) + 1)
            if (name := _letters(k)) not in taken
        )
        sizes: dict[Node, int] = {}
        for node in uf.order:
            root = uf.find(node)
            if root not in names:
                names[root] = next(letters)
            if isinstance(node[0], SSAValue):
                size = shape(node[0], where)[node[1]]
                known = sizes.setdefault(root, size)
                if known != size:
                    raise LinalgImportError(
                        f"{where}: dimensions of sizes {known} and {size} are indexed by one "
                        "loop dimension"
                    )
        self._names = names
        self.sizes: dict[str, int] = {names[r]: size for r, size in sizes.items()}
        """Rank name -> size, in order of first appearance."""

    def _given_names(
        self, uf: _UnionFind, given: Mapping[SSAValue, Sequence[str]]
    ) -> dict[Node, str]:
        """The rank names the arguments give, by class; LinalgImportError when two differ."""
        names: dict[Node, str] = {}
        owner: dict[str, Node] = {}
        for value, ranks in given.items():
            for k, name in enumerate(ranks):
                root = uf.find((value, k))
                if names.setdefault(root, name) != name:
                    raise LinalgImportError(
                        f"{self.where}: ranks {names[root]} and {name} are one rank (a loop "
                        "dimension indexes both)"
                    )
                if owner.setdefault(name, root) != root:
                    raise LinalgImportError(
                        f"{self.where}: rank name {name} is given to two different ranks"
                    )
        return names

    def _rank(self, node: Node) -> str:
        return self._names[self._uf.find(node)]

    def tensor_ranks(self, value: SSAValue, what: str) -> tuple[str, ...]:
        """The ranks of a tensor (`what` names it in errors), outermost first."""
        ranks = tuple(self._rank((value, k)) for k in range(len(shape(value, self.where))))
        _check_distinct(ranks, f"{self.where}: {what}", "its dimensions")
        return ranks

    def loop_variables(self, s: Structured) -> list[str]:
        """The variable of each loop dimension of `s` (the lower-case name of its rank)."""
        k = self._ops[id(s)]
        ranks = tuple(self._rank((k, d)) for d in range(s.loops))
        for d, rank in enumerate(ranks):
            if rank not in self.sizes:
                raise LinalgImportError(
                    f"{self.where}: {s.op.name}: loop dimension d{d} is no tensor dimension "
                    "on its own (its range cannot be inferred)"
                )
        _check_distinct(ranks, f"{self.where}: {s.op.name}", "two of its loop dimensions")
        return [rank.lower() for rank in ranks]


def _check_distinct(ranks: Sequence[str], where: str, what: str) -> None:
    repeated = sorted({r for r in ranks if ranks.count(r) > 1})
    if repeated:
        raise LinalgImportError(
            f"{where}: {what} would both be rank {repeated[0]}: some loop dimension indexes "
            "both (an Extended Einsum names every dimension by its rank, so a tensor cannot "
            "be read along one rank twice, as in A*A or A + transpose(A))"
        )
