"""Products, quotients and shifted exponentials in resolved expressions.

The merges look at a value as a product: `SN / SD * V` is the numerator factors [SN, V] over the
denominator factors [SD]; a factor read from an elementwise Einsum may be expanded into that
Einsum's own factors. An exponential shifted by a value, `exp(Y - M)` (also scaled,
`exp((Y - M) * c)` or `exp(c * (Y - M))` for a positive scalar c), is a `Shift`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from einsum_opt.dialects.einsum_syntax import Const, Size
from einsum_opt.transforms.rewriting import RCall, Read, Tree, call, product_of, reads_in


@dataclass
class Factors:
    """A value as numerator factors over denominator factors."""

    numerator: list[Tree] = field(default_factory=list)
    denominator: list[Tree] = field(default_factory=list)

    def value(self) -> Tree:
        """The quotient of the factors as one expression (numerators first)."""
        top = product_of(self.numerator) if self.numerator else Const(1.0)
        return call("div", top, product_of(self.denominator)) if self.denominator else top


Expander = Callable[[Read], Tree | None]
"""Gives the value to look into for a factor read (or None to keep the read as a factor)."""


def factors_of(tree: Tree, expand: Expander | None = None) -> Factors:
    """`tree` flattened into factors through `*` and `/`, expanding reads with `expand`."""
    out = Factors()

    def go(t: Tree, upper: bool) -> None:
        if isinstance(t, RCall) and t.fn == "mul":
            for a in t.args:
                go(a, upper)
            return
        if isinstance(t, RCall) and t.fn == "div":
            go(t.args[0], upper)
            go(t.args[1], not upper)
            return
        if isinstance(t, Read) and expand is not None:
            inner = expand(t)
            if inner is not None:
                go(inner, upper)
                return
        if not (isinstance(t, Const) and t.value == 1):
            (out.numerator if upper else out.denominator).append(t)

    go(tree, True)
    return out


def is_scalar(tree: Tree) -> bool:
    """Whether `tree` reads no tensor (numbers and rank sizes only)."""
    return not reads_in(tree)


def is_positive_scalar(tree: Tree) -> bool:
    """Whether `tree` is a scalar known to be positive (positive numbers, rank sizes, and
    products, quotients, square roots and exponentials of them)."""
    if isinstance(tree, Const):
        return tree.value > 0
    if isinstance(tree, Size):
        return True
    if isinstance(tree, RCall):
        if tree.fn in ("mul", "div"):
            return all(is_positive_scalar(a) for a in tree.args)
        if tree.fn == "sqrt":
            return is_positive_scalar(tree.args[0])
        if tree.fn == "exp":
            return is_scalar(tree.args[0])
    return False


@dataclass(frozen=True)
class Shift:
    """`exp((value - by) * scale)`; `scale` None means 1."""

    value: Tree
    by: Tree
    scale: Tree | None = None

    def tree(self) -> Tree:
        """The shifted exponential as an expression."""
        return shifted(self.value, self.by, self.scale)


def shifted(value: Tree, by: Tree, scale: Tree | None = None) -> Tree:
    """`exp(value - by)`, or `exp((value - by) * scale)`."""
    diff = call("sub", value, by)
    return call("exp", diff if scale is None else call("mul", diff, scale))


def shift_of(tree: Tree) -> Shift | None:
    """The parts of `exp(Y - M)`, `exp((Y - M) * c)`, `exp(c * (Y - M))` or `exp((Y - M) / c)`
    with c a positive scalar; None for anything else."""
    if not (isinstance(tree, RCall) and tree.fn == "exp"):
        return None
    arg = tree.args[0]
    diff, scale = arg, None
    if isinstance(arg, RCall) and arg.fn in ("mul", "div"):
        a, b = arg.args
        if arg.fn == "mul" and is_positive_scalar(a) and _is_difference(b):
            diff, scale = b, a
        elif _is_difference(a) and is_positive_scalar(b):
            diff, scale = a, (b if arg.fn == "mul" else call("div", Const(1.0), b))
    if not isinstance(diff, RCall) or diff.fn != "sub":
        return None
    return Shift(diff.args[0], diff.args[1], scale)


def _is_difference(tree: Tree) -> bool:
    return isinstance(tree, RCall) and tree.fn == "sub"


def without(items: Sequence[Tree], index: int) -> list[Tree]:
    """`items` without the one at `index`."""
    return [t for i, t in enumerate(items) if i != index]
