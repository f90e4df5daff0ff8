"""The Timeloop frontend: a Timeloop v0.4 case (`input.yaml` with its ERT and ART, and
optionally a mapping file) -> one `einsum.cascade` with its mapping, on the spec's architecture.

- The problem becomes one Extended Einsum: the read-write data space is the output, the
  product of the other data spaces summed over the dimensions it does not use
  (`Outputs[k, p] = Weights[k, r] * Inputs[r + p]`). Dimensions become ranks (upper-cased);
  a data-space dimension that is a sum of dimensions (a sliding window, `Wstride*q +
  Wdilation*s`) becomes a rank of its own, named after them (`QS`), sized to hold every index.
- The architecture becomes an `Architecture` (`hardware/`): the storage levels in order, each
  with its instances (mesh), capacity, block, word size, bandwidths, multiple buffering, its
  ERT energies (read, fill as write, update, leak) and ART area; the arithmetic level becomes
  a unit with one operation, `mac`, at the ERT's compute energy. It is attached to the module
  (`hardware.attached`), so passes and cost targets use it by default.
- The mapping (absent in a mapper's input: map it with `map-search`) becomes the Einsum's
  `#einsum.mapping`: each dimension split over the levels
  whose factors exceed 1 (`K` split 16 x 2 gives loop ranks K1, K0), the loops in the
  mapping's order level by level (`at` names each level's first loop), spatial loops on axis 0
  (X) or 1 (Y), and `keep` the levels holding each data space.
- In a mapper's input, the architecture and mapspace constraints (`architecture_constraints`,
  `mapspace_constraints`, and in the node form the nodes' `constraints` and
  `constraints: {targets}`) are attached as the module's `einsum.mapspace`
  (`hardware.mapspace`), which `map-search` honours.

Every error is one line naming the file and the field (the parsed spec's `TimeloopSpecError`).
"""

from __future__ import annotations

import math
from pathlib import Path

from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr, partition_names
from einsum_opt.dialects.locations import forget_locations
from einsum_opt.frontends.notation import parse_einsum_notation
from einsum_opt.frontends.timeloop_energy import (
    compute_action,
    missing_energy,
    storage_actions,
)
from einsum_opt.frontends.timeloop_fields import PlacedSpecError
from einsum_opt.frontends.timeloop_spec import (
    DataSpace,
    Problem,
    TimeloopSpec,
    load_timeloop_spec,
)
from einsum_opt.hardware import Architecture
from einsum_opt.hardware.attached import attach_architecture
from einsum_opt.hardware.mapspace import attach_mapspace


def is_timeloop_input(text: str) -> bool:
    """Whether YAML text looks like a Timeloop input (it has `architecture` and `problem`)."""
    head = {line.split(":")[0].strip() for line in text.splitlines() if line[:1].isalpha()}
    return {"architecture", "problem"} <= head


def _rank(dim: str) -> str:
    return dim.upper()


def _tensor_ranks(problem: Problem, space: DataSpace, taken: set[str]) -> list[str]:
    """One rank per data-space dimension: the dimension's, or a new one for a sum."""
    ranks = []
    for terms in space.projection:
        if len(terms) == 1 and problem.coefficient_value(terms[0]) == 1:
            ranks.append(_rank(terms[0].dim))
            continue
        name = "".join(_rank(t.dim) for t in terms)
        base, count = name, 2
        while name in taken:
            name, count = f"{base}{count}", count + 1
        taken.add(name)
        ranks.append(name)
    return ranks


def _index(problem: Problem, terms: tuple[object, ...]) -> str:
    parts = []
    for term in terms:
        coefficient = problem.coefficient_value(term)  # type: ignore[arg-type]
        var = _rank(term.dim).lower()  # type: ignore[attr-defined]
        parts.append(var if coefficient == 1 else f"{coefficient}*{var}")
    return " + ".join(parts)


def cascade_text(spec: TimeloopSpec, name: str) -> str:
    """The problem in the Extended Einsum notation."""
    problem = spec.problem
    outputs = [s for s in problem.data_spaces if s.read_write]
    if len(outputs) != 1:
        raise PlacedSpecError(
            spec.input_file or "<input>",
            None,
            None,
            f"problem: expected one read-write data space (the output), found {len(outputs)}",
        )
    output = outputs[0]
    inputs = [s for s in problem.data_spaces if not s.read_write]
    taken = {_rank(d) for d in problem.dimensions}
    sizes = {_rank(d): problem.bounds[d] for d in problem.dimensions}
    declared: dict[str, list[str]] = {}
    for space in problem.data_spaces:
        ranks = _tensor_ranks(problem, space, taken)
        for rank, terms in zip(ranks, space.projection, strict=True):
            if rank not in sizes:
                sizes[rank] = 1 + sum(
                    problem.coefficient_value(t) * (problem.bounds[t.dim] - 1) for t in terms
                )
        declared[space.name] = ranks
    for terms in output.projection:
        if len(terms) != 1 or problem.coefficient_value(terms[0]) != 1:
            raise PlacedSpecError(
                spec.input_file or "<input>",
                None,
                None,
                f"problem: output {output.name} is indexed by a sum of dimensions; only its "
                "inputs may be",
            )
    ranks_line = ", ".join(f"{r}={n}" for r, n in sizes.items())
    inputs_line = ", ".join(f"{s.name}[{','.join(declared[s.name])}]" for s in inputs)
    out_index = ", ".join(_index(problem, terms) for terms in output.projection)
    body = " * ".join(
        f"{s.name}[{', '.join(_index(problem, terms) for terms in s.projection)}]" for s in inputs
    )
    return (
        f"cascade {name}\n"
        f"ranks {ranks_line}\n"
        f"input {inputs_line}\n"
        f"output {output.name}\n"
        f"{output.name}[{out_index}] = {body}\n"
    )


def architecture(spec: TimeloopSpec, name: str) -> Architecture:
    """The spec's architecture in our schema (see the module docstring). A level the ERT does
    not price may only be one the mapping keeps nothing in (a dummy level of a fan-out)."""
    arch = spec.architecture
    storage: dict[str, dict[str, object]] = {}
    kept = [m.keep for m in spec.mapping.levels] if spec.mapping else [frozenset()] * len(
        arch.storage
    )
    for level, keep in zip(arch.storage, kept, strict=True):
        actions = storage_actions(spec, level)
        energies = (actions.read, actions.fill, actions.update)
        if None in energies and keep:
            actions_named = zip(("read", "write", "update"), energies, strict=True)
            missing = [name for name, energy in actions_named if energy is None]
            file, message = missing_energy(spec, level.name, "/".join(missing))
            kept_here = ", ".join(sorted(keep))
            raise PlacedSpecError(file, None, None, f"{message}, which keeps {kept_here}")
        read, fill, update = (0.0 if e is None else e for e in energies)
        entry: dict[str, object] = {
            "mesh": [level.mesh_x, level.mesh_y],
            "word_bits": level.word_bits,
            "access_bits": level.block_size * level.word_bits,
            "read_pj": read,
            "write_pj": fill,
            "update_pj": update,
            "multiple_buffering": level.multiple_buffering,
            "cluster_size": level.cluster_size,
        }
        if storage:
            entry["parent"] = next(reversed(storage))
        if level.size is not None:
            entry["entries"] = level.size
        for key, value in (
            ("read_bandwidth", level.read_bandwidth),
            ("write_bandwidth", level.write_bandwidth),
            ("shared_bandwidth", level.shared_bandwidth),
        ):
            if value is not None:
                entry[key] = value
        if actions.leak:
            entry["leak_pj_per_cycle"] = actions.leak
        if actions.area:
            entry["area_um2"] = actions.area
        storage[level.name] = entry
    arithmetic = arch.arithmetic
    compute, area = compute_action(spec)
    if compute is None:
        file, message = missing_energy(spec, arithmetic.name, "compute")
        raise PlacedSpecError(file, None, None, message)
    unit: dict[str, object] = {
        "parent": arch.storage[-1].name,
        "shape": [arithmetic.mesh_x, arithmetic.mesh_y],
        "ops": {"mac": 1},
        "op_energy_pj": {"mac": compute},
    }
    if area:
        unit["area_um2"] = area
    root = arch.storage[0]
    return Architecture.from_dict(
        {
            "name": name,
            "description": f"imported from Timeloop ({spec.problem.name})",
            "clock_mhz": 1000,
            "word_bytes": max(1, math.ceil(root.word_bits / 8)),
            "storage": storage,
            "units": {arithmetic.name: unit},
        },
        source=name,
    )


def mapping(spec: TimeloopSpec, cascade: CascadeOp) -> MappingAttr:
    """The spec's mapping as the Einsum's `#einsum.mapping` (see the module docstring)."""
    assert spec.mapping is not None
    problem = spec.problem
    # A dimension's loops, outermost first: a level's temporal loop is outer to its spatial one.
    factors: dict[str, list[tuple[_LoopKey, int]]] = {d: [] for d in problem.dimensions}
    for depth, mapped in enumerate(spec.mapping.levels):
        for loop in (*mapped.temporal, *mapped.spatial):
            if loop.factor > 1:
                factors[loop.dim].append(((loop.dim, depth, loop.axis is not None), loop.factor))
    loop_name: dict[_LoopKey, str] = {}
    partition: dict[str, list[int]] = {}
    for dim, found in factors.items():
        rank = _rank(dim)
        if len(found) <= 1:
            for key, _ in found:
                loop_name[key] = rank
            continue
        names = partition_names(rank, len(found) - 1)
        extents = [f for _, f in found]
        partition[rank] = [math.prod(extents[i:]) for i in range(1, len(extents))]
        for (key, _), loop_var in zip(found, names, strict=True):
            loop_name[key] = loop_var
    order: list[str] = []
    space: dict[str, int] = {}
    for depth, mapped in enumerate(spec.mapping.levels):
        for loop in (*mapped.temporal, *mapped.spatial):
            if loop.factor <= 1:
                continue
            name = loop_name[(loop.dim, depth, loop.axis is not None)]
            order.append(name)
            if loop.axis is not None:
                space[name] = 0 if loop.axis == "X" else 1
    # Dimensions of size one have no loop with a factor above 1: a trip-one loop at the root.
    sizes = cascade.rank_sizes()
    ones = [_rank(d) for d in problem.dimensions if not factors[d] and sizes[_rank(d)] == 1]
    order = ones + order
    at = _boundaries(order, spec, loop_name, ones)
    levels = list(zip(spec.architecture.storage, spec.mapping.levels, strict=True))
    keep = {
        data.name: [level.name for level, mapped in levels if data.name in mapped.keep]
        for data in problem.data_spaces
    }
    return MappingAttr.make(
        spec.architecture.arithmetic.name, order, partition, space, {}, "", at, keep
    )


_LoopKey = tuple[str, int, bool]
"""A loop of the mapping: its dimension, its level's depth, and whether it is spatial."""


def _boundaries(
    order: list[str],
    spec: TimeloopSpec,
    loop_name: dict[_LoopKey, str],
    ones: list[str],
) -> dict[str, str]:
    """The level of the first loop of each level's block."""
    level_of = {
        name: spec.architecture.storage[depth].name for (_, depth, _), name in loop_name.items()
    }
    for name in ones:
        level_of[name] = spec.architecture.storage[0].name
    at: dict[str, str] = {}
    previous = ""
    for name in order:
        level = level_of[name]
        if level != previous:
            at[name] = level
            previous = level
    return at


def parse_timeloop(
    input_path: str | Path,
    ert: str | Path | None = None,
    art: str | Path | None = None,
    mapping_path: str | Path | None = None,
) -> ModuleOp:
    """Import a Timeloop case (see the module docstring); raises `TimeloopSpecError`."""
    spec = load_timeloop_spec(input_path, ert, art, mapping_path)
    name = Path(input_path).resolve().parent.name or Path(input_path).stem
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "timeloop"
    if name[0].isdigit():
        name = f"case_{name}"
    module = parse_einsum_notation(cascade_text(spec, name), str(input_path))
    forget_locations(module)  # lines of the generated notation, not of the input
    cascade = cascades_in(module)[0]
    (einsum,) = cascade.einsums()
    if spec.mapping is not None:
        einsum.attributes[MAPPING_ATTR] = mapping(spec, cascade)
    attach_architecture(module, architecture(spec, f"timeloop:{name}"))
    if spec.constraints.levels:
        attach_mapspace(module, spec.constraints)
    return module
