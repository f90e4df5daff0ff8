"""The workloads of the FuseMax evaluation (`shared/reference/fusemax.md` §4), and how names
and lengths are read: `"BERT"`, `"1K"`, `"fusemax"`, as the command line and `run_sweep` take
them."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    """One transformer layer's shape: model width, heads, per-head embedding of the queries
    and keys (E) and of the values (F, the same as E unless given), FFN hidden width and
    batch."""

    name: str
    d_model: int
    heads: int
    head_dim: int
    ffn: int
    batch: int = 64
    value_dim: int | None = None

    @property
    def e(self) -> int:
        """E: the per-head embedding of queries and keys."""
        return self.head_dim

    @property
    def f(self) -> int:
        """F: the per-head embedding of the values."""
        return self.head_dim if self.value_dim is None else self.value_dim


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("BERT", 768, 12, 64, 3072),
        Model("TrXL", 1024, 16, 64, 4096),
        Model("T5", 512, 8, 64, 2048),
        Model("XLM", 2048, 16, 128, 8192),
    )
}
"""The reference models by name, in the paper's order."""

SEQ_LENGTHS: tuple[int, ...] = (1024, 4096, 16384, 65536, 262144, 1048576)
"""Sequence lengths (M = P) of the sweep: 1K to 1M tokens, 1K = 1024."""

CONFIGS: tuple[str, ...] = ("unfused", "flat", "cascade", "architecture", "fusemax")
"""The configurations, from the unfused baseline through the ablation steps to FuseMax: what
a sweep runs unless asked for others."""

ALL_CONFIGS: tuple[str, ...] = (*CONFIGS, "searched")
"""Every configuration: also `searched`, the 1-pass cascade mapped by map-search on FuseMax's
architecture (a search per point, about 20 s each)."""

_LENGTH = re.compile(r"([+-]?\d+)([KM]?)", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024 * 1024}


def model_named(name: str) -> Model:
    """The built-in model called `name` (any case); ValueError listing them otherwise."""
    for canonical, model in MODELS.items():
        if canonical.lower() == name.strip().lower():
            return model
    raise ValueError(f"unknown model '{name}' (choose from {', '.join(MODELS)})")


def config_named(name: str) -> str:
    """The configuration called `name` (any case); ValueError listing them otherwise."""
    for config in ALL_CONFIGS:
        if config == name.strip().lower():
            return config
    raise ValueError(f"unknown configuration '{name}' (choose from {', '.join(ALL_CONFIGS)})")


def parse_length(text: str) -> int:
    """`4K` -> 4096, `1M` -> 1048576, `3000` -> 3000; ValueError unless a positive length."""
    match = _LENGTH.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"'{text}' is not a length (an integer, optionally followed by K = 1024 or "
            "M = 1024*1024, e.g. 4K)"
        )
    tokens = int(match[1]) * _UNITS[match[2].upper()]
    if tokens <= 0:
        raise ValueError(f"length '{text}' is not positive")
    return tokens


def as_model(model: Model | str) -> Model:
    """`model`, or the built-in model it names."""
    return model if isinstance(model, Model) else model_named(model)


def as_length(length: int | str) -> int:
    """`length`, or the length a string such as `"64K"` says (positive either way)."""
    if isinstance(length, str):
        return parse_length(length)
    if isinstance(length, bool) or length <= 0:
        raise ValueError(f"length {length!r} is not a positive integer")
    return length


def format_length(tokens: int) -> str:
    """`1K`, `64K`, `1M` for multiples of 1024 and 1024*1024; the number otherwise."""
    for suffix, unit in (("M", 1024 * 1024), ("K", 1024)):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)
