"""`pass-fusion{rank=M tile=256}`: the whole recipe that turns 3-pass attention into 1 pass.

1. pick the rank (the one needing the most passes unless `rank` is given; without `rank`, the
   recipe then goes on with the next busiest rank not tried yet, until every rank left needs
   one pass or was tried: two softmaxes over different ranks are both fused);
2. split it into tiles of `tile`; without `tile`, the tile is the largest divisor of the rank
   that is at most 256 (FuseMax's M0; M = 384 gets tiles of 192), and a rank without a divisor
   between 2 and 256 stays whole, with a remark. An explicit tile that cannot be used is an
   error;
3. canonicalise (`cleanup`), then merge max/sum pairs, mean/variance pairs and numerators over
   that rank;
4. clean up.
The recipe runs on a copy of the cascade, first with the split and then (without an explicit
tile) without it, and keeps the first result in which a merge fired. When no merge fires, the
cascade comes back unchanged (unsplit) with a remark naming what blocks the merges; a remark
also says why passes remain when more than one does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from einsum_opt.dialects.einsum import CascadeOp, cascades_in
from einsum_opt.dialects.locations import OpPassFailedException, clone_located
from einsum_opt.transforms.cleanup import cleanup
from einsum_opt.transforms.count_passes import count_passes
from einsum_opt.transforms.fuse_max_sum import fuse_max_sum
from einsum_opt.transforms.fuse_mean_variance import fuse_mean_variance
from einsum_opt.transforms.fuse_numerator import fuse_numerator
from einsum_opt.transforms.fusion_remarks import minimum_passes, remaining_reason
from einsum_opt.transforms.rewriting import invalidate_analyses, parent_rank, remark
from einsum_opt.transforms.split_rank import SplitError, split_rank

DEFAULT_TILE = 256
"""FuseMax's key tile (M0): the side of its 2D array; the largest default tile."""


def default_tile(size: int) -> int | None:
    """The largest divisor of `size` that is at most `DEFAULT_TILE`; None when that is 1."""
    best = max(d for d in range(1, min(size, DEFAULT_TILE) + 1) if size % d == 0)
    return best if best > 1 else None


def busiest_rank(cascade: CascadeOp, skip: Collection[str] = ()) -> tuple[str, int] | None:
    """The rank with the most passes (first declared on ties; ranks in `skip` left out), with
    its count. The levels of a split rank count as the rank itself: the passes over its tiles
    (R1) are the rank's, and those within a tile (R0) are not passes over the input."""
    counts: dict[str, int] = {}
    inner = {size[1] for _, size in cascade.ranks.data if isinstance(size, tuple)}
    for rank, n in count_passes(cascade).items():
        if rank not in inner and parent_rank(cascade, rank) not in skip:
            whole = parent_rank(cascade, rank)
            counts[whole] = max(counts.get(whole, 0), n)
    if not counts:
        return None
    best = max(counts.values())
    return next((r, n) for r, n in counts.items() if n == best)


def adopt(cascade: CascadeOp, trial: CascadeOp) -> None:
    """Give `cascade` the body and rank table of `trial` (a rewritten clone of it)."""
    block = trial.body.detach_block(0)
    old = cascade.body.detach_block(0)
    cascade.body.add_block(block)
    cascade.ranks = trial.ranks
    for op in reversed(list(old.ops)):
        op.detach()
        op.erase(safe_erase=False)
    invalidate_analyses(cascade)


def merge_over(cascade: CascadeOp, rank: str) -> int:
    """Canonicalise, run the three merges over `rank`, clean up; returns how many fired."""
    cleanup(cascade)
    merged = fuse_max_sum(cascade, rank)
    merged += fuse_mean_variance(cascade, rank)
    merged += fuse_numerator(cascade, rank)
    cleanup(cascade)
    return merged


def _tiles(
    cascade: CascadeOp, rank: str, tile: int | None, where: str, report: bool
) -> list[int | None]:
    """The tiles to try, in order (None: the rank kept whole)."""
    if tile is not None:
        return [tile]
    size = cascade.rank_sizes()[rank]
    chosen = default_tile(size)
    if chosen is None:
        if report:
            remark(
                f"{where}: keeping rank {rank} whole: its size {size} has no divisor between 2 "
                f"and {DEFAULT_TILE} to tile it with"
            )
        return [None]
    return [chosen, None]


def pass_fusion(
    cascade: CascadeOp,
    rank: str | None = None,
    tile: int | None = None,
    report: bool = True,
) -> dict[str, int]:
    """Run the recipe on one cascade; returns its pass counts afterwards."""
    where = f"pass-fusion: @{cascade.cascade_name}"
    if rank is not None:
        if rank not in cascade.ranks.names:
            raise OpPassFailedException(cascade, f"{where}: rank {rank} is not declared")
        return fuse_rank(cascade, rank, tile, report)
    tried: set[str] = set()
    while (busiest := busiest_rank(cascade, tried)) is not None and busiest[1] > 1:
        tried.add(busiest[0])
        fuse_rank(cascade, busiest[0], tile, report)
    if not tried and report:
        remark(f"{where}: every rank already needs 1 pass; nothing to fuse")
    return count_passes(cascade)


def fuse_rank(
    cascade: CascadeOp, rank: str, tile: int | None = None, report: bool = True
) -> dict[str, int]:
    """The recipe over one rank; returns the pass counts afterwards."""
    where = f"pass-fusion: @{cascade.cascade_name}"
    level: str | None = None
    for t in _tiles(cascade, rank, tile, where, report):
        trial = clone_located(cascade)
        levels = None
        if t is not None:
            try:
                levels = split_rank(trial, rank, t)
            except SplitError as e:
                if tile is not None:
                    raise OpPassFailedException(e.op, f"pass-fusion: {e}") from None
                if report:
                    remark(f"{where}: keeping rank {rank} whole ({e})")
                continue
        if merge_over(trial, rank):
            adopt(cascade, trial)
            level = levels[0] if levels else rank
            break
    counts = count_passes(cascade)
    if report:
        n = counts.get(level or rank, 1)
        if level is None:
            state = f"nothing merges over {rank}; the cascade is unchanged"
            remark(f"{where}: {state} ({_passes_remark(cascade, rank, rank, n)})")
        elif n > 1:
            remark(f"{where}: {_passes_remark(cascade, rank, level, n)}")
    return counts


def _passes_remark(cascade: CascadeOp, rank: str, level: str, n: int) -> str:
    """`N passes over R remain (the minimum): why`."""
    if n <= 1:
        return f"{level} already needs 1 pass"
    least = minimum_passes(cascade, rank)
    verdict = "the minimum" if n == least else f"the minimum is {least}"
    return f"{n} passes over {level} remain, {verdict}: {remaining_reason(cascade, rank, level)}"


@dataclass(frozen=True)
class PassFusionPass(ModulePass):
    """Split, merge max/sum, mean/variance and numerators, clean up: fewest passes over a rank."""

    name = "pass-fusion"
    rank: str | None = None
    tile: int | None = None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for cascade in cascades_in(op):
            pass_fusion(cascade, self.rank, self.tile)
