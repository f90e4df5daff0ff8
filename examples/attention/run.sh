#!/usr/bin/env bash
# The main job, as far as the pipeline goes today: read the attention cascades written in the
# paper's notation, verify and print the IR, execute all three with the reference interpreter
# on the same inputs, and show that they compute the same attention.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x .venv/bin/einsum-opt ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi
export PATH="$PWD/.venv/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== 3-pass attention, from examples/attention/3pass.einsum"
einsum-opt examples/attention/3pass.einsum

echo
echo "== executing the 3-, 2- and 1-pass cascades on the same inputs (M=P=512, seed 0)"
for n in 3pass 2pass 1pass; do
  einsum-run "examples/attention/$n.einsum" --ranks M=512,P=512 --seed 0 -o "$out/$n.npz"
done
python - "$out" <<'PY'
import sys
import numpy as np
out = sys.argv[1]
ref = np.load(f"{out}/3pass.npz")["AV"].astype(np.float64)
for n in ("2pass", "1pass"):
    got = np.load(f"{out}/{n}.npz")["AV"].astype(np.float64)
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"{n} vs 3pass: max relative error {err:.2e}")
PY
