"""What map-search knows of a cascade before mapping it: its Einsums, their ranks and reads,
which are views (pure copies that readers read through), the running values and the ranks
they iterate, which Einsums must share a kernel, and which units can execute each Einsum.

Everything is read from the IR's structure (ranks, index expressions, map regions); nothing
depends on a tensor's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_mapping import einsum_ranks
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.dialects.locations import OpPassFailedException
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.hardware import Architecture, ArchitectureError
from einsum_opt.lowering.data_spaces import running_positions
from einsum_opt.lowering.einsum_to_loopnest import lower_einsum
from einsum_opt.lowering.op_counts import count_ops, is_copy

PLAIN, CURRENT, PREVIOUS, FINAL = "plain", "current", "previous", "final"
"""How an Einsum reads a running value: not a running value (or the whole of it), at the
current step, at the previous step, or its final value (`RNV[M1, ...]`)."""


@dataclass(frozen=True)
class ReadFacts:
    """One tensor an Einsum reads: its name, its producer (None for a cascade input or the
    Einsum's own previous value), the reader's ranks indexing it and how it is read."""

    tensor: str
    producer: int | None
    ranks: frozenset[str]
    kind: str


@dataclass(frozen=True)
class EinsumFacts:
    """One Einsum of the cascade, in program order."""

    index: int
    name: str
    ranks: tuple[str, ...]
    """The ranks it iterates: output ranks, then reduced ranks."""
    output_ranks: tuple[str, ...]
    reduced: frozenset[str]
    iterative: str | None
    """The rank it iterates step by step (its running value's rank), if any."""
    reads: tuple[ReadFacts, ...]
    ops: Mapping[str, int]
    """Operation kind -> count per invocation (`count_ops`); empty for a copy."""
    view: bool
    """A pure copy that is not returned: its readers read its source instead."""
    returned: bool
    units: tuple[str, ...]
    """The units whose operations cover `ops`, in the architecture's order."""

    def tensor_ranks(self, tensor: str) -> frozenset[str]:
        """The ranks of this Einsum that index `tensor` (its output: the output ranks, the
        iterative rank left out as the running value holds one step)."""
        if tensor == self.name:
            return frozenset(r for r in self.output_ranks if r != self.iterative)
        found: set[str] = set()
        for read in self.reads:
            if read.tensor == tensor:
                found |= read.ranks
        return frozenset(found)

    @cached_property
    def tensors(self) -> tuple[str, ...]:
        """The tensors it touches: its reads (first occurrence), then its output."""
        names = [r.tensor for r in self.reads if r.tensor != self.name]
        return (*dict.fromkeys(names), self.name)


@dataclass(frozen=True)
class CascadeFacts:
    """A cascade's structure as map-search uses it."""

    name: str
    sizes: Mapping[str, int]
    einsums: tuple[EinsumFacts, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    running: Mapping[str, str]
    """Running value -> the rank it iterates."""
    positions: Mapping[str, int]
    """Running value -> the position of its iterative index among its output indices."""
    views: Mapping[str, str]
    """View -> the tensor it copies."""
    declared: frozenset[str]

    def producer(self, tensor: str) -> EinsumFacts | None:
        """The Einsum producing `tensor` (None for an input)."""
        for e in self.einsums:
            if e.name == tensor:
                return e
        return None

    def computing(self) -> tuple[EinsumFacts, ...]:
        """The Einsums that run (every one but the views)."""
        return tuple(e for e in self.einsums if not e.view)

    def source(self, tensor: str) -> str:
        """The tensor stored for `tensor`: through views to their source."""
        while tensor in self.views:
            tensor = self.views[tensor]
        return tensor

    def readers(self, tensor: str) -> tuple[EinsumFacts, ...]:
        """The computing Einsums reading `tensor` (through views too)."""
        return tuple(
            e
            for e in self.computing()
            if any(self.source(r.tensor) == tensor and r.tensor != e.name for r in e.reads)
        )


def _read_kind(index_list: Sequence[IndexExpr], producer: EinsumOp | None) -> str:
    """How `index_list` reads `producer`'s output: plain, or the running value's current,
    previous or final value."""
    if producer is None:
        return PLAIN
    it = producer.iterative_rank()
    if it is None:
        return PLAIN
    for position, written in enumerate(producer.output_indices):
        offset = written.as_offset()
        if offset is None or offset[0] != it or position >= len(index_list):
            continue
        read = index_list[position]
        if read.as_extent() is not None:
            return FINAL
        got = read.as_offset()
        if got is not None and got[0] == it:
            return CURRENT if got[1] - offset[1] >= 0 else PREVIOUS
    return PLAIN


def capable_units(arch: Architecture, ops: Mapping[str, int]) -> tuple[str, ...]:
    """The units of `arch` that have every operation of `ops`."""
    found = []
    for name, unit in arch.units.items():
        try:
            unit.primitive_counts(ops)
        except ArchitectureError:
            continue
        found.append(name)
    return tuple(found)


def cascade_facts(cascade: CascadeOp, arch: Architecture, pass_name: str) -> CascadeFacts:
    """The facts of `cascade` on `arch`; PassFailedException naming the Einsum when no unit can
    execute one of its operations."""
    einsums = cascade.einsums()
    position: dict[SSAValue, int] = {op.result: i for i, op in enumerate(einsums)}
    sizes = cascade.rank_sizes()
    nests: list[NestOp] = [lower_einsum(cascade, op) for op in einsums]
    try:
        running = running_positions(nests)
        facts: list[EinsumFacts] = []
        views: dict[str, str] = {}
        for i, (op, nest) in enumerate(zip(einsums, nests, strict=True)):
            returned = cascade.returns(op.result)
            view = is_copy(nest) and not returned
            ops = {} if view else count_ops(nest)
            reads = []
            for value, index_list in op.accesses():
                producer = None if value is None else position.get(value)
                owner = einsums[producer] if producer is not None else None
                name = op.tensor_name if value is None else op.access_name(value)
                # A running value holds one step: its iterative index indexes no storage.
                drop = running.get(name)
                ranks = frozenset(
                    rank_of(v)
                    for k, ix in enumerate(index_list)
                    if k != drop
                    for v in ix.variables
                )
                if value is None:
                    reads.append(ReadFacts(name, None, ranks, PREVIOUS))
                    continue
                reads.append(ReadFacts(name, producer, ranks, _read_kind(index_list, owner)))
            if view:
                views[op.tensor_name] = reads[0].tensor
            it = op.iterative_rank()
            units = capable_units(arch, ops) if ops else tuple(arch.units)
            if not units:
                kinds = ", ".join(sorted(ops))
                raise OpPassFailedException(
                    op,
                    f"{pass_name}: einsum {op.tensor_name} needs the operations {kinds}, and no "
                    f"unit of architecture '{arch.name}' has all of them (its units: "
                    + ", ".join(f"{n} ({', '.join(u.ops)})" for n, u in arch.units.items())
                    + ")"
                )
            facts.append(
                EinsumFacts(
                    index=i,
                    name=op.tensor_name,
                    ranks=tuple(einsum_ranks(op)),
                    output_ranks=tuple(rank_of(v) for v in op.output_variables()),
                    reduced=frozenset(rank_of(v) for v in op.reduced_variables()),
                    iterative=None if it is None else rank_of(it),
                    reads=tuple(reads),
                    ops=ops,
                    view=view,
                    returned=returned,
                    units=units,
                )
            )
    finally:
        for nest in nests:
            nest.drop_all_references()
    running_ranks = {
        e.name: e.iterative for e in facts if e.iterative is not None and e.name in running
    }
    return CascadeFacts(
        name=cascade.cascade_name,
        sizes=sizes,
        einsums=tuple(facts),
        inputs=tuple(n for n, _ in cascade.inputs()),
        outputs=tuple(cascade.output_names()),
        running={k: v for k, v in running_ranks.items() if v is not None},
        positions=running,
        views=views,
        declared=frozenset(sizes),
    )
