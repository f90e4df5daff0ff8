"""Reference semantics of the einsum and loopnest dialects: run a cascade on numpy arrays.

```python
module = load_file("examples/attention/1pass.mlir")
out = run_cascade(module, {"Q": q, "K": k, "V": v}, ranks={"M": 512, "P": 100})
out["AV"]                                  # shape (F, P) = (64, 100), float32
```

Semantics, per Einsum: iterate the Cartesian product of its output and reduced variables
(each `v` over `0 .. size(V)-1`); read every access by evaluating its affine indices
(`m1*M0+m0`, `m1+1`, or a rank size alone such as `M1`: the final value of an iterative
tensor); apply the map region elementwise (numpy semantics, in the output element type); then
reduce the reduced variables with their operators, in the order `reduce` lists them (the first
listed is applied first, innermost). Everything is vectorised per Einsum; only iterative ranks
are Python loops (see `einsum_schedule`).

A `loopnest.nest` (a lowered Einsum; cascades may mix both) runs from its own loops: its grid
iterates every loop variable over the loop's trip count; accesses and the output are indexed
by their affine forms of the loop variables (rank sizes in them, as in `m1*M0+m0` or
`RNV[M1, f, p]`, take the cascade's sizes); loop variables the output does not use are reduced
with the nest's operators; the values are then placed by the output indices, which must cover
the output one-to-one (`output_plan`). A nest whose output index is `r+1` iterates loop `r`,
scheduled like an iterative Einsum. So a wrong trip count, stride, reduction or iterative
loop in a nest gives other numbers or an ExecutionError, never the Einsum's values.

Arrays are indexed in the rank order of their tensor type. An iterative tensor (an Einsum whose
output index on rank R is `r+1`) holds size(R)+1 entries along R: index 0 is its initial value,
index size(R) its final value. A cascade output that is iterative is returned that way, with
the extra entry. Element types map to numpy dtypes as `einsum_values` describes; bf16 values
are returned as float32 arrays holding bfloat16 values.

The cascade is expected to be verified (`load_file` verifies what it reads); problems with
the inputs, rank sizes or the cascade's executability raise `ExecutionError`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.einsum_attrs import TensorType
from einsum_opt.interpreters.compute_ops import compute_ops, iterative_rank_name
from einsum_opt.interpreters.einsum_kernel import Layout
from einsum_opt.interpreters.einsum_schedule import execution_order, run_group
from einsum_opt.interpreters.einsum_values import Array, ExecutionError, numeric_type
from einsum_opt.interpreters.footprint import check_fits_in_memory

__all__ = [
    "ExecutionError",
    "find_cascade",
    "prepared_inputs",
    "random_inputs",
    "rank_sizes",
    "run_cascade",
]

RANDOM_INT_RANGE = (-4, 4)
"""Integer inputs are drawn uniformly from this closed range."""


def find_cascade(target: ModuleOp | CascadeOp, name: str | None = None) -> CascadeOp:
    """The cascade called `name` (with or without `@`), or the only cascade in `target`."""
    cascades = cascades_in(target)
    listed = ", ".join(f"@{c.cascade_name}" for c in cascades)
    if name is not None:
        wanted = name.removeprefix("@")
        for c in cascades:
            if c.cascade_name == wanted:
                return c
        raise ExecutionError(f"no cascade @{wanted} (found: {listed or 'none'})")
    if not cascades:
        raise ExecutionError("no einsum.cascade to run")
    if len(cascades) > 1:
        raise ExecutionError(f"{len(cascades)} cascades ({listed}): choose one by name")
    return cascades[0]


def rank_sizes(cascade: CascadeOp, ranks: Mapping[str, int] | None = None) -> dict[str, int]:
    """Every rank's size: the declared sizes with `ranks` overrides (the IR is not changed)."""
    overrides = dict(ranks or {})
    for rank, size in overrides.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
            raise ExecutionError(f"rank {rank} must have a positive integer size, got {size!r}")
    try:
        sizes = cascade.ranks.with_sizes({k: int(v) for k, v in overrides.items()}).sizes()
    except VerifyException as e:
        raise ExecutionError(f"cascade @{cascade.cascade_name}: {e}") from e
    bad = {r: s for r, s in sizes.items() if s <= 0}
    if bad:
        rank, size = next(iter(bad.items()))
        raise ExecutionError(f"rank {rank} has size {size}; sizes must be positive")
    return sizes


def random_inputs(
    cascade: CascadeOp, seed: int = 0, ranks: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Random values for every input: standard normal floats, small integers (reproducible).

    Inputs are drawn in input order from `np.random.default_rng(seed)`.
    """
    sizes = rank_sizes(cascade, ranks)
    return _draw_inputs(cascade, sizes, seed, {name for name, _ in cascade.inputs()})


def _draw_inputs(
    cascade: CascadeOp, sizes: Mapping[str, int], seed: int, wanted: set[str]
) -> dict[str, Array]:
    """Draw inputs in order (all of them up to the last wanted one, so each value depends
    only on the seed) and keep the wanted ones."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ExecutionError(f"the seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    drawn: dict[str, Array] = {}
    remaining = set(wanted)
    for name, t in cascade.inputs():
        if not remaining:
            break
        kind = numeric_type(t.element_type)
        shape = tuple(sizes[r] for r in t.rank_names)
        values: Array
        if kind.is_float:
            values = rng.standard_normal(shape)
        else:
            low, high = RANDOM_INT_RANGE
            values = rng.integers(low, high, size=shape, endpoint=True)
        if name in remaining:
            drawn[name] = kind.coerce(values)
            remaining.discard(name)
    return drawn


def _checked_input(cascade: CascadeOp, name: str, value: object, sizes: Mapping[str, int]) -> Array:
    """An input array converted to its element type, after checking its kind and shape."""
    t = dict(cascade.inputs())[name]
    kind = numeric_type(t.element_type)
    array = np.asarray(value)
    if not kind.accepts(array.dtype):
        raise ExecutionError(
            f"input {name}: expected {kind.name} values, got an array of {array.dtype}"
        )
    ranks = t.rank_names
    if array.ndim != len(ranks):
        raise ExecutionError(
            f"input {name}: expected {len(ranks)} dimension(s) [{', '.join(ranks)}], got an "
            f"array of shape {array.shape}"
        )
    for axis, rank in enumerate(ranks):
        if array.shape[axis] != sizes[rank]:
            raise ExecutionError(
                f"input {name}: rank {rank} (dimension {axis}) has size {array.shape[axis]} in "
                f"the array but {sizes[rank]} in the cascade"
            )
    return kind.coerce(array)


def prepared_inputs(
    cascade: CascadeOp,
    inputs: Mapping[str, np.ndarray] | None,
    sizes: Mapping[str, int],
    seed: int,
) -> dict[str, Array]:
    """Every input of `cascade` by name: the given arrays, checked and converted to their
    element types, and random ones (as `random_inputs(seed)` draws them) for the rest."""
    given = dict(inputs or {})
    names = [n for n, _ in cascade.inputs()]
    unknown = [n for n in given if n not in names]
    if unknown:
        raise ExecutionError(
            f"unknown input {unknown[0]} (cascade @{cascade.cascade_name} takes "
            f"{', '.join(names) or 'no inputs'})"
        )
    store = {n: _checked_input(cascade, n, a, sizes) for n, a in given.items()}
    store.update(_draw_inputs(cascade, sizes, seed, {n for n in names if n not in given}))
    return store


def run_cascade(
    target: ModuleOp | CascadeOp,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    ranks: Mapping[str, int] | None = None,
    seed: int = 0,
    cascade: str | None = None,
) -> dict[str, np.ndarray]:
    """Run a cascade; returns its outputs by name, each of its element type.

    `inputs` holds arrays by input name; missing ones are drawn as `random_inputs(seed)`
    would draw them. `ranks` overrides declared rank sizes for this run only.
    """
    op = find_cascade(target, cascade)
    sizes = rank_sizes(op, ranks)
    check_fits_in_memory(op, sizes)
    store = prepared_inputs(op, inputs, sizes, seed)
    ops = compute_ops(op)
    layout = Layout(sizes, {e.tensor_name: it for e in ops if (it := iterative_rank_name(e))})
    with np.errstate(all="ignore"):
        for group in execution_order(ops):
            run_group(group, layout, store)
    outputs: dict[str, np.ndarray] = {}
    for name, value in zip(op.output_names(), op.return_op().values, strict=True):
        assert isinstance(value.type, TensorType)
        kind = numeric_type(value.type.element_type)
        outputs[name] = np.array(store[name], dtype=kind.dtype, copy=True)
    return outputs
