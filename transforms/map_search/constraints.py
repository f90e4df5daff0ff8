"""Constraints on the mapping space (Timeloop's `architecture_constraints` and `mapspace`
constraints): per storage level, fixed temporal factors and loop orders, fixed spatial
factors and axes, and tensors kept or bypassed. An empty `Constraints` allows everything."""

from __future__ import annotations

from dataclasses import dataclass

from einsum_opt.transforms.map_search.own_loops import LevelTable, OwnContext


@dataclass(frozen=True)
class Constraints:
    """The constraints map-search honours (none by default)."""

    def allows_spatial(self, ctx: OwnContext, assignment: tuple[object, ...]) -> bool:
        """Whether a spatial assignment respects the spatial constraints."""
        del ctx, assignment
        return True

    def adjust(self, ctx: OwnContext, table: LevelTable) -> LevelTable:
        """`table` with its temporal factors and orders brought into the constraints."""
        del ctx
        return table

    def allows_keep(self, unit: str, tensor: str, chain: tuple[str, ...]) -> bool:
        """Whether `tensor` may be kept exactly at the levels of `chain` on `unit`."""
        del unit, tensor, chain
        return True

    def allows(self, ctx: OwnContext, table: LevelTable) -> bool:
        """Whether a level table respects every constraint."""
        del ctx, table
        return True
