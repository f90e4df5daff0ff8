#!/usr/bin/env bash
# The main job: read 3-pass attention written in the paper's notation, count its passes over
# the input, let pass-fusion derive the 1-pass (FuseMax) cascade, check it against the
# hand-written one, map it onto the FuseMax arrays, lower it to loop nests (executed: same
# numbers) and to a dataflow program, and report its cost on FuseMax for BERT at 64K tokens.
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

echo "== 3-pass attention (examples/attention/3pass.einsum), passes over each rank"
einsum-opt examples/attention/3pass.einsum -p count-passes

echo
echo "== pass-fusion: split M into 256-key tiles, merge max/sum and the numerator"
echo "   (executed before and after on the same random inputs, at M=P=1024)"
einsum-opt examples/attention/3pass.einsum -p 'pass-fusion{rank=M tile=256},count-passes' \
  --check-equivalence -o "$out/fused.mlir"
cat "$out/fused.mlir"

echo
echo "== the derived cascade is the hand-written FuseMax cascade (examples/attention/1pass.mlir)"
einsum-opt examples/attention/1pass.mlir > "$out/reference.txt"
if einsum-opt examples/attention/3pass.einsum -p 'pass-fusion{rank=M tile=256}' | diff -q - "$out/reference.txt" >/dev/null; then
  echo "identical"
else
  echo "DIFFERENT:"; einsum-opt examples/attention/3pass.einsum -p 'pass-fusion{rank=M tile=256}' | diff - "$out/reference.txt"
  exit 1
fi

echo
echo "== mapped the FuseMax way and lowered to loop nests (executed: same numbers)"
einsum-opt examples/attention/3pass.einsum \
  -p 'pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest' --check-equivalence \
  | grep -E 'loopnest.nest on pe(2d|1d)' | sed -E 's/ levels .*//' | head -5
echo "    ..."

echo
echo "== cost on FuseMax: multi-head attention, BERT at 64K tokens (batch 64, 12 heads, E = F = 64)"
einsum-opt examples/attention/mha.einsum --ranks B=64,H=12,M=65536,P=65536 \
  -p 'pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest,lower-to-dataflow{arch=fusemax}' \
  -t cost-report

echo
echo "== the evaluation's five configurations, BERT attention at 64K tokens (einsum-eval)"
einsum-eval --out "$out/eval" --models BERT --lengths 64K --no-plots
python - "$out/eval/attention.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
fusemax = next(float(r["latency_s"]) for r in rows if r["config"] == "fusemax")
print(f"{'config':<14}{'latency (s)':>12}{'x FuseMax':>11}{'2D util':>9}{'1D util':>9}")
for r in rows:
    t = float(r["latency_s"])
    print(f"{r['config']:<14}{t:>12.4g}{t / fusemax:>11.2f}"
          f"{float(r['util_2d']):>9.1%}{float(r['util_1d']):>9.1%}")
PY

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
