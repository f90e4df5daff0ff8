"""einsum_opt.transforms: one pass per file, registered lazily by name."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.passes import ModulePass


def _apply_mapping() -> type[ModulePass]:
    from einsum_opt.transforms.apply_mapping import ApplyMappingPass

    return ApplyMappingPass


def _set_ranks() -> type[ModulePass]:
    from einsum_opt.transforms.set_ranks import SetRanksPass

    return SetRanksPass


def _count_passes() -> type[ModulePass]:
    from einsum_opt.transforms.count_passes import CountPassesPass

    return CountPassesPass


def _split_rank() -> type[ModulePass]:
    from einsum_opt.transforms.split_rank import SplitRankPass

    return SplitRankPass


def _fuse_max_sum() -> type[ModulePass]:
    from einsum_opt.transforms.fuse_max_sum import FuseMaxSumPass

    return FuseMaxSumPass


def _fuse_numerator() -> type[ModulePass]:
    from einsum_opt.transforms.fuse_numerator import FuseNumeratorPass

    return FuseNumeratorPass


def _fuse_mean_variance() -> type[ModulePass]:
    from einsum_opt.transforms.fuse_mean_variance import FuseMeanVariancePass

    return FuseMeanVariancePass


def _cleanup() -> type[ModulePass]:
    from einsum_opt.transforms.cleanup import CleanupPass

    return CleanupPass


def _pass_fusion() -> type[ModulePass]:
    from einsum_opt.transforms.pass_fusion import PassFusionPass

    return PassFusionPass


def _lower_to_loopnest() -> type[ModulePass]:
    from einsum_opt.lowering.einsum_to_loopnest import LowerToLoopnestPass

    return LowerToLoopnestPass


def _lower_to_dataflow() -> type[ModulePass]:
    from einsum_opt.lowering.loopnest_to_dataflow import LowerToDataflowPass

    return LowerToDataflowPass


def _linalg_to_einsum() -> type[ModulePass]:
    from einsum_opt.transforms.linalg_to_einsum import LinalgToEinsumPass

    return LinalgToEinsumPass


def _lower_to_linalg() -> type[ModulePass]:
    from einsum_opt.lowering.einsum_to_linalg import LowerToLinalgPass

    return LowerToLinalgPass


def _reorder_loops() -> type[ModulePass]:
    from einsum_opt.transforms.reorder_loops import ReorderLoopsPass

    return ReorderLoopsPass


def _map_fusemax() -> type[ModulePass]:
    from einsum_opt.transforms.map_fusemax import MapFuseMaxPass

    return MapFuseMaxPass


def _map_unfused() -> type[ModulePass]:
    from einsum_opt.transforms.map_baselines import MapUnfusedPass

    return MapUnfusedPass


def _map_flat() -> type[ModulePass]:
    from einsum_opt.transforms.map_baselines import MapFlatPass

    return MapFlatPass


def _map_search() -> type[ModulePass]:
    from einsum_opt.transforms.map_search.map_search_pass import MapSearchPass

    return MapSearchPass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Pass name -> factory returning the pass class (imported only when used)."""
    return {
        "apply-mapping": _apply_mapping,
        "cleanup": _cleanup,
        "count-passes": _count_passes,
        "fuse-max-sum": _fuse_max_sum,
        "fuse-mean-variance": _fuse_mean_variance,
        "fuse-numerator": _fuse_numerator,
        "linalg-to-einsum": _linalg_to_einsum,
        "lower-to-dataflow": _lower_to_dataflow,
        "lower-to-linalg": _lower_to_linalg,
        "lower-to-loopnest": _lower_to_loopnest,
        "map-flat": _map_flat,
        "map-fusemax": _map_fusemax,
        "map-search": _map_search,
        "map-unfused": _map_unfused,
        "pass-fusion": _pass_fusion,
        "reorder-loops": _reorder_loops,
        "set-ranks": _set_ranks,
        "split-rank": _split_rank,
    }
