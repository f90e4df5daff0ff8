"""Compare two .npz files of einsum-run outputs: same names and shapes, values within rtol.

Prints `NAME: ok` or `NAME: DIFFERENT (...)` per array; exits 1 unless all are ok.
Usage: compare_npz.py EXPECTED.npz ACTUAL.npz [RTOL]
"""

import sys

import numpy as np

from einsum_opt.interpreters.equivalence import compare_outputs

expected_path, actual_path = sys.argv[1], sys.argv[2]
rtol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
with np.load(expected_path) as expected, np.load(actual_path) as actual:
    ok = sorted(expected.files) == sorted(actual.files)
    if not ok:
        print(f"names differ: {sorted(expected.files)} != {sorted(actual.files)}")
    for name in expected.files:
        if name not in actual.files:
            continue
        want, got = expected[name], actual[name]
        if want.shape != got.shape or want.dtype != got.dtype:
            print(f"{name}: DIFFERENT ({want.shape} {want.dtype} != {got.shape} {got.dtype})")
            ok = False
            continue
        max_abs, scale = compare_outputs(want, got)
        same = max_abs <= rtol * scale
        print(f"{name}: {'ok' if same else 'DIFFERENT'} {want.shape} {want.dtype}")
        ok = ok and same
sys.exit(0 if ok else 1)
