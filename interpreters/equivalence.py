"""`--check-equivalence`: execute cascades before and after a pipeline on adversarial inputs and
compare the outputs.

Every cascade runs on each input set of `adversarial.adversarial_inputs` (standard normal,
large magnitudes, constant rows, -inf masks). On each set, an output is *equivalent* when it is
finite exactly where the input cascade's is, equal to it where that is +-inf, and, where it is
finite, within `atol + rtol * max|before| + 4 * sensitivity` of it: `max|before|` is the largest
finite value of the input cascade's output on that set, and `sensitivity` how much that output
itself moves when every input is perturbed by a relative 8 units in the last place (a rewrite
reorders rounding errors; on well-conditioned inputs this term is negligible, on logits of
magnitude 1e4 it is what float32 can tell apart). Where the input cascade gives NaN (a fully
masked softmax row: exp(-inf - (-inf))), the rewritten cascade may give NaN or an infinity.
The default tolerance follows the output's element type (`DEFAULT_TOLERANCE`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_attrs import TensorType
from einsum_opt.interpreters.einsum_values import Array, numeric_type
from einsum_opt.support.errors import UserError

DEFAULT_TOLERANCE: dict[str, tuple[float, float]] = {
    "f64": (1e-9, 0.0),
    "f32": (1e-5, 0.0),
    "f16": (1e-2, 0.0),
    "bf16": (5e-2, 0.0),
}
"""Element type -> default (rtol, atol); integers must match exactly."""


PERTURBATION_ULPS = 8
"""How far (in units in the last place, relative) the inputs are moved to measure how much the
input cascade's output depends on rounding."""

SENSITIVITY_FACTOR = 4.0
"""How many times that change a rewritten cascade may differ by, on top of rtol and atol."""


def perturbed(values: dict[str, Array], seed: int) -> dict[str, Array]:
    """Every float input times (1 + u * PERTURBATION_ULPS * eps), u uniform in [-1, 1] (-inf,
    zeros and integers stay as they are)."""
    rng = np.random.default_rng([seed, 2])
    out: dict[str, Array] = {}
    for name, array in values.items():
        if array.dtype.kind != "f":
            out[name] = array
            continue
        eps = float(np.finfo(array.dtype).eps)
        u = rng.uniform(-1.0, 1.0, size=array.shape)
        with np.errstate(invalid="ignore"):
            moved = array.astype(np.float64) * (1.0 + u * PERTURBATION_ULPS * eps)
        out[name] = np.where(np.isfinite(array), moved, array).astype(array.dtype)
    return out


def default_tolerance(type_name: str) -> tuple[float, float]:
    """(rtol, atol) for outputs of element type `type_name` (`f32`, `i64`, ...)."""
    return DEFAULT_TOLERANCE.get(type_name, (0.0, 0.0))


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


def compare_finite(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(max |after - before| over the values finite in both, max |before| over the finite
    values of `before`)."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a[both] - b[both])
    finite = np.abs(b[np.isfinite(b)])
    return (float(diff.max()) if diff.size else 0.0), (float(finite.max()) if finite.size else 0.0)


def nonfinite_mismatch(before: np.ndarray, after: np.ndarray) -> int:
    """How many values break the rule for non-finite values: finite exactly where `before`
    is, the same infinity where `before` is infinite (NaN in `before` admits any non-finite)."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    finite_differs = np.isfinite(b) != np.isfinite(a)
    infinity_differs = np.isinf(b) & (a != b)
    return int(np.count_nonzero(finite_differs | infinity_differs))


@dataclass
class OutputCheck:
    """The comparison of one output over every input set."""

    name: str
    rtol: float
    atol: float
    max_abs: float = 0.0
    max_rel: float = 0.0
    failures: list[str] = field(default_factory=list)

    def add(self, label: str, expected: Array, got: Array, perturbed: Array) -> None:
        """Compare the output on one input set (`perturbed`: the input cascade's output on
        the perturbed inputs)."""
        max_abs, scale = compare_finite(expected, got)
        sensitivity = compare_finite(expected, perturbed)[0]
        rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        self.max_abs, self.max_rel = max(self.max_abs, max_abs), max(self.max_rel, rel)
        if max_abs > self.atol + self.rtol * scale + SENSITIVITY_FACTOR * sensitivity:
            self.failures.append(f"on {label}: max rel error {rel:.3g} > rtol {self.rtol:g}")
        wrong = nonfinite_mismatch(expected, got)
        if wrong:
            self.failures.append(
                f"on {label}: {wrong} of {expected.size} values not finite where the input "
                "cascade's are (or another infinity)"
            )


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
    rtol: float | None = None,
    atol: float | None = None,
    report: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> None:
    """Run every cascade of `before` and its namesake in `after` on the same adversarial
    input sets (drawn from `seed`).

    Reports one line per output; raises `UserError` if any output is not equivalent on some
    set, or if cascades, inputs or outputs do not correspond. `rtol`/`atol` None take the
    defaults of the output's element type.
    """
    after_by_name = {c.cascade_name: c for c in cascades_in(after)}
    failures: list[str] = []
    for old in cascades_in(before):
        name = old.cascade_name
        new = after_by_name.get(name)
        if new is None:
            raise UserError(f"check-equivalence: cascade @{name} is gone after the pipeline")
        if [n for n, _ in old.inputs()] != [n for n, _ in new.inputs()]:
            raise UserError(f"check-equivalence: cascade @{name} changed its inputs")
        for check in _check_cascade(old, new, seed, rtol, atol, report):
            if check.failures:
                failures.append(f"@{name} output {check.name} ({check.failures[0]})")
    if failures:
        raise UserError("check-equivalence: outputs differ: " + "; ".join(failures))


def _check_cascade(
    old: CascadeOp,
    new: CascadeOp,
    seed: int,
    rtol: float | None,
    atol: float | None,
    report: Callable[[str], None],
) -> list[OutputCheck]:
    from einsum_opt.interpreters.adversarial import adversarial_inputs
    from einsum_opt.interpreters.einsum import run_cascade

    name = old.cascade_name
    types = dict(zip(old.output_names(), old.function_type.outputs.data, strict=True))
    checks: dict[str, OutputCheck] = {}
    kinds: dict[str, str] = {}
    for out, t in types.items():
        assert isinstance(t, TensorType)
        kinds[out] = numeric_type(t.element_type).name
        default_rtol, default_atol = default_tolerance(kinds[out])
        checks[out] = OutputCheck(
            out, default_rtol if rtol is None else rtol, default_atol if atol is None else atol
        )
    # Compared at the sizes after the pipeline (`set-ranks` may have changed them).
    resized = resized_ranks(old, new)
    if resized:
        was = dict(old.ranks.data)
        changes = ", ".join(f"{n} = {s} (was {was[n]})" for n, s in resized.items())
        report(f"check-equivalence: @{name}: compared at the sizes after the pipeline: {changes}")
    sets = adversarial_inputs(old, seed, resized, rewritten=new)
    for inputs in sets:
        want = run_cascade(old, inputs.values, ranks=resized)
        got = run_cascade(new, inputs.values)
        moved = run_cascade(old, perturbed(inputs.values, seed), ranks=resized)
        for out, expected in want.items():
            if out not in got:
                raise UserError(f"check-equivalence: @{name} lost its output {out}")
            if got[out].shape != expected.shape:
                raise UserError(
                    f"check-equivalence: @{name} output {out} has shape {got[out].shape}, "
                    f"expected {expected.shape}"
                )
            checks[out].add(inputs.label, expected, got[out], moved[out])
    for out, check in checks.items():
        told = "given" if rtol is not None else "default"
        atold = "given" if atol is not None else "default"
        verdict = "ok" if not check.failures else f"{check.failures[0]}: DIFFERENT"
        report(
            f"check-equivalence: @{name} {out}: max abs error {check.max_abs:.3g}, "
            f"max rel error {check.max_rel:.3g} over {len(sets)} input sets "
            f"({kinds[out]}, {told} rtol {check.rtol:g}, {atold} atol {check.atol:g}, "
            f"plus the input cascade's own rounding sensitivity): {verdict}"
        )
    return list(checks.values())
