"""The workloads of the FuseMax evaluation (`shared/reference/fusemax.md` §4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Model:
    """One transformer layer's shape: model width, heads, per-head embedding (E = F), FFN
    hidden width and batch."""

    name: str
    d_model: int
    heads: int
    head_dim: int
    ffn: int
    batch: int = 64


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
