"""The guard that keeps an online softmax right on masked inputs.

A running max that starts at -inf stays -inf while every value seen so far is -inf (a masked
tile, a masked first key), and shifting by it computes exp(-inf - (-inf)) = NaN. FlashAttention
guards this with a check on the running max. The rewrites here start the running max at L, the
lowest finite value of the element type, instead: every finite value is >= L, so the running
max equals the true one as soon as any finite value was seen, and while everything seen is -inf
it is L, so exp(-inf - L) = 0 and the correction exp(L - L) = 1 leave the (zero) sums at zero.
The guard costs no operation. Only a row with no finite value at all (fully masked) ends with
the running max L instead of -inf; `exact_max` recovers -inf there for the Einsums that read
the max itself.
"""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects.builtin import BFloat16Type, Float16Type, Float32Type, Float64Type
from xdsl.ir import Attribute

from einsum_opt.dialects.einsum_syntax import Const
from einsum_opt.transforms.rewriting import Read, Tree, call

BFLOAT16_MAX = float(np.float32(3.3895313892515355e38))
"""The largest finite bfloat16 value, (2 - 2**-7) * 2**127."""

_LOWEST: dict[type[Attribute], float] = {
    Float16Type: float(np.finfo(np.float16).min),
    BFloat16Type: -BFLOAT16_MAX,
    Float32Type: float(np.finfo(np.float32).min),
    Float64Type: float(np.finfo(np.float64).min),
}


def running_max_init(element_type: Attribute) -> float:
    """The initial value of a running max: the lowest finite value of a float type (-inf for
    other types)."""
    return _LOWEST.get(type(element_type), -math.inf)


def exact_max(final_max: Read, final_sum: Read) -> Tree:
    """The true max from the final running max M and running sum D of exp(y - M):
    `M + log(min(D, 1))`. D >= 1 wherever a value is finite (the maximum itself contributes
    exp(0) = 1, and the corrections of later tiles are exp(0) = 1), so this is M exactly;
    on a fully masked row D = 0 and it is -inf, as a max of -inf values is."""
    return call("add", final_max, call("log", call("min", final_sum, Const(1.0))))


def faithful_sum(final_sum: Read) -> Tree:
    """The final running sum D as the input cascade computes the sum of exp(y - max):
    `D / min(D, 1)`, which is D wherever a value is finite and NaN (0 / 0) on a fully masked
    row, where the input's exp(-inf - (-inf)) is NaN."""
    return call("div", final_sum, call("min", final_sum, Const(1.0)))
