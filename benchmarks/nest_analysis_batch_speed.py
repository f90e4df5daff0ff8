"""How much faster is the batch analysis than the scalar one? For real loop structures
(tests/data/nest_structures.json: nests map-search analyses on the 1-pass attention cascade
and on a Timeloop mapper input, and the Timeloop cases), N = 1000 distinct random
factorizations of the dimensions over the structure's loop slots (for the attention nests as
map-search builds them, "attention-split", random splits of each split rank into its pieces:
sizes and strides per row): the CPU time of one
`analyze_batch` against a loop of `analyze` over the same rows (its caches cleared first, the
rows distinct), as a ratio within one run; the rows checked equal. Each time is the least of
a few runs (the batch 5, the loop 2, its caches cleared before each), as the machine is
shared.

Run: `.venv/bin/python benchmarks/nest_analysis_batch_speed.py [ROWS]`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import nest_structures  # noqa: E402

from einsum_opt.costmodel.link_transfers import fanout_of  # noqa: E402
from einsum_opt.costmodel.nest_analysis import analyze  # noqa: E402
from einsum_opt.costmodel.nest_analysis_batch import analyze_batch  # noqa: E402
from einsum_opt.costmodel.tile_trace import walk_trace  # noqa: E402


def main() -> None:
    """Print one line per structure and the ratio over each source's structures."""
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for source, specs in nest_structures.stored().items():
        batch_total = scalar_total = 0.0
        for index, spec in enumerate(specs):
            dims, coefficients = None, None
            if source == "attention-split":  # pieces' sizes and strides per row
                extents, dims, coefficients = nest_structures.split_rows(spec, rows, seed=index)
            else:
                extents = nest_structures.factorizations(spec, rows, seed=index)
            if len(extents) < rows // 2:
                continue  # too few distinct factorizations to measure
            batch_time = scalar_time = float("inf")
            for _ in range(5):
                start = time.process_time()
                batch = analyze_batch(spec, extents, dims=dims, coefficients=coefficients)
                batch_time = min(batch_time, time.process_time() - start)
            specs_of_rows = [batch.spec_of(r) for r in range(len(extents))]
            for _ in range(2):
                walk_trace.cache_clear()
                fanout_of.cache_clear()
                start = time.process_time()
                counts = [analyze(s) for s in specs_of_rows]
                scalar_time = min(scalar_time, time.process_time() - start)
            assert all(batch.row(r) == c for r, c in enumerate(counts))
            batch_total += batch_time
            scalar_total += scalar_time
            print(
                f"{source} #{index}: {len(extents)} rows, {len(specs_of_rows[0].levels)} levels, "
                f"{extents.shape[1]} loops: batch {batch_time * 1e3:.1f} ms, "
                f"scalar {scalar_time * 1e3:.1f} ms, {scalar_time / batch_time:.1f}x "
                f"({batch.fallback_rows} rows fell back)"
            )
        if batch_total:
            print(f"{source}: {scalar_total / batch_total:.1f}x over its structures")


if __name__ == "__main__":
    main()
