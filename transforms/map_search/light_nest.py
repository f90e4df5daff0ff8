"""An Einsum's loop nest under a plan, without building IR: `LightNest` has every part of a
`loopnest.nest` that the lowering's analysis functions read (`data_spaces`, `place_nest`,
the access ops, `find_loops`, `fused_loops`, `dependencies`, `stage_shape`), computed as
`lower_einsum` computes them: loops named as the mapping names them, every index rewritten over
the loop variables (a rank of several pieces `p` is `stride * p1 + p0`), the storage levels
(a kept chain of one level is just the home, as the nest's text gives it). The lowering's
functions then run on it unchanged, so candidates are analysed exactly as lowered IR is, and
the chosen mapping is lowered for real and checked against the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from xdsl.ir import SSAValue

from einsum_opt.dialects.einsum import EinsumOp, reduced_of, stepped_variable
from einsum_opt.dialects.einsum_syntax import IndexExpr, IndexTerm, rank_of, variable_of
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.transforms.map_search.plan import EinsumMap, loop_names


@dataclass(frozen=True)
class _Name:
    data: str


@dataclass(frozen=True)
class _Count:
    data: int


@dataclass(frozen=True)
class LightLoop:
    """One loop as `LoopAttr` presents it."""

    var: _Name
    extent: _Count
    spatial_axis: int | None
    level_name: str


@dataclass(frozen=True)
class EinsumShape:
    """What a nest of an Einsum keeps from the Einsum whatever its mapping: its name, its
    accesses (the operand, None for a self read, and the indices over rank variables), its
    output indices, and the name each operand is read by."""

    name: str
    accesses: tuple[tuple[SSAValue | None, tuple[IndexExpr, ...]], ...]
    output: tuple[IndexExpr, ...]
    names: tuple[str, ...]

    @staticmethod
    def of(op: EinsumOp) -> EinsumShape:
        """The shape of `op`."""
        accesses = tuple((v, tuple(ix)) for v, ix in op.accesses())
        return EinsumShape(
            op.tensor_name,
            accesses,
            tuple(op.output_indices),
            tuple(op.access_name(v) for v, _ in accesses),
        )


_UNSET = object()


class LightNest:
    """The parts of a `loopnest.nest` the lowering reads (see the module docstring)."""

    def __init__(self, shape: EinsumShape, plan: EinsumMap):
        names = loop_names(plan.loops)
        variables = [variable_of(n) for n in names]
        self.tensor_name = shape.name
        self.unit_name = plan.unit
        self._loops = [
            LightLoop(_Name(v), _Count(lp.extent), lp.axis, lp.level)
            for v, lp in zip(variables, plan.loops, strict=True)
        ]
        self._extents = {v: lp.extent for v, lp in zip(variables, plan.loops, strict=True)}
        subst = _substitution(plan, variables)
        self.output_indices = tuple(ix.substituted(subst) for ix in shape.output)
        self._accesses = [
            (value, tuple(ix.substituted(subst) for ix in indices))
            for value, indices in shape.accesses
        ]
        self._names = {id(v): n for (v, _), n in zip(shape.accesses, shape.names, strict=True)}
        homes = dict(plan.homes)
        keeps = dict(plan.keeps)
        tensors = [*shape.names, shape.name]
        self._levels = [keeps[t][0] if t in keeps else homes[t] for t in tensors]
        self._kept: list[list[str] | None] = [
            list(keeps[t]) if t in keeps and len(keeps[t]) > 1 else None for t in tensors
        ]
        # Computed on first use: the lowering's functions ask for them again and again.
        self._iterative: object = _UNSET
        self._reduced: tuple[str, ...] | None = None

    def loop_list(self) -> list[LightLoop]:
        """The loops, outermost first."""
        return list(self._loops)

    def extents(self) -> dict[str, int]:
        """Loop variable -> trip count."""
        return dict(self._extents)

    def level_names(self) -> list[str]:
        """The home of each access, then of the output."""
        return list(self._levels)

    def kept_levels(self) -> list[list[str] | None]:
        """The kept chain of each access, then of the output (None: the default)."""
        return list(self._kept)

    def accesses(self) -> list[tuple[SSAValue | None, tuple[IndexExpr, ...]]]:
        """(operand or None for a self read, indices over loop variables) per access."""
        return list(self._accesses)

    def access_name(self, value: SSAValue | None) -> str:
        """The name of the tensor an access reads."""
        return self.tensor_name if value is None else self._names[id(value)]

    def iterative_rank(self) -> str | None:
        """The variable of the loop the output steps along (`m1` for `RM[m1+1, p]`)."""
        if self._iterative is _UNSET:
            self._iterative = stepped_variable(self.output_indices)
        return self._iterative  # type: ignore[return-value]

    def reduced_variables(self) -> tuple[str, ...]:
        """Loop variables the accesses use and the output does not, in order of first use."""
        if self._reduced is None:
            self._reduced = reduced_of(
                self.output_indices, (indices for _, indices in self._accesses)
            )
        return self._reduced

    def describe(self) -> str:
        """How diagnostics name the nest."""
        return f"nest {self.tensor_name}"


def as_nest(light: LightNest) -> NestOp:
    """`light` where the lowering's functions take a nest: they read only the parts a
    `LightNest` has (checked by the tests, which cost the chosen mappings both ways)."""
    return cast(NestOp, light)


def as_nests(lights: Sequence[LightNest]) -> list[NestOp]:
    """`as_nest` of each."""
    return [as_nest(n) for n in lights]


def _substitution(plan: EinsumMap, variables: list[str]) -> dict[str, IndexExpr]:
    """Rank variable -> its value over the loop variables of its pieces (as
    `lower_einsum` rewrites it: the innermost piece has stride one)."""
    pieces: dict[str, list[tuple[str, int]]] = {}
    for v, lp in zip(variables, plan.loops, strict=True):
        pieces.setdefault(lp.rank, []).append((v, lp.extent))
    subst: dict[str, IndexExpr] = {}
    for rank, found in pieces.items():
        if len(found) == 1:
            continue
        terms: list[IndexTerm] = []
        stride = 1
        for v, extent in reversed(found):
            terms.append(IndexTerm(stride, v))
            stride *= extent
        subst[variable_of(rank)] = IndexExpr.normalised(list(reversed(terms)), 0)
    assert all(rank_of(k) in pieces for k in subst)
    return subst
