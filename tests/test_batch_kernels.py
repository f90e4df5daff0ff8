"""The batch kernels against their scalar twins, row by row: `occupancy_totals` against
`nest_occupancy`, `PipelineGraph.critical_paths` / `recurrence_bounds` against
`critical_path` / `recurrence_bound`, `storage_energies` against `storage_energy` and
`level_cycles_batch` against `level_cycles`. Integers must be equal, floats bit for bit; a
row the scalar fails on must fail the batch with the scalar's error; an integer result beyond
int64 is an OverflowError."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum_opt.costmodel.batch_levels import level_cycles_batch, storage_energies
from einsum_opt.costmodel.level_costs import LevelCostError
from einsum_opt.costmodel.model import _facts, _LevelFacts, level_cycles, level_of, storage_energy
from einsum_opt.frontends.timeloop import architecture
from einsum_opt.frontends.timeloop_spec import load_timeloop_spec
from einsum_opt.hardware import REGISTERS, Architecture, StorageLevel, load_architecture
from einsum_opt.lowering.buffers import Touch, nest_occupancy
from einsum_opt.lowering.buffers_batch import occupancy_totals
from einsum_opt.transforms.map_search.pipeline_bounds import PipelineGraph

ROOT = Path(__file__).resolve().parent.parent
INT64_MAX = 2**63 - 1


def _rowwise(rows: int, scalar: Callable[[int], object]) -> list[object] | BaseException:
    """The scalar's value for each row, or the error of the first row it fails on."""
    values = []
    for r in range(rows):
        try:
            values.append(scalar(r))
        except Exception as error:  # the batch must fail the same way
            return error
    return values


def _same_outcome(batch: Callable[[], Sequence[object]], expected: object) -> None:
    """The batch's values equal the expected ones exactly (floats bit for bit, compared as
    their float64 bytes), or it raises the expected error with the same message."""
    if isinstance(expected, BaseException):
        with pytest.raises(type(expected)) as raised:
            batch()
        assert str(raised.value) == str(expected)
        return
    got = batch()
    assert isinstance(expected, list)
    assert len(got) == len(expected)
    for r, (value, want) in enumerate(zip(got, expected, strict=True)):
        if isinstance(want, float):
            assert np.float64(value).tobytes() == np.float64(want).tobytes(), (r, value, want)
        else:
            assert value == want, (r, value, want)


# -- occupancy --------------------------------------------------------------------------------

TENSORS = ("A", "B", "C", "D", "E")
touch_shapes = st.builds(
    lambda tensor, writes, accumulates: Touch(0, tensor, writes, 0, accumulates),
    st.sampled_from(TENSORS),
    st.booleans(),
    st.booleans(),
)
structures = st.lists(st.lists(touch_shapes, max_size=4), max_size=6)
# Few distinct sizes, so that equal sizes (in-place reuse, ties among allocations) are common.
small_words = st.sampled_from([0, 1, 2, 3, 4, 8]) | st.integers(0, 40)
large_words = (
    small_words
    | st.integers(0, INT64_MAX)
    | st.sampled_from([2**62, 2**62 - 1, INT64_MAX // 3, INT64_MAX // 2, INT64_MAX])
    | st.integers(-3, -1)
)


def _occupancy_oracle(
    groups: list[list[Touch]], words: list[list[int]], persistent: frozenset[str]
) -> list[object] | BaseException:
    def total(r: int) -> int:
        values = iter(words[r])
        filled = [
            [Touch(0, t.tensor, t.writes, next(values), t.accumulates) for t in g] for g in groups
        ]
        found = sum(nest_occupancy(filled, persistent).values())
        if found > INT64_MAX:
            raise OverflowError(f"row {r}: {found} does not fit in int64")
        return found

    return _rowwise(len(words), total)


def _check_occupancy(data: st.DataObject, word: st.SearchStrategy[int]) -> None:
    groups = data.draw(structures)
    persistent = data.draw(st.frozensets(st.sampled_from(TENSORS)))
    columns = sum(len(g) for g in groups)
    words = data.draw(
        st.lists(st.lists(word, min_size=columns, max_size=columns), min_size=1, max_size=12)
    )
    table = np.array(words, dtype=np.int64).reshape(len(words), columns)
    expected = _occupancy_oracle(groups, words, persistent)
    _same_outcome(lambda: occupancy_totals(groups, table, persistent).tolist(), expected)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_occupancy_totals_are_nest_occupancy_per_row(data: st.DataObject) -> None:
    _check_occupancy(data, small_words)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_occupancy_totals_are_exact_near_the_int64_limit(data: st.DataObject) -> None:
    _check_occupancy(data, large_words)


def test_occupancy_in_place_needs_equal_sizes_and_an_elementwise_writer() -> None:
    # QK written, then SN = exp(QK - GM): SN takes QK's place when their tiles are equal.
    groups = [
        [Touch(0, "QK", True, 0)],
        [Touch(0, "QK", False, 0), Touch(0, "GM", False, 0), Touch(0, "SN", True, 0)],
    ]
    words = np.array([[8, 8, 1, 8], [8, 8, 1, 4], [4, 4, 1, 8]])
    assert occupancy_totals(groups, words).tolist() == [9, 13, 13]
    accumulating = [groups[0], [*groups[1][:2], Touch(0, "SN", True, 0, accumulates=True)]]
    assert occupancy_totals(accumulating, words).tolist() == [17, 13, 13]


def test_occupancy_overflow_is_an_error_and_a_large_fitting_total_is_exact() -> None:
    # A and B are read together: 2**62 + 2**62 does not fit; 2**62 + (2**62 - 1) does.
    groups = [[Touch(0, "A", False, 0), Touch(0, "B", False, 0)]]
    fits = occupancy_totals(groups, np.array([[2**62, 2**62 - 1], [1, 2]]))
    assert fits.tolist() == [INT64_MAX, 3]
    with pytest.raises(OverflowError, match="row 1"):
        occupancy_totals(groups, np.array([[1, 2], [2**62, 2**62]]))


def test_occupancy_rejects_words_that_do_not_match_the_structure() -> None:
    groups = [[Touch(0, "A", False, 0)]]
    with pytest.raises(ValueError, match="2 columns for 1 touches"):
        occupancy_totals(groups, np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="expected integers"):
        occupancy_totals(groups, np.zeros((3, 1)))


# -- pipeline bounds --------------------------------------------------------------------------


@st.composite
def pipeline_graphs(draw: st.DrawFn) -> PipelineGraph:
    """A random DAG of `after` edges (stages numbered in a random order) with random
    `carried` edges, self loops included."""
    n = draw(st.integers(0, 7))
    order = draw(st.permutations(range(n)))
    after: list[list[int]] = [[] for _ in range(n)]
    for k, node in enumerate(order):
        after[node] = sorted(draw(st.sets(st.sampled_from(order[:k]))) if k else [])
    stages = st.sampled_from(range(n)) if n else st.nothing()
    carried = [sorted(draw(st.sets(stages, max_size=3))) for _ in range(n)]
    return PipelineGraph.build(after, carried)


small_latency = st.sampled_from([0, 1, 2, 3, 6]) | st.integers(0, 100)
large_latency = (
    small_latency
    | st.integers(0, INT64_MAX)
    | st.sampled_from([2**62, INT64_MAX // 3, INT64_MAX // 7, INT64_MAX])
    | st.integers(-3, -1)
)


def _check_pipeline(data: st.DataObject, latency: st.SearchStrategy[int]) -> None:
    graph = data.draw(pipeline_graphs())
    n = len(graph.order)
    rows = data.draw(st.lists(st.lists(latency, min_size=n, max_size=n), min_size=1, max_size=12))
    table = np.array(rows, dtype=np.int64).reshape(len(rows), n)

    def path(r: int) -> int:
        found = graph.critical_path(rows[r])
        if found > INT64_MAX:
            raise OverflowError(f"row {r}: {found} does not fit in int64")
        return found

    def bound(r: int) -> tuple[int, int]:
        found = graph.recurrence_bound(rows[r])
        if found.numerator > INT64_MAX:
            raise OverflowError(f"row {r}: {found.numerator} does not fit in int64")
        return found.numerator, found.denominator

    _same_outcome(lambda: graph.critical_paths(table).tolist(), _rowwise(len(rows), path))

    def bounds() -> list[tuple[int, int]]:
        numerators, denominators = graph.recurrence_bounds(table)
        assert numerators.dtype == denominators.dtype == np.int64
        return list(zip(numerators.tolist(), denominators.tolist(), strict=True))

    _same_outcome(bounds, _rowwise(len(rows), bound))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_pipeline_bounds_per_row_are_the_scalar_ones(data: st.DataObject) -> None:
    _check_pipeline(data, small_latency)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_pipeline_bounds_are_exact_near_the_int64_limit(data: st.DataObject) -> None:
    _check_pipeline(data, large_latency)


def test_pipeline_bounds_overflow_and_large_exact_means() -> None:
    # 0 -> 1 after, 0 waits for 1 of the previous iteration: one cycle weighing lat0 + lat1.
    chain = PipelineGraph.build([[], [0]], [[1], []])
    with pytest.raises(OverflowError, match="row 0"):
        chain.critical_paths(np.array([[2**62, 2**62]]))
    with pytest.raises(OverflowError, match="row 0"):
        chain.recurrence_bounds(np.array([[2**62, 2**62]]))
    # Two stages waiting on each other across iterations: a mean whose sum is beyond int64.
    swap = PipelineGraph.build([[], []], [[1], [0]])
    numerators, denominators = swap.recurrence_bounds(np.array([[2**62 + 5, 2**62 + 5], [1, 2]]))
    assert (numerators.tolist(), denominators.tolist()) == ([2**62 + 5, 3], [1, 2])


def test_pipeline_bounds_without_cycles_are_zero() -> None:
    graph = PipelineGraph.build([[], [0], [0, 1]], [[], [], []])
    numerators, denominators = graph.recurrence_bounds(np.array([[3, 4, 5], [0, 0, 0]]))
    assert (numerators.tolist(), denominators.tolist()) == ([0, 0], [1, 1])
    assert graph.critical_paths(np.array([[3, 4, 5], [0, 0, 0]])).tolist() == [12, 0]


# -- storage energy and bandwidth cycles ------------------------------------------------------


def _timeloop_architectures() -> list[Architecture]:
    gemm = ROOT / "examples" / "timeloop" / "gemm"
    cases = [(gemm / "input.yaml", gemm), (ROOT / "examples/timeloop/gemm-bandwidth/input.yaml", gemm)]
    corpus = ROOT.parent / "shared" / "corpus" / "timeloop"
    cases += [(c / "input.yaml", c) for c in sorted(corpus.glob("0*")) if (c / "ERT.yaml").exists()]
    return [
        architecture(load_timeloop_spec(path, tables / "ERT.yaml", tables / "ART.yaml"), path.parent.name)
        for path, tables in cases
    ]


def _levels(archs: Sequence[Architecture]) -> list[tuple[Architecture, str]]:
    return [
        (arch, label)
        for arch in archs
        for label in [*arch.storage, *(f"{u}.{REGISTERS}" for u, x in arch.units.items() if x.registers)]
    ]


FUSEMAX = load_architecture("fusemax")
SHIPPED = _levels(
    [*(load_architecture(name) for name in ("fusemax", "flat", "edge")), *_timeloop_architectures()]
)
VARIANTS = [
    (FUSEMAX.with_level("RF", mesh=[4, 1], cluster_size=2, read_pj=3, write_pj=2, update_pj=5), "RF"),
    (FUSEMAX.with_level("RF", mesh=[4, 1], cluster_size=8, read_pj=0.1, write_pj=7), "RF"),
    (FUSEMAX.with_level("GLB", read_pj=3, write_pj=7.5, update_pj=0, access_bits=64), "GLB"),
    (FUSEMAX.with_level("DRAM", read_pj=2**50, write_pj=1, access_bits=16), "DRAM"),
]
"""Levels the shipped designs do not have: integer energies (exact products), clusters of
instances (more than the instances: the scalar's ZeroDivisionError), other blocks."""
LEVELS = st.sampled_from(SHIPPED) | st.sampled_from(VARIANTS)


@st.composite
def access_rows(draw: st.DrawFn, extreme: bool) -> tuple[int, int, int, int]:
    """(reads, fills, updates, instances): counts that do and do not divide the instances;
    when `extreme`, also counts near 2**53, up to the int64 limit and negative, and instances
    of 0, negative or beyond 2**53."""
    instances = draw(st.sampled_from([1, 2, 3, 4, 7, 10, 16, 256]) | st.integers(1, 10**6))
    count = (
        st.sampled_from([0, 1, 2, 5])
        | st.integers(0, 10**4)
        | st.integers(0, 10**6).map(lambda k, multiple=instances: k * multiple)
        | st.integers(0, 2**53)
    )
    if extreme:
        instances = draw(st.just(instances) | st.sampled_from([0, -3, 2**53 + 1, INT64_MAX]))
        count = (
            count
            | st.integers(2**53 - 3, 2**53 + 3)
            | st.integers(0, INT64_MAX)
            | st.integers(-(2**63), -1)
        )
    return draw(count), draw(count), draw(count), instances


def _check_energies(arch: Architecture, label: str, rows: list[tuple[int, int, int, int]]) -> None:
    table = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    for accounting in ("physical", "artifact"):
        expected = _rowwise(
            len(rows),
            lambda r, a=accounting: storage_energy(arch, label, rows[r][:3], rows[r][3], a, "T"),
        )
        _same_outcome(
            lambda a=accounting: storage_energies(
                arch, label, table[:, 0], table[:, 1], table[:, 2], table[:, 3], a, "T"
            ).tolist(),
            expected,
        )


@settings(max_examples=120, deadline=None)
@given(LEVELS, st.lists(access_rows(extreme=False), min_size=1, max_size=12))
def test_storage_energies_are_storage_energy_bit_for_bit(
    level: tuple[Architecture, str], rows: list[tuple[int, int, int, int]]
) -> None:
    _check_energies(*level, rows)


@settings(max_examples=60, deadline=None)
@given(LEVELS, st.lists(access_rows(extreme=True), min_size=1, max_size=12))
def test_storage_energies_beyond_the_ordinary_are_storage_energy(
    level: tuple[Architecture, str], rows: list[tuple[int, int, int, int]]
) -> None:
    _check_energies(*level, rows)


def test_an_integer_energy_multiplies_the_exact_mean() -> None:
    # 1 read over 10 instances at 3 pJ: Python rounds 3/10 once (0.3), not (1/10) * 3.
    arch, label = VARIANTS[0]
    expected = storage_energy(arch, label, (1, 0, 0), 10, "artifact")
    assert expected == 0.3 / (10 / 5)
    assert storage_energies(arch, label, [1], [0], [0], [10], "artifact").tolist() == [expected]


def _without_read_energy() -> Architecture:
    """An architecture whose RF lacks a read energy (validation cannot make one: its facts
    are replaced, as a level the cost model could not price)."""
    arch = load_architecture("fusemax").with_level("RF", read_pj=1.5)
    level = arch.storage["RF"]
    _facts(arch).levels["RF"] = _LevelFacts(level, (None, 1.906455, 0.25), 1, 2)
    return arch


@settings(max_examples=40, deadline=None)
@given(st.lists(access_rows(extreme=False), min_size=1, max_size=8), st.data())
def test_a_missing_energy_is_the_scalar_error(
    rows: list[tuple[int, int, int, int]], data: st.DataObject
) -> None:
    # Some rows read (and need the missing energy), others do not.
    rows = [(r if data.draw(st.booleans()) else 0, f, u, i) for r, f, u, i in rows]
    arch = _without_read_energy()
    _check_energies(arch, "RF", rows)
    if any(r[0] for r in rows):
        with pytest.raises(LevelCostError, match="level RF: no read energy for tensor T"):
            storage_energies(arch, "RF", *np.array(rows).T, tensor="T")


def test_storage_energies_takes_one_instance_count_for_all_rows() -> None:
    arch = load_architecture("fusemax")
    got = storage_energies(arch, "GLB", [5, 300, 0], [1, 0, 2], [0, 0, 7], 3)
    assert got.tolist() == [
        storage_energy(arch, "GLB", (5, 1, 0), 3),
        storage_energy(arch, "GLB", (300, 0, 0), 3),
        storage_energy(arch, "GLB", (0, 2, 7), 3),
    ]
    with pytest.raises(ValueError, match="2 instances for 3 rows"):
        storage_energies(arch, "GLB", [5, 300, 0], [1, 0, 2], [0, 0, 7], [3, 4])


bandwidths = st.none() | st.integers(1, 64) | st.floats(0.01, 1000.0)


@st.composite
def bandwidth_levels(draw: st.DrawFn) -> tuple[StorageLevel, Architecture]:
    """A level of the designs, or one with other read, write, shared and byte bandwidths."""
    arch, label = draw(LEVELS)
    level = level_of(arch, label)
    if draw(st.booleans()):
        level = level.replace(
            read_bandwidth=draw(bandwidths),
            write_bandwidth=draw(bandwidths),
            shared_bandwidth=draw(bandwidths),
            bandwidth_bytes_per_s=draw(st.none() | st.integers(1, 10**12) | st.floats(1.0, 1e12)),
        )
    return level, arch


def _check_cycles(level: tuple[StorageLevel, Architecture], rows: list[tuple[int, int, int, int]]) -> None:
    storage, arch = level
    table = np.array(rows, dtype=np.int64).reshape(len(rows), 4)
    expected = _rowwise(len(rows), lambda r: level_cycles(storage, rows[r][:3], rows[r][3], arch))
    _same_outcome(
        lambda: level_cycles_batch(
            storage, table[:, 0], table[:, 1], table[:, 2], table[:, 3], arch
        ).tolist(),
        expected,
    )


@settings(max_examples=120, deadline=None)
@given(bandwidth_levels(), st.lists(access_rows(extreme=False), min_size=1, max_size=12))
def test_level_cycles_batch_is_level_cycles_bit_for_bit(
    level: tuple[StorageLevel, Architecture], rows: list[tuple[int, int, int, int]]
) -> None:
    _check_cycles(level, rows)


@settings(max_examples=50, deadline=None)
@given(bandwidth_levels(), st.lists(access_rows(extreme=True), min_size=1, max_size=12))
def test_level_cycles_batch_beyond_the_ordinary_is_level_cycles(
    level: tuple[StorageLevel, Architecture], rows: list[tuple[int, int, int, int]]
) -> None:
    _check_cycles(level, rows)
