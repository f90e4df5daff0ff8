"""The storage chains map-search maps onto: for each unit, its levels from the root to its PEs'
registers (`Architecture.chain`) with what a mapping needs of each: its instances, the
spatial fan-out to the next level along X and Y, its capacity in words, and whether it keeps
tensors by default."""

from __future__ import annotations

from dataclasses import dataclass

from einsum_opt.hardware import Architecture


@dataclass(frozen=True)
class ChainFacts:
    """One level of a unit's chain."""

    name: str
    """As mappings name it (`PE` for the unit's registers)."""
    label: str
    """As reports name it (`pe2d.PE`)."""
    instances: int
    fanout: tuple[int, int]
    """How many instances of the next level (or PEs) one instance feeds, along X and Y."""
    capacity: int | None
    """Words one instance holds (multiple buffering applied; None: unbounded)."""
    default_keep: bool


@dataclass(frozen=True)
class UnitChain:
    """A unit's chain of levels, outermost first, and its array's shape."""

    unit: str
    levels: tuple[ChainFacts, ...]
    axes: int

    def index(self, name: str) -> int:
        """The position of level `name` in the chain."""
        for i, level in enumerate(self.levels):
            if level.name == name:
                return i
        raise KeyError(name)

    def names(self) -> tuple[str, ...]:
        """The level names, outermost first."""
        return tuple(lv.name for lv in self.levels)

    def fanout_levels(self) -> tuple[int, ...]:
        """The levels whose spatial loops fan out (a fan-out above 1 along some axis)."""
        return tuple(i for i, lv in enumerate(self.levels) if lv.fanout != (1, 1))

    @property
    def pes(self) -> int:
        """The PEs of the unit (the product of every fan-out)."""
        total = 1
        for lv in self.levels:
            total *= lv.fanout[0] * lv.fanout[1]
        return total


def unit_chains(arch: Architecture) -> dict[str, UnitChain]:
    """The chain of every unit of `arch`."""
    out = {}
    for name, unit in arch.units.items():
        chain = arch.chain(name)
        levels = []
        for i, c in enumerate(chain):
            inner = chain[i + 1].mesh if i + 1 < len(chain) else unit.mesh
            fanout = (inner[0] // c.mesh[0], inner[1] // c.mesh[1])
            size = c.level.capacity_in_values(arch.word_bytes)
            capacity = None if size is None else int(size / c.level.multiple_buffering)
            levels.append(
                ChainFacts(c.name, c.label, c.instances, fanout, capacity, c.level.default_keep)
            )
        out[name] = UnitChain(name, tuple(levels), len(unit.shape))
    return out
