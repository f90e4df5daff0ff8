"""What each storage level holds at its peak in one kernel (`occupancy`).

Each nest of a kernel keeps tiles of its tensors in the levels of its unit's chain (the nest
analysis gives the largest tile one instance holds). Across the kernel's nests, in program
order, a tensor occupies a level from the first nest that touches it there to the last:
allocations are shared when lifetimes do not overlap, and an Einsum may write over an operand
it reads for the last time when both tiles have the same size and it only overwrites its output
(`SN = exp(QK - GM)` reuses QK's space; a contraction's output accumulates while its operands
are still read, so `Z = A x B` never takes A's place). A running value (RM) lives for the
whole kernel, and so does everything a pipeline of running values touches (its nests run in
every iteration). An allocation shared by several tensors is listed under their names joined
by `, `.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Produced:
    """A tensor a level holds: its name, its size and the tensors its Einsum reads."""

    name: str
    size: int
    reads: frozenset[str] | set[str]
    in_place: bool = True
    """Whether it may take the place of an operand it reads for the last time (its Einsum
    overwrites its output element by element; a reduction accumulates and may not)."""


@dataclass
class _Allocation:
    """A region of a level: the tensors it holds in turn, its size and the index of the last
    reader of the tensor it holds now."""

    names: list[str]
    size: int
    end: int


def share_space(
    produced: Sequence[Produced], persistent: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Allocations (tensor names joined by `, `) -> size, for tensors produced in this order
    (each read by the later ones that list it): a tensor takes the smallest free allocation
    that fits it (else the largest free one, grown; else a new one); an allocation is free
    once its tensor's last reader has run, or at that reader when the reader's output has the
    same size (it writes over its operand). An item of size 0 only reads (it is stored
    elsewhere); a `persistent` tensor is never freed."""
    last: dict[str, int] = {}
    for i, item in enumerate(produced):
        for name in item.reads:
            last[name] = i
    for name in persistent:
        last[name] = len(produced)
    allocations: list[_Allocation] = []
    for i, item in enumerate(produced):
        if item.size == 0:
            continue
        free = [
            a
            for a in allocations
            if a.end < i
            or (
                item.in_place
                and a.end == i
                and a.names[-1] in item.reads
                and a.size == item.size
            )
        ]
        fitting = sorted((a for a in free if a.size >= item.size), key=lambda a: a.size)
        chosen = fitting[0] if fitting else max(free, key=lambda a: a.size, default=None)
        end = max(last.get(item.name, i), i)
        if chosen is None:
            allocations.append(_Allocation([item.name], item.size, end))
        else:
            chosen.names.append(item.name)
            chosen.size = max(chosen.size, item.size)
            chosen.end = end
    return {", ".join(a.names): a.size for a in allocations}


@dataclass(frozen=True)
class Touch:
    """One nest's tile of one tensor at one level: the nest's position in the kernel, whether
    it writes the tensor, and the words one instance holds."""

    nest: int
    tensor: str
    writes: bool
    words: int
    accumulates: bool = False
    """For a write: whether the nest reads back what it writes (a reduction, a running
    value), so its output cannot take the place of its operands."""


def occupancy(
    touches: Sequence[Touch], persistent: frozenset[str] = frozenset()
) -> dict[str, int]:
    """Allocation -> words at one level for a kernel: each tensor at its largest tile, alive
    from its first nest to its last (see the module docstring)."""
    by_nest: dict[int, list[Touch]] = {}
    for t in touches:
        by_nest.setdefault(t.nest, []).append(t)
    return nest_occupancy([by_nest[nest] for nest in sorted(by_nest)], persistent)


def nest_occupancy(
    groups: Sequence[Sequence[Touch]], persistent: frozenset[str] = frozenset()
) -> dict[str, int]:
    """`occupancy` of touches given nest by nest in program order (their `nest` fields are
    not read); a nest that touches nothing at the level is an empty group or left out."""
    size: dict[str, int] = {}
    for group in groups:
        for t in group:
            if t.words > size.get(t.tensor, -1):
                size[t.tensor] = t.words
    produced = [
        Produced("", 0, reads)
        if tensor is None
        else Produced(tensor, size[tensor], reads, in_place)
        for tensor, reads, in_place in production_order(groups)
    ]
    return share_space(produced, persistent)


class TouchShape(Protocol):
    """What a touch says apart from its words: its tensor, whether it writes it and whether
    it reads back what it writes (a `Touch` is one)."""

    @property
    def tensor(self) -> str: ...

    @property
    def writes(self) -> bool: ...

    @property
    def accumulates(self) -> bool: ...


def production_order(
    groups: Sequence[Sequence[TouchShape]],
) -> list[tuple[str | None, set[str], bool]]:
    """The items `share_space` allocates for touches given nest by nest, without their sizes:
    (tensor, the tensors its nest reads, in place) for a tensor's first touch, (None, reads,
    False) for a nest that only reads (or writes a tensor it already holds). A tensor is
    allocated at its first touch, by a reader (an input, or a running value read ahead) or by
    its writer."""
    order: list[tuple[str | None, set[str], bool]] = []
    started: set[str] = set()
    for group in groups:
        if not group:
            continue
        reads = {t.tensor for t in group if not t.writes}
        for t in group:
            if not t.writes and t.tensor not in started:
                order.append((t.tensor, set(), True))
                started.add(t.tensor)
        written = [t for t in group if t.writes]
        for t in written:
            if t.tensor in started:
                order.append((None, reads | {t.tensor}, False))
                continue
            order.append((t.tensor, reads, not t.accumulates))
            started.add(t.tensor)
        if not written:
            order.append((None, reads, False))
    return order


def totals(holds: Mapping[str, int]) -> int:
    """The words of a level's allocations together."""
    return sum(holds.values())
