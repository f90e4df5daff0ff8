"""`pass-fusion{rank=M tile=256}`: the whole recipe that turns 3-pass attention into 1 pass.

1. pick the rank (the one needing the most passes unless `rank` is given);
2. split it into tiles of `tile` (default 256, FuseMax's M0) when it can be split; when the
   default tile does not fit (the rank is an output rank, or the tile does not divide it) the
   rank stays whole and the merges below produce the per-element online forms;
3. merge max/sum pairs, mean/variance pairs, then normalised numerators over that rank;
4. clean up.
Each step is the same function its own pass runs; a remark says when passes remain.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.transforms.cleanup import cleanup
from einsum_opt.transforms.count_passes import count_passes
from einsum_opt.transforms.fuse_max_sum import fuse_max_sum
from einsum_opt.transforms.fuse_mean_variance import fuse_mean_variance
from einsum_opt.transforms.fuse_numerator import fuse_numerator, why_not
from einsum_opt.transforms.rewriting import remark
from einsum_opt.transforms.split_rank import SplitError, split_names, split_rank

DEFAULT_TILE = 256
"""FuseMax's key tile (M0): the side of its 2D array."""


def busiest_rank(cascade: CascadeOp) -> tuple[str, int] | None:
    """The rank with the most passes (first declared on ties), with its count."""
    counts = count_passes(cascade)
    if not counts:
        return None
    best = max(counts.values())
    return next((r, n) for r, n in counts.items() if n == best)


def pass_fusion(
    cascade: CascadeOp,
    rank: str | None = None,
    tile: int | None = None,
    report: bool = True,
) -> dict[str, int]:
    """Run the recipe on one cascade; returns its pass counts afterwards."""
    where = f"pass-fusion: @{cascade.cascade_name}"
    if rank is None:
        busiest = busiest_rank(cascade)
        if busiest is None or busiest[1] <= 1:
            if report:
                remark(f"{where}: every rank already needs 1 pass; nothing to fuse")
            return count_passes(cascade)
        rank = busiest[0]
    elif rank not in cascade.ranks.names:
        raise PassFailedException(f"{where}: rank {rank} is not declared")
    try:
        split_rank(cascade, rank, tile or DEFAULT_TILE)
    except SplitError as e:
        if tile is not None:
            raise PassFailedException(f"pass-fusion: {e}") from None
        if report:
            remark(f"{where}: keeping rank {rank} whole ({e})")
    fuse_max_sum(cascade, rank)
    fuse_mean_variance(cascade, rank)
    fuse_numerator(cascade, rank)
    cleanup(cascade)
    counts = count_passes(cascade)
    outer = split_names(rank)[0] if split_names(rank)[0] in counts else rank
    if report and counts.get(outer, 1) > 1:
        remark(f"{where}: {counts[outer]} passes over {outer} remain: {why_not(cascade)}")
    return counts


@dataclass(frozen=True)
class PassFusionPass(ModulePass):
    """Split, merge max/sum, mean/variance and numerators, clean up: fewest passes over a rank."""

    name = "pass-fusion"
    rank: str | None = None
    tile: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            pass_fusion(cascade, self.rank, self.tile)
