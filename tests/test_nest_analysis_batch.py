"""The batch analysis against the scalar one, row by row: random structures (1–4 levels,
meshes with X/Y fan-outs, plain, strided and sliding-window projections, negative
coefficients, bypass, read-write tensors, scalar tensors) under random factorizations and
invalid rows, with both `stationary_fix` values and link transfers on and off; and the real
structures of tests/data/nest_structures.json, which must also be vectorised (no row left to
the scalar analysis)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nest_structures import factorizations, fold_split_dims, split_rows, stored

from einsum_opt.costmodel.nest_analysis import (
    LevelSpec,
    Loop,
    NestSpec,
    NestSpecError,
    TensorSpec,
    Term,
    analyze,
)
from einsum_opt.costmodel.nest_analysis_batch import (
    analyze_batch,
    loop_slots,
    projection_terms,
    substituted,
)

SIZES = (1, 2, 3, 4, 6, 8, 9, 12, 16)


def _projection(draw: st.DrawFn, dims: list[str]) -> tuple[tuple[Term, ...], ...]:
    """A tensor's index: per tensor dimension one term, or a window/strided sum of two."""
    rank = draw(st.integers(0, 3))
    projection = []
    for _ in range(rank):
        terms = [Term(draw(st.sampled_from((1, 1, 1, 2, 3, -1))), draw(st.sampled_from(dims)))]
        if draw(st.integers(0, 2)) == 0:
            terms.append(Term(draw(st.sampled_from((1, 2, -1))), draw(st.sampled_from(dims))))
        projection.append(tuple(terms))
    return tuple(projection)


@st.composite
def structures(draw: st.DrawFn) -> NestSpec:
    """A random nest (its extents: one valid factorization)."""
    dims = [f"d{k}" for k in range(draw(st.integers(1, 3)))]
    sizes = {d: draw(st.sampled_from(SIZES)) for d in dims}
    names = [f"T{k}" for k in range(draw(st.integers(1, 3)))]
    tensors = tuple(
        TensorSpec(name, _projection(draw, dims), draw(st.booleans())) for name in names
    )
    count = draw(st.integers(1, 4))
    meshes = [(1, 1)]
    for _ in range(count):
        x, y = meshes[-1]
        meshes.append(
            (x * draw(st.sampled_from((1, 1, 2, 4))), y * draw(st.sampled_from((1, 1, 2))))
        )
    keeps = [set(draw(st.sets(st.sampled_from(names)))) for _ in range(count)]
    for name in names:
        if not any(name in keep for keep in keeps):
            keeps[draw(st.integers(0, count - 1))].add(name)
    slots: list[list[tuple[str, str | None]]] = []
    for s in range(count):
        temporal = [(draw(st.sampled_from(dims)), None) for _ in range(draw(st.integers(0, 3)))]
        spatial = []
        for axis, ratio in (
            ("X", meshes[s + 1][0] // meshes[s][0]),
            ("Y", meshes[s + 1][1] // meshes[s][1]),
        ):
            if ratio > 1 or draw(st.booleans()):
                spatial += [
                    (draw(st.sampled_from(dims)), axis) for _ in range(draw(st.integers(0, 2)))
                ]
        order = draw(st.permutations(spatial)) if spatial else []
        slots.append(temporal + list(order))
    levels = tuple(
        LevelSpec(
            f"L{s}",
            meshes[s][0],
            meshes[s][1],
            frozenset(keeps[s]),
            tuple(Loop(d, 1, axis) for d, axis in slots[s]),
        )
        for s in range(count)
    )
    spec = NestSpec(sizes, tensors, levels, meshes[count][0], meshes[count][1])
    rows = factorizations(spec, 1, seed=draw(st.integers(0, 2**16)), distinct=False)
    if len(rows) and len(rows[0]):
        return substituted(spec, tuple(int(e) for e in rows[0]))
    return spec


def _rows(spec: NestSpec, seed: int) -> np.ndarray:
    """Random factorizations of the spec's dimensions, some rows made invalid."""
    rows = factorizations(spec, 12, seed)
    if not len(rows) or not rows.shape[1]:
        return rows.reshape(len(rows), len(loop_slots(spec)))
    rng = random.Random(seed)
    broken = rows[:3].copy()
    for row in broken:
        j = rng.randrange(len(row))
        row[j] = rng.choice((0, -1, row[j] * 2, row[j] * 7))
    return np.vstack([rows, broken])


def _agree(
    spec: NestSpec,
    rows: np.ndarray,
    stationary_fix: bool,
    link_transfers: bool,
    dims: dict[str, np.ndarray] | None = None,
    coefficients: np.ndarray | None = None,
) -> int:
    """Assert each row equals the scalar analysis (or its error); return the fallback count."""
    batch = analyze_batch(
        spec,
        rows,
        dims=dims,
        coefficients=coefficients,
        stationary_fix=stationary_fix,
        link_transfers=link_transfers,
    )
    for r, row in enumerate(rows):
        sizes = None if dims is None else {d: int(v[r]) for d, v in dims.items()}
        one = substituted(spec, row, sizes, None if coefficients is None else coefficients[r])
        try:
            expected = analyze(one, stationary_fix=stationary_fix, link_transfers=link_transfers)
        except NestSpecError as error:
            assert not batch.valid[r], (r, row, str(error))
            assert batch.error(r) == str(error)
            with pytest.raises(NestSpecError):
                batch.row(r)
            continue
        assert batch.valid[r], (r, row, batch.error(r))
        assert batch.row(r) == expected, (r, row)
    return batch.fallback_rows


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures(), st.integers(0, 2**16), st.booleans(), st.booleans())
def test_every_row_equals_the_scalar_analysis(
    spec: NestSpec, seed: int, stationary_fix: bool, link_transfers: bool
) -> None:
    _agree(spec, _rows(spec, seed), stationary_fix, link_transfers)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(structures(), st.integers(0, 2**16), st.booleans())
def test_rows_with_their_own_sizes_and_coefficients_equal_the_scalar_analysis(
    spec: NestSpec, seed: int, stationary_fix: bool
) -> None:
    rng = random.Random(seed)
    count = 10
    dims = {d: np.array([rng.choice(SIZES) for _ in range(count)]) for d in spec.dims}
    rows = []
    for r in range(count):
        sized = NestSpec(
            {d: int(v[r]) for d, v in dims.items()},
            spec.tensors,
            spec.levels,
            spec.compute_mesh_x,
            spec.compute_mesh_y,
        )
        found = factorizations(sized, 1, seed + r, distinct=False)
        rows.append(found[0] if len(found) else np.ones(len(loop_slots(spec)), dtype=np.int64))
    terms = len(projection_terms(spec))
    coefficients = np.array(
        [[rng.choice((1, 2, 3, -1, -2, 4)) for _ in range(terms)] for _ in range(count)],
        dtype=np.int64,
    ).reshape(count, terms)
    extents = np.array(rows, dtype=np.int64).reshape(count, len(loop_slots(spec)))
    for link_transfers in (False, True):
        _agree(spec, extents, stationary_fix, link_transfers, dims, coefficients)


SPLIT = stored()["attention-split"]


@pytest.mark.parametrize("index", range(len(SPLIT)))
def test_split_ranks_with_pieces_and_strides_per_row_are_exact_and_vectorised(index: int) -> None:
    # As map-search builds them: a dimension per piece of a split rank, whose sizes and
    # strides (coefficients) change from row to row.
    spec = SPLIT[index]
    extents, dims, coefficients = split_rows(spec, 30, seed=index)
    assert len({tuple(c) for c in coefficients}) > 1
    for stationary_fix in (False, True):
        for link_transfers in (False, True):
            fallback = _agree(spec, extents, stationary_fix, link_transfers, dims, coefficients)
            assert fallback == 0


STORED = [
    (source, k, spec)
    for source, specs in stored().items()
    if source != "attention-split"
    for k, spec in enumerate(specs)
]


@pytest.mark.parametrize(
    ("source", "index", "spec"), STORED, ids=[f"{s}-{k}" for s, k, _ in STORED]
)
def test_real_structures_are_exact_and_vectorised(source: str, index: int, spec: NestSpec) -> None:
    rows = factorizations(spec, 40, seed=index)
    for stationary_fix in (False, True):
        for link_transfers in (False, True):
            assert _agree(spec, rows, stationary_fix, link_transfers) == 0, (source, index)


def _systolic() -> NestSpec:
    """A 1-D convolution whose input slides between neighbour PEs (link transfers) when P is
    fanned out inside the taps' loop."""
    tensors = (
        TensorSpec("W", ((Term(1, "R"),),), False),
        TensorSpec("I", ((Term(1, "P"), Term(1, "R")),), False),
        TensorSpec("O", ((Term(1, "P"),),), True),
    )
    return NestSpec(
        {"P": 8, "R": 3},
        tensors,
        (
            LevelSpec(
                "GLB",
                1,
                1,
                frozenset({"W", "I", "O"}),
                (Loop("P", 2), Loop("R", 3), Loop("P", 4, "X")),
            ),
            LevelSpec("PE", 4, 1, frozenset({"W", "I", "O"}), ()),
        ),
        4,
        1,
    )


def test_rows_with_link_transfers_are_left_to_the_scalar_analysis() -> None:
    spec = _systolic()
    rows = np.array([[2, 3, 4], [4, 3, 2], [8, 3, 1]])
    links = [
        analyze(substituted(spec, tuple(row))).levels["GLB"]["I"].link_transfers for row in rows
    ]
    assert links == [12, 11, 0]
    assert _agree(spec, rows, False, True) == 2  # the rows that pass inputs between neighbours
    assert _agree(spec, rows, False, False) == 0


def test_rows_whose_window_slides_partly_between_neighbours_are_left_to_the_scalar_analysis() -> (
    None
):
    # The PE's input window (P 2 + R 2 - 1 = 3 wide) moves by 2 under both R loops of the
    # GLB, which is the offset between neighbour PEs: consecutive partial slides pass over
    # links, as no whole-tile move does.
    spec = _systolic()
    glb, pe = spec.levels
    spec = NestSpec(
        {"P": 8, "R": 8},
        spec.tensors,
        (
            LevelSpec("GLB", 1, 1, glb.keep, (Loop("R", 2), Loop("R", 2), Loop("P", 2, "X"))),
            LevelSpec("PE", 4, 1, pe.keep, (Loop("R", 2), Loop("P", 4))),
        ),
        4,
        1,
    )
    rows = factorizations(spec, 40, seed=0)
    linked = [
        analyze(substituted(spec, tuple(row))).levels["GLB"]["I"].link_transfers > 0 for row in rows
    ]
    assert sum(linked) == 1
    for stationary_fix in (False, True):
        assert _agree(spec, rows, stationary_fix, True) >= 1


def test_a_large_nest_overflowing_int64_is_computed_by_the_scalar_analysis() -> None:
    big = 2**20
    spec = NestSpec(
        {"M": big, "N": big, "K": big},
        (
            TensorSpec("A", ((Term(1, "M"),), (Term(1, "K"),)), False),
            TensorSpec("Z", ((Term(1, "M"),), (Term(1, "N"),)), True),
        ),
        (
            LevelSpec(
                "DRAM", 1, 1, frozenset({"A", "Z"}), (Loop("K", 1), Loop("N", 1), Loop("M", 1))
            ),
            LevelSpec("RF", 1, 1, frozenset({"Z"}), (Loop("M", 1), Loop("N", 1), Loop("K", 1))),
        ),
        1,
        1,
    )
    rows = np.array(
        [
            [big, big, big, 1, 1, 1],
            [1, 1, 1, big, big, big],
            [2, 2, 2, big // 2, big // 2, big // 2],
        ]
    )
    assert _agree(spec, rows, False, True) == len(rows)


def test_folding_split_dimensions_keeps_the_nest() -> None:
    split = NestSpec(
        {"m0": 4, "m1": 8, "k": 6},
        (
            TensorSpec("A", ((Term(4, "m1"), Term(1, "m0")), (Term(1, "k"),)), False),
            TensorSpec("Z", ((Term(4, "m1"), Term(1, "m0")),), True),
        ),
        (
            LevelSpec("DRAM", 1, 1, frozenset({"A", "Z"}), (Loop("m1", 8), Loop("k", 6))),
            LevelSpec("RF", 1, 1, frozenset({"Z"}), (Loop("m0", 4),)),
        ),
        1,
        1,
    )
    folded = fold_split_dims(split)
    assert folded.dims == {"m0_folded": 32, "k": 6}
    assert analyze(folded) == analyze(split)


def test_a_wrong_structure_or_shape_is_an_error() -> None:
    spec = _systolic()
    with pytest.raises(NestSpecError, match=r"extents: shape \(2, 2\) is not \(rows, 3\)"):
        analyze_batch(spec, np.ones((2, 2), dtype=np.int64))
    assert analyze_batch(spec, np.ones((0, 3), dtype=np.int64)).valid.shape == (0,)
    with pytest.raises(NestSpecError, match=r"coefficients: shape \(1, 2\) is not \(1, 4\)"):
        analyze_batch(spec, np.ones((1, 3), dtype=np.int64), coefficients=np.ones((1, 2)))
    with pytest.raises(NestSpecError, match="dims: unknown dimension Q"):
        analyze_batch(spec, np.ones((1, 3), dtype=np.int64), dims={"Q": np.ones(1)})
    glb, pe = spec.levels
    wrong = NestSpec(
        spec.dims, spec.tensors, (glb, LevelSpec("PE", 4, 1, frozenset({"V"}), pe.loops)), 4, 1
    )
    with pytest.raises(NestSpecError, match="level PE: keeps unknown tensor V"):
        analyze_batch(wrong, np.ones((1, 3), dtype=np.int64))
