"""Loop structures of real nests for the batch analysis' tests and benchmark: reading and
writing them as JSON (tests/data/nest_structures.json, written by
benchmarks/capture_nest_structures.py), folding split dimensions back into one, and random
factorizations of the dimensions over a structure's loop slots."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from einsum_opt.costmodel.nest_analysis import analyze
from einsum_opt.costmodel.nest_analysis_batch import Slot, loop_slots
from einsum_opt.costmodel.nest_spec import LevelSpec, Loop, NestSpec, TensorSpec, Term

STORED = Path(__file__).resolve().parent / "data" / "nest_structures.json"


def to_json(spec: NestSpec) -> dict[str, Any]:
    """The spec as plain JSON data."""
    return {
        "dims": dict(spec.dims),
        "tensors": [
            {
                "name": t.name,
                "read_write": t.read_write,
                "projection": [
                    [[term.coefficient, term.dim] for term in terms] for terms in t.projection
                ],
            }
            for t in spec.tensors
        ],
        "levels": [
            {
                "name": level.name,
                "mesh": [level.mesh_x, level.mesh_y],
                "keep": sorted(level.keep),
                "loops": [[lp.dim, lp.extent, lp.axis] for lp in level.loops],
            }
            for level in spec.levels
        ],
        "compute_mesh": [spec.compute_mesh_x, spec.compute_mesh_y],
    }


def from_json(data: dict[str, Any]) -> NestSpec:
    """The spec of `to_json`'s data."""
    return NestSpec(
        dims=data["dims"],
        tensors=tuple(
            TensorSpec(
                t["name"],
                tuple(tuple(Term(c, d) for c, d in terms) for terms in t["projection"]),
                t["read_write"],
            )
            for t in data["tensors"]
        ),
        levels=tuple(
            LevelSpec(
                level["name"],
                level["mesh"][0],
                level["mesh"][1],
                frozenset(level["keep"]),
                tuple(Loop(d, e, a) for d, e, a in level["loops"]),
            )
            for level in data["levels"]
        ),
        compute_mesh_x=data["compute_mesh"][0],
        compute_mesh_y=data["compute_mesh"][1],
    )


def stored() -> dict[str, list[NestSpec]]:
    """The stored structures by source ("attention", "timeloop")."""
    data = json.loads(STORED.read_text())
    return {source: [from_json(s) for s in specs] for source, specs in data.items()}


def _positions(spec: NestSpec) -> dict[str, dict[tuple[int, int], int]]:
    """Per dimension, its summed coefficient at each (tensor, tensor dimension) it is in."""
    found: dict[str, dict[tuple[int, int], int]] = {dim: {} for dim in spec.dims}
    for t, tensor in enumerate(spec.tensors):
        for r, terms in enumerate(tensor.projection):
            for term in terms:
                found[term.dim][(t, r)] = found[term.dim].get((t, r), 0) + term.coefficient
    return found


def _digit_groups(spec: NestSpec) -> list[tuple[list[str], dict[tuple[int, int], int]]]:
    """The groups of dimensions that are the digits of one index, lowest first, with the
    coefficient of the lowest at each (tensor, tensor dimension) they are found in: found in
    the same tensor dimensions (one term each), coefficients in mixed radix of their sizes,
    loops of lower digits all inside those of higher ones."""
    positions = _positions(spec)
    single = all(
        len([t for t in terms if t.dim == dim]) <= 1
        for tensor in spec.tensors
        for terms in tensor.projection
        for dim in spec.dims
    )
    if not single:
        return []
    slot_dims = [lp.dim for level in spec.levels for lp in level.loops]
    groups: dict[tuple[tuple[int, int], ...], list[str]] = {}
    for dim, where in positions.items():
        if where:
            groups.setdefault(tuple(sorted(where)), []).append(dim)
    found = []
    for where, dims in groups.items():
        if len(dims) < 2:
            continue
        first = where[0]
        dims.sort(key=lambda d: (abs(positions[d][first]), spec.dims[d]))
        weight, weights = 1, {}
        for dim in dims:
            weights[dim] = weight
            weight *= spec.dims[dim]
        base = {p: positions[dims[0]][p] for p in where}
        if any(positions[d][p] != base[p] * weights[d] for d in dims for p in where):
            continue
        order = [dims.index(dim) for dim in slot_dims if dim in dims]
        if order != sorted(order, reverse=True):
            continue
        found.append((dims, base))
    return found


def has_digit_groups(spec: NestSpec) -> bool:
    """Whether some rank of the nest is split into pieces (`_digit_groups`)."""
    return bool(_digit_groups(spec))


def fold_split_dims(spec: NestSpec) -> NestSpec:
    """The nest with each group of dimensions that are the digits of one index
    (`_digit_groups`) folded into one dimension with all their loops: the same nest, whose
    loops' extents can now be factorized freely."""
    rename: dict[str, tuple[str, int]] = {}  # dim -> (folded dim, its weight)
    for dims, _ in _digit_groups(spec):
        weight = 1
        for dim in dims:
            rename[dim] = (dims[0] + "_folded", weight)
            weight *= spec.dims[dim]
    if not rename:
        return spec
    dims: dict[str, int] = {}
    for dim, size in spec.dims.items():
        name = rename.get(dim, (dim, 1))[0]
        dims[name] = dims.get(name, 1) * size
    tensors = []
    for tensor in spec.tensors:
        projection = []
        for terms in tensor.projection:
            kept: list[Term] = []
            for term in terms:
                if term.dim not in rename:
                    kept.append(term)
                elif rename[term.dim][1] == 1:
                    kept.append(Term(term.coefficient, rename[term.dim][0]))
            projection.append(tuple(kept))
        tensors.append(TensorSpec(tensor.name, tuple(projection), tensor.read_write))
    levels = tuple(
        LevelSpec(
            level.name,
            level.mesh_x,
            level.mesh_y,
            level.keep,
            tuple(
                Loop(rename.get(lp.dim, (lp.dim, 1))[0], lp.extent, lp.axis) for lp in level.loops
            ),
        )
        for level in spec.levels
    )
    folded = NestSpec(dims, tuple(tensors), levels, spec.compute_mesh_x, spec.compute_mesh_y)
    assert analyze(folded) == analyze(spec), "folding changed the nest"
    return folded


def split_rows(
    spec: NestSpec, rows: int, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Rows for a nest as map-search builds it (a dimension per piece of a split rank, the
    pieces' strides in the coefficients): per row, each group of digits (`_digit_groups`)
    gets a random split of its index into pieces, so the pieces' sizes and the strides
    change from row to row, and each dimension's size is factorized over its loops.
    Returns (extents, dims, coefficients) as `analyze_batch` takes them."""
    rng = random.Random(seed)
    slots = loop_slots(spec)
    ratios = _mesh_ratios(spec)
    groups = _digit_groups(spec)
    terms = [
        (t, r, term)
        for t, tensor in enumerate(spec.tensors)
        for r, ts in enumerate(tensor.projection)
        for term in ts
    ]
    all_extents, all_sizes, all_coefficients = [], [], []
    for _ in range(rows * 20):
        sizes = dict(spec.dims)
        weights: dict[str, tuple[int, dict[tuple[int, int], int]]] = {}
        for dims, base in groups:
            pieces = [1] * len(dims)
            for factor in _prime_factors(math.prod(spec.dims[d] for d in dims)):
                pieces[rng.randrange(len(dims))] *= factor
            weight = 1
            for dim, piece in zip(dims, pieces, strict=True):
                sizes[dim] = piece
                weights[dim] = (weight, base)
                weight *= piece
        row = _random_row(sizes, slots, ratios, rng)
        if row is None:
            continue
        coefficients = []
        for t, r, term in terms:
            if term.dim in weights:
                weight, base = weights[term.dim]
                coefficients.append(base[(t, r)] * weight)
            else:
                coefficients.append(term.coefficient)
        all_extents.append(row)
        all_sizes.append([sizes[d] for d in spec.dims])
        all_coefficients.append(coefficients)
        if len(all_extents) == rows:
            break
    sizes_array = np.array(all_sizes, dtype=np.int64).reshape(len(all_sizes), len(spec.dims))
    dims = {d: sizes_array[:, k] for k, d in enumerate(spec.dims)}
    extents = np.array(all_extents, dtype=np.int64).reshape(len(all_extents), len(slots))
    return (
        extents,
        dims,
        np.array(all_coefficients, dtype=np.int64).reshape(len(all_extents), len(terms)),
    )


def _prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


def factorizations(spec: NestSpec, rows: int, seed: int, distinct: bool = True) -> np.ndarray:
    """`rows` random factorizations of every dimension over its loop slots (distinct ones
    while there are enough), a spatial slot's fan-out kept within its mesh ratio."""
    rng = random.Random(seed)
    slots = loop_slots(spec)
    ratios = _mesh_ratios(spec)
    found: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for _ in range(rows * 20):
        row = _random_row(spec.dims, slots, ratios, rng)
        if row is None:
            continue
        key = tuple(row)
        if distinct and key in seen:
            continue
        seen.add(key)
        found.append(key)
        if len(found) == rows:
            break
    return np.array(found, dtype=np.int64).reshape(len(found), len(slots))


def _random_row(
    sizes: Mapping[str, int],
    slots: tuple[Slot, ...],
    ratios: Mapping[tuple[int, str], int],
    rng: random.Random,
) -> list[int] | None:
    """Every dimension's size factorized over its slots at random (prime by prime), or None
    when a level's fan-out on an axis exceeds its mesh ratio."""
    row = [1] * len(slots)
    for dim, size in sizes.items():
        choices = [j for j, slot in enumerate(slots) if slot.dim == dim]
        for factor in _prime_factors(size) if choices else ():
            row[rng.choice(choices)] *= factor
    for (s, axis), ratio in ratios.items():
        if (
            math.prod(row[j] for j, sl in enumerate(slots) if sl.level == s and sl.axis == axis)
            > ratio
        ):
            return None
    return row


def _mesh_ratios(spec: NestSpec) -> dict[tuple[int, str], int]:
    ratios = {}
    for s, level in enumerate(spec.levels):
        inner = spec.levels[s + 1] if s + 1 < len(spec.levels) else None
        x = inner.mesh_x if inner else spec.compute_mesh_x
        y = inner.mesh_y if inner else spec.compute_mesh_y
        ratios[(s, "X")] = x // level.mesh_x
        ratios[(s, "Y")] = y // level.mesh_y
    return ratios
