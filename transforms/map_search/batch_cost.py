"""The cost of a kernel for many candidates at once, as `CascadeCoster.cost` computes it for one
(`exact=False`), numpy over rows: the rows share the kernel's loops (`KernelLoops`) and the
structure of their nests' results (which levels and tensors they access and touch), and differ
in numbers. Every number is the scalar one, bit for bit: integers in int64 (rows that might
overflow are left to the caller), floats accumulated in the same order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from einsum_opt.costmodel.batch_levels import level_cycles_batch
from einsum_opt.costmodel.model import level_of
from einsum_opt.lowering.buffers_batch import occupancy_totals
from einsum_opt.transforms.map_search.compose import (
    AFTER,
    BEFORE,
    PIPELINE,
    CascadeCoster,
    KernelLoops,
)
from einsum_opt.transforms.map_search.nest_eval import NestResult

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

EXACT = 2**53
"""Integers below this convert to float64 exactly."""


@dataclass
class KernelRows:
    """A kernel's cost per row: its program's latency, compute energy, storage energy (the
    nests' accesses summed, then each leaking level's leakage: the terms the scalar adds one
    after another) and each level's peak bytes; `exact` marks the rows whose numbers stayed
    within int64 and float64's exact integers (the others must be costed one by one)."""

    latency: Floats
    compute_pj: Floats
    storage_pj: list[Floats]
    peaks: dict[str, Ints]
    exact: npt.NDArray[np.bool_]


def result_shape(result: NestResult) -> tuple[object, ...]:
    """What the batch cost needs to be the same across rows at one position: the unit, the
    levels accessed in order and the touches' tensors per level."""
    return (
        result.unit,
        tuple(level[0] for level in result.levels),
        tuple(
            (label, tuple((t.tensor, t.writes, t.accumulates) for t in ts))
            for label, ts in result.touches
        ),
    )


Column = tuple[Sequence[NestResult], Ints]
"""One position of a kernel: the distinct results its rows take, and each row's index."""


def kernel_rows(
    coster: CascadeCoster,
    loops: KernelLoops,
    results: Sequence[Column],
    times: Ints,
    points: Ints,
    runs: Ints,
) -> KernelRows:
    """The kernel's cost per row: `results[k]` gives row r's result at position k (all rows of
    one result shape per position), `times`, `points` and `runs` (rows, positions) its stages'
    shapes."""
    arch = coster.arch
    rows = times.shape[0]
    exact = np.ones(rows, dtype=np.bool_)
    cycles = np.stack([_ints(col, lambda r: r.cycles) for col in results], axis=1)
    latency = times * cycles
    exact &= _fits(times.astype(np.float64) * cycles).all(axis=1)
    units = [col[0][int(col[1][0])].unit for col in results]
    compute, den, ok = _compute(loops, latency, runs, units)
    exact &= ok
    compute_pj = _compute_pj(loops, results, times, points, runs)
    sums = _level_sums(results, coster.needed)
    program = np.where(exact, compute.astype(np.float64) / den.astype(np.float64), 0.0)
    for label, (reads, fills, updates, instances) in sums.items():
        if label in coster.limited:
            for column in (reads, fills, updates):
                exact &= _fits(column.astype(np.float64))
            level = level_of(arch, label)
            cycles_here = level_cycles_batch(
                level,
                np.where(exact, reads, 0),
                np.where(exact, fills, 0),
                np.where(exact, updates, 0),
                instances,
                arch,
            )
            program = np.maximum(program, cycles_here)
    program = np.maximum(program, 0.0)
    storage = np.zeros(rows, dtype=np.float64)
    for col in results:
        storage = storage + _floats(col, lambda r: r.storage_pj)
    terms = [storage]
    for label, charged in _leaking(coster, units, sums).items():
        terms.append(level_of(arch, label).leak_pj_per_cycle * program * charged)
    peaks = _peaks(coster, results, loops.persistent)
    return KernelRows(program, compute_pj, terms, peaks, exact)


def _used(col: Column) -> list[int]:
    return np.unique(col[1]).tolist()


def _ints(col: Column, value_of: Callable[[NestResult], int]) -> Ints:
    """value_of(row's result) per row, int64 (computed once per distinct result)."""
    return _gathered(col, value_of, np.int64)


def _floats(col: Column, value_of: Callable[[NestResult], float]) -> Floats:
    """value_of(row's result) per row, float64."""
    return _gathered(col, value_of, np.float64)


def _gathered(col: Column, value_of: Callable[[NestResult], Any], dtype: type) -> Any:
    table, rid = col
    values: Any = np.zeros(len(table), dtype=dtype)
    for u in _used(col):
        values[u] = value_of(table[u])
    return values[rid]


def _level_field(j: int, f: int) -> Callable[[NestResult], int]:
    """Field `f` (1 reads, 2 fills, 3 updates, 4 instances) of a result's `j`-th level."""
    return lambda r: int(r.levels[j][f])


def _touch_words(j: int, n: int) -> Callable[[NestResult], int]:
    """The words of the `n`-th touch of a result's `j`-th touched level."""
    return lambda r: r.touches[j][1][n].words


def _representative(col: Column) -> NestResult:
    """A result of the column's rows (they share its shape)."""
    return col[0][int(col[1][0])]


def _fits(values: Floats) -> npt.NDArray[np.bool_]:
    return np.abs(values) < float(2**62)


class _Exact:
    """Integer arithmetic over rows in int64 with a float64 shadow of every magnitude: a row
    whose shadow leaves int64's range is marked inexact (`ok`), so no wrapped value is used."""

    LIMIT = float(2**62)

    def __init__(self, rows: int):
        self.ok = np.ones(rows, dtype=np.bool_)

    def check(self, *shadows: Floats) -> None:
        for shadow in shadows:
            self.ok &= np.abs(shadow) < self.LIMIT

    def mul(self, a: Ints, b: Ints | int) -> Ints:
        self.check(a.astype(np.float64) * (b if isinstance(b, int) else b.astype(np.float64)))
        return np.where(self.ok, a * b, 0)

    def add(self, a: Ints, b: Ints) -> Ints:
        self.check(a.astype(np.float64) + b.astype(np.float64))
        return np.where(self.ok, a + b, 0)

    def fraction_sum(self, a_num: Ints, a_den: Ints, b_num: Ints, b_den: Ints) -> tuple[Ints, Ints]:
        """a + b in lowest terms (denominators positive)."""
        g = np.gcd(a_den, b_den)
        num = self.add(self.mul(a_num, b_den // g), self.mul(b_num, a_den // g))
        den = self.mul(a_den // g, b_den)
        return _lowest(num, den)


def _lowest(num: Ints, den: Ints) -> tuple[Ints, Ints]:
    g = np.maximum(np.gcd(num, den), 1)
    return num // g, den // g


def _compute(
    loops: KernelLoops, latency: Ints, runs: Ints, units: Sequence[str]
) -> tuple[Ints, Ints, npt.NDArray[np.bool_]]:
    """`_compute` per row as numerator and denominator, and the rows where it is exact (in
    int64, and both below 2**53, so that numerator / denominator in float64 is the Fraction's
    float)."""
    rows = latency.shape[0]
    x = _Exact(rows)
    roles = loops.roles
    plain = np.zeros(rows, dtype=np.int64)
    inner = np.zeros(rows, dtype=np.int64)
    for i, role in enumerate(roles):
        if role in (BEFORE, AFTER):
            plain = x.add(plain, latency[:, i])
        elif role != PIPELINE:
            inner = x.add(inner, latency[:, i])
    num = inner
    den = np.ones(rows, dtype=np.int64)
    if loops.graph is not None:
        count = math_prod(loops.trips, loops.pipeline)
        stage = latency[:, list(loops.members)]
        busy: dict[str, Ints] = {}
        for i in loops.members:
            busy[units[i]] = x.add(
                busy.get(units[i], np.zeros(rows, np.int64)), x.mul(runs[:, i], latency[:, i])
            )
        most = np.zeros(rows, dtype=np.int64)
        for value in busy.values():
            most = np.maximum(most, value)
        # The graph's own batch methods compute the rows that might overflow one by one.
        r_num, r_den = loops.graph.recurrence_bounds(np.where(x.ok[:, None], stage, 0))
        path = loops.graph.critical_paths(np.where(x.ok[:, None], stage, 0))
        use_bound = x.mul(r_num, count) > x.mul(most, r_den)
        i_num, i_den = _lowest(np.where(use_bound, r_num, most), np.where(use_bound, r_den, count))
        last_path = x.mul(path, count) >= most
        l_num, l_den = _lowest(np.where(last_path, path, most), np.where(last_path, 1, count))
        num, den = x.fraction_sum(x.mul(i_num, count - 1), i_den, l_num, l_den)
        num, den = x.fraction_sum(inner, np.ones(rows, np.int64), num, den)
    if loops.has_repeat:
        num = x.mul(num, math_prod(loops.trips, loops.repeat))
        num, den = _lowest(num, den)
    num, den = x.fraction_sum(num, den, plain, np.ones(rows, np.int64))
    exact = x.ok & (np.abs(num) < EXACT) & (den < EXACT)
    return num, den, exact


def math_prod(trips: Sequence[tuple[str, int]], variables: Sequence[str]) -> int:
    """The product of the trips of `variables`."""
    table = dict(trips)
    out = 1
    for var in variables:
        out *= table[var]
    return out


def _compute_pj(
    loops: KernelLoops,
    results: Sequence[Column],
    times: Ints,
    points: Ints,
    runs: Ints,
) -> Floats:
    """`_compute_pj` per row, accumulated stage by stage in the same order."""
    rows = times.shape[0]
    mult = math_prod(loops.trips, loops.repeat) if loops.has_repeat else 1
    total = np.zeros(rows, dtype=np.float64)
    for i in loops.accounting_order:
        factor = 1 if loops.roles[i] in (BEFORE, AFTER) else mult
        count = factor * runs[:, i] * times[:, i] * points[:, i]
        pj = _floats(results[i], lambda r: r.point_pj)
        total = total + count.astype(np.float64) * pj
    return total


def _level_sums(
    results: Sequence[Column], labels: frozenset[str]
) -> dict[str, tuple[Ints, Ints, Ints, Ints]]:
    """`_level_sums` per row over the labels in `labels`, in order of first access."""
    out: dict[str, list[Ints]] = {}
    for col in results:
        for j, level in enumerate(_representative(col).levels):
            label = level[0]
            if label not in labels:
                continue
            values = [_ints(col, _level_field(j, f)) for f in (1, 2, 3, 4)]
            entry = out.get(label)
            if entry is None:
                out[label] = values
            else:
                entry[0] = entry[0] + values[0]
                entry[1] = entry[1] + values[1]
                entry[2] = entry[2] + values[2]
                entry[3] = np.maximum(entry[3], values[3])
    return {label: (e[0], e[1], e[2], e[3]) for label, e in out.items()}


def _leaking(
    coster: CascadeCoster,
    units: Sequence[str],
    sums: dict[str, tuple[Ints, Ints, Ints, Ints]],
) -> dict[str, Ints | int]:
    """`_leaking_instances` per row, in the same order."""
    charged: dict[str, Ints | int] = {}
    for label, entry in sums.items():
        if label in coster.leaking:
            charged[label] = entry[3]
    for unit in dict.fromkeys(units):
        for chained in coster.arch.chain(unit):
            if chained.label in coster.leaking and chained.label not in charged:
                charged[chained.label] = 1
    return charged


def _peaks(
    coster: CascadeCoster, results: Sequence[Column], persistent: frozenset[str]
) -> dict[str, Ints]:
    """`_peaks` per row: label -> the bytes one instance holds at its peak (0: nothing)."""
    groups: dict[str, list[tuple[object, ...]]] = {}
    words: dict[str, list[Ints]] = {}
    for col in results:
        for j, (label, ts) in enumerate(_representative(col).touches):
            groups.setdefault(label, []).append(ts)
            for n in range(len(ts)):
                words.setdefault(label, []).append(_ints(col, _touch_words(j, n)))
    out: dict[str, Ints] = {}
    word = coster.arch.word_bytes
    for label, shapes in groups.items():
        if coster.capacity.get(label) is None:
            continue
        table = np.stack(words[label], axis=1)
        total = occupancy_totals(shapes, table, persistent)  # type: ignore[arg-type]
        out[label] = total * word
    return out
