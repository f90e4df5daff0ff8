"""Candidate mappings of one cascade, costed exactly and fast: `Evaluator.cost(plan)` gives what
`lower-to-loopnest,lower-to-dataflow` and the cost model would report for the cascade mapped
by `plan`, from per-nest analyses kept across candidates (`nest_eval`) and the kernels'
programs rebuilt in closed form (`compose`)."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR
from einsum_opt.hardware import Architecture
from einsum_opt.transforms.map_search.compose import CascadeCoster, Cost, KernelStructure
from einsum_opt.transforms.map_search.facts import CascadeFacts
from einsum_opt.transforms.map_search.nest_eval import IllegalMapping, NestEvaluator, NestResult
from einsum_opt.transforms.map_search.plan import CascadeMap, Loop, to_attr

__all__ = ["Cost", "Evaluator", "IllegalMapping", "attach_plan"]


class Evaluator:
    """Costs candidate mappings of one cascade on one architecture (see the module
    docstring); counts the candidates it costed."""

    def __init__(self, cascade: CascadeOp, facts: CascadeFacts, arch: Architecture):
        self.facts = facts
        self.arch = arch
        self.nests = NestEvaluator(cascade, facts, arch)
        self.coster = CascadeCoster(arch, frozenset(facts.positions), facts.views)
        self.costed = 0
        self._structures: dict[tuple[int, ...], tuple[tuple[object, ...], KernelStructure]] = {}
        self._kernels: dict[tuple[str, ...], list[list[int]]] = {}
        self._resident: dict[
            tuple[int, ...], tuple[tuple[NestResult, ...], list[NestResult]]
        ] = {}

    def cost(self, plan: CascadeMap, exact: bool = False) -> Cost:
        """The cost of the cascade mapped by `plan`; IllegalMapping when a nest has no
        legal analysis. `exact`: energies summed in the cost report's order (bit for bit
        what the report gives; otherwise equal up to rounding)."""
        groups = [
            (self._kernel_results(members, plan), structure)
            for members, structure in self.structures(plan)
        ]
        for e in self.facts.einsums:
            if e.view:
                self.nests.result(e.index, plan[e.index])
        self.costed += 1
        return self.coster.cost(groups, exact)

    def _kernel_results(self, members: list[int], plan: CascadeMap) -> list[NestResult]:
        """The results of one kernel's nests, with what earlier nests leave resident (kept
        per the nests' own results, which are kept alive with it)."""
        results = tuple(self.nests.result(i, plan[i]) for i in members)
        key = tuple(id(r) for r in results)
        kept = self._resident.get(key)
        if kept is not None and all(a is b for a, b in zip(kept[0], results, strict=True)):
            return kept[1]
        found = self.nests.in_kernel(members, plan, results)
        if len(self._resident) > 200_000:
            self._resident.clear()
        self._resident[key] = (results, found)
        return found

    def kernels(self, plan: CascadeMap) -> list[list[int]]:
        """The computing Einsums of each kernel of `plan`, kernels in order."""
        names = tuple(p.kernel for p in plan)
        found = self._kernels.get(names)
        if found is None:
            kernels: dict[str, list[int]] = {}
            for e in self.facts.einsums:
                if not e.view:
                    kernels.setdefault(plan[e.index].kernel, []).append(e.index)
            found = self._kernels[names] = list(kernels.values())
        return found

    def structures(self, plan: CascadeMap) -> list[tuple[list[int], KernelStructure]]:
        """Each kernel's members and program structure, from the lowered nests alone (no
        analysis); IllegalMapping when a mapping does not fit its Einsum."""
        out = []
        for members in self.kernels(plan):
            plans = tuple(plan[i] for i in members)
            kept = self._structures.get(tuple(id(p) for p in plans))
            if kept is not None and kept[0] == plans:
                out.append((members, kept[1]))
                continue
            key = tuple((i, plan[i].unit, plan[i].loops) for i in members)
            found = self.coster.structures.get(key)
            if found is None:
                nests = [self.nests.lower(i, plan[i]) for i in members]
                names = tuple(
                    (i, plan[i].unit, tuple(_loop_shape(lp) for lp in plan[i].loops))
                    for i in members
                )
                found = self.coster.structure(nests, key, names)
            if len(self._structures) > 200_000:
                self._structures.clear()
            # Kept by the plans' identities, the plans held so that they stay alive.
            self._structures[tuple(id(p) for p in plans)] = (plans, found)
            out.append((members, found))
        return out


def _loop_shape(loop: Loop) -> tuple[object, ...]:
    """What a loop contributes to its nest's loop names and index strides, its trips aside."""
    return (loop.rank, loop.axis, loop.level, loop.extent == 1)


def attach_plan(cascade: CascadeOp, plan: CascadeMap) -> None:
    """Write `plan` onto the cascade's Einsums as their `#einsum.mapping` attributes."""
    for op, einsum_plan in zip(cascade.einsums(), plan, strict=True):
        op.attributes[MAPPING_ATTR] = to_attr(einsum_plan)


def module_of(cascade: CascadeOp) -> ModuleOp | None:
    """The module holding `cascade` (None if it is not in one)."""
    node = cascade.parent_op()
    while node is not None and not isinstance(node, ModuleOp):
        node = node.parent_op()
    return node
