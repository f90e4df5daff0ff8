"""`storage_energy` and `level_cycles` of many candidates at once, bit for bit.

Each row is one access (or one level's traffic): its reads, fills and updates over its
instances. The floats are made by the scalar functions' operations in their order: a count per
instance is Python's correctly rounded `int / int` (one float64 division while both ints are
at most 2**53), a mean that does not divide is a Fraction only where vectors are single words
(`_vectors` rounds up whole vectors, here in exact integer ceilings), an action never accessed
adds nothing, an integer energy multiplies exactly before rounding as Python's `int * int`.
Rows beyond those bounds (counts above 2**53, or 2**53 over the largest integer energy; a
negative count; instances below 1 or above 2**53; fewer clusters than one; an access at an
action the level has no energy for) are computed by the scalar function itself, in row order,
so they give its value or raise its error (`LevelCostError` for a missing energy,
ZeroDivisionError for no cluster), as a loop over the rows would.
"""

from __future__ import annotations

import numpy as np

from einsum_opt.costmodel.model import _facts, _LevelFacts, _storage_pj, level_cycles
from einsum_opt.hardware import Architecture, StorageLevel
from einsum_opt.support.int64_rows import EXACT_FLOAT, fill_rows, int64_array, rows_within


def _columns(
    what: str, reads: object, fills: object, updates: object, instances: object
) -> tuple[np.ndarray, np.ndarray]:
    """The counts as an (N, 3) int64 table and the instances as (N,), broadcast from an int."""
    counts = np.stack(
        [
            int64_array(reads, f"{what}: reads", 1),
            int64_array(fills, f"{what}: fills", 1),
            int64_array(updates, f"{what}: updates", 1),
        ],
        axis=1,
    )
    given = np.asarray(instances)
    per_row = int64_array(
        np.broadcast_to(given, counts.shape[:1]) if given.ndim == 0 else given,
        f"{what}: instances",
        1,
    )
    if per_row.shape != counts.shape[:1]:
        raise ValueError(f"{what}: {per_row.shape[0]} instances for {counts.shape[0]} rows")
    return counts, per_row


def _ordinary(counts: np.ndarray, instances: np.ndarray, count_bound: int) -> np.ndarray:
    """Rows with counts in [0, count_bound] and instances in [1, 2**53]."""
    return rows_within(counts, 0, count_bound) & (instances >= 1) & (instances <= EXACT_FLOAT)


def storage_energies(
    arch: Architecture,
    label: str,
    reads: object,
    fills: object,
    updates: object,
    instances: object,
    accounting: str = "physical",
    tensor: str = "",
) -> np.ndarray:
    """`storage_energy(arch, label, (reads[r], fills[r], updates[r]), instances[r],
    accounting, tensor)` for every row r, as float64, bit for bit (`instances` may be one int
    for all rows)."""
    counts, per_row = _columns("storage_energies", reads, fills, updates, instances)
    facts = _facts(arch).level(label)
    out = np.zeros(counts.shape[0], dtype=np.float64)
    # An integer energy times a count is exact up to 2**53 (the float of an int product).
    bound = EXACT_FLOAT // _largest_integer(facts.energies)
    fast = _ordinary(counts, per_row, bound)
    level = facts.level
    clusters = np.minimum(per_row, np.maximum(per_row, level.instances) // level.cluster_size)
    fast &= clusters >= 1
    for action, pj in enumerate(facts.energies):
        if pj is None:
            fast &= counts[:, action] == 0
    fill_rows(
        out,
        np.flatnonzero(~fast),
        lambda r: _storage_pj(
            facts, tuple(counts[r].tolist()), int(per_row[r]), accounting, label, tensor
        ),
    )
    if fast.any():
        out[fast] = _energies_fast(facts, counts[fast], per_row[fast], clusters[fast], accounting)
    return out


def _energies_fast(
    facts: _LevelFacts,
    counts: np.ndarray,
    instances: np.ndarray,
    clusters: np.ndarray,
    accounting: str,
) -> np.ndarray:
    """`_storage_pj` of ordinary rows (see `storage_energies`), in its order of operations."""
    per_instance = instances.astype(np.float64)
    per_cluster = np.zeros(counts.shape[0], dtype=np.float64)
    for action, pj in enumerate(facts.energies):
        if pj is None or (isinstance(pj, int) and pj > EXACT_FLOAT):
            continue  # no row accesses it (the bound keeps rows of such pj to counts of 0)
        count = counts[:, action]
        if facts.block == 1:
            # The mean count (an int or a Fraction) times pj, rounded as Python rounds it.
            if isinstance(pj, int):
                term = (count * pj).astype(np.float64) / per_instance
            else:
                term = count.astype(np.float64) / per_instance * pj
        else:
            # ceil(ceil(c / i) / block) == ceil(c / (i * block)), without the product
            vectors = _ceiling(_ceiling(count, instances), facts.block)
            # Both at most 2**53, so the float product is rounded once, as Python's float of
            # an int product is.
            term = vectors * pj
        per_cluster = per_cluster + np.where(count == 0, 0.0, term)
    pj_per_instance = per_cluster / (per_instance / clusters.astype(np.float64))
    return pj_per_instance if accounting == "artifact" else pj_per_instance * per_instance


def level_cycles_batch(
    level: StorageLevel,
    reads: object,
    fills: object,
    updates: object,
    instances: object,
    arch: Architecture,
) -> np.ndarray:
    """`level_cycles(level, (reads[r], fills[r], updates[r]), instances[r], arch)` for every
    row r, as float64, bit for bit (`instances` may be one int for all rows)."""
    counts, per_row = _columns("level_cycles_batch", reads, fills, updates, instances)
    out = np.zeros(counts.shape[0], dtype=np.float64)
    fast = _ordinary(counts, per_row, EXACT_FLOAT)
    fill_rows(
        out,
        np.flatnonzero(~fast),
        lambda r: level_cycles(level, tuple(counts[r].tolist()), int(per_row[r]), arch),
    )
    if not fast.any():
        return out
    per_instance = per_row[fast].astype(np.float64)
    each = counts[fast].astype(np.float64)
    read, fill, update = (each[:, k] / per_instance for k in range(3))
    need = np.zeros(read.shape[0], dtype=np.float64)
    if level.read_bandwidth is not None:
        need = _larger(need, read / float(level.read_bandwidth))
    if level.write_bandwidth is not None:
        need = _larger(need, (fill + update) / float(level.write_bandwidth))
    if level.shared_bandwidth is not None:
        need = _larger(need, (read + fill + update) / float(level.shared_bandwidth))
    if level.bandwidth_bytes_per_s is not None:
        words = (
            level.bandwidth_bytes_per_s / arch.clock_hz / (level.word_bits_of(arch.word_bytes) / 8)
        )
        need = _larger(need, (read + fill + update) / words)
    out[fast] = need
    return out


def _larger(current: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """Python's `max(current, candidate)` per element: the candidate only when it is larger
    (an equal or NaN candidate keeps the current value, as `max` keeps the first)."""
    return np.where(candidate > current, candidate, current)


def _ceiling(numerator: np.ndarray, denominator: np.ndarray | int) -> np.ndarray:
    """Exact ceil(numerator / denominator) of non-negative int64s over positive ones."""
    return -(-numerator // denominator)


def _largest_integer(energies: tuple[float | None, ...]) -> int:
    """The largest of the energies given as ints, at least 1."""
    largest = 1
    for pj in energies:
        if type(pj) is int and pj > largest:
            largest = pj
    return largest
