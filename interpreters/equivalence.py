"""`--check-equivalence`: execute cascades before and after a pipeline and compare the outputs."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.support.errors import UserError


def compare_outputs(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(max |after - before|, max |before| over finite values); NaN only matches NaN, an
    infinity only the same infinity."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))  # equal infinities match too
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    max_abs = float(diff.max()) if diff.size else 0.0
    finite = np.abs(b[np.isfinite(b)])
    return max_abs, float(finite.max()) if finite.size else 0.0


def resized_ranks(before: CascadeOp, after: CascadeOp) -> dict[str, int]:
    """The ranks `before` declares with a number that `after` declares with another."""
    now = dict(after.ranks.data)
    return {
        name: size
        for name, old in before.ranks.data
        if isinstance(old, int) and isinstance(size := now.get(name), int) and size != old
    }


def check_equivalence(
    before: ModuleOp,
    after: ModuleOp,
    seed: int,
    rtol: float,
    atol: float,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> None:
    """Run every cascade of `before` and its namesake in `after` on the same seeded inputs.

    Reports one line per output; raises `UserError` if any output differs by more than
    `atol + rtol * max|before|`, or if cascades, inputs or outputs do not correspond.
    """
    from einsum_opt.interpreters.einsum import random_inputs, run_cascade

    after_by_name = {c.cascade_name: c for c in cascades_in(after)}
    failures: list[str] = []
    for old in cascades_in(before):
        name = old.cascade_name
        new = after_by_name.get(name)
        if new is None:
            raise UserError(f"check-equivalence: cascade @{name} is gone after the pipeline")
        if [n for n, _ in old.inputs()] != [n for n, _ in new.inputs()]:
            raise UserError(f"check-equivalence: cascade @{name} changed its inputs")
        # Compared at the sizes after the pipeline (`set-ranks` may have changed them).
        resized = resized_ranks(old, new)
        if resized:
            was = dict(old.ranks.data)
            changes = ", ".join(f"{n} = {s} (was {was[n]})" for n, s in resized.items())
            report(
                f"check-equivalence: @{name}: compared at the sizes after the pipeline: {changes}"
            )
        inputs = random_inputs(old, seed, resized)
        want = run_cascade(old, inputs, ranks=resized)
        got = run_cascade(new, inputs)
        for out, expected in want.items():
            if out not in got:
                raise UserError(f"check-equivalence: @{name} lost its output {out}")
            if got[out].shape != expected.shape:
                raise UserError(
                    f"check-equivalence: @{name} output {out} has shape {got[out].shape}, "
                    f"expected {expected.shape}"
                )
            max_abs, scale = compare_outputs(expected, got[out])
            ok = max_abs <= atol + rtol * scale
            rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
            report(
                f"check-equivalence: @{name} {out}: max abs error {max_abs:.3g}, "
                f"max rel error {rel:.3g} (rtol {rtol:g}, atol {atol:g}): "
                f"{'ok' if ok else 'DIFFERENT'}"
            )
            if not ok:
                failures.append(f"@{name} output {out} (max rel error {rel:.3g} > rtol {rtol:g})")
    if failures:
        raise UserError("check-equivalence: outputs differ: " + "; ".join(failures))
