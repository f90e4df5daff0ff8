"""The cost model's acceptance criteria, on cascades compiled through the whole pipeline.

Every number here comes out of the cost model run on IR that `pass-fusion`, `map-fusemax`,
`lower-to-loopnest` and `lower-to-dataflow` produced from `examples/attention/mha.einsum`;
the expected values are computed by hand from the reference (`shared/reference/fusemax.md` §4).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reference_composition import reference_cycles

from einsum_opt import api
from einsum_opt.costmodel.report import CostReport
from einsum_opt.hardware.architecture import Architecture, load_architecture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BERT_64K = {"B": 64, "H": 12, "E": 64, "F": 64, "M": 65536, "P": 65536}


def compiled_cost(
    sizes: dict[str, int], arch: Architecture, tmp: Path, tile: int = 256, extra: str = ""
) -> CostReport:
    """Multi-head attention fused, mapped for `arch`'s array side, lowered, and costed."""
    path = tmp / f"{arch.name.replace(' ', '_').replace('(', '').replace(')', '')}.yaml"
    path.write_text(arch.to_yaml())
    glb = arch.level("GLB").capacity_bytes
    module = api.load(EXAMPLES / "attention" / "mha.einsum")
    api.set_rank_sizes(module, sizes)
    api.apply(
        module,
        f"pass-fusion{{rank=M tile={tile}}},map-fusemax{{tile={tile} buffer={glb}}}{extra},"
        f'lower-to-loopnest,lower-to-dataflow{{arch="{path}"}}',
    )
    return api.cost(module, arch)


@pytest.fixture(scope="module")
def fusemax() -> Architecture:
    """The built-in FuseMax architecture."""
    return load_architecture("fusemax")


@pytest.fixture(scope="module")
def bert(fusemax: Architecture, tmp_path_factory: pytest.TempPathFactory) -> CostReport:
    """BERT attention at 64K tokens on FuseMax."""
    return compiled_cost(BERT_64K, fusemax, tmp_path_factory.mktemp("bert"))


def test_bert_64k_matches_the_reference_composition(bert: CostReport) -> None:
    """Latency within 10% of §4's composition; the 2D array >= 97% busy, the 1D array ~100%."""
    expected = reference_cycles(BERT_64K)
    assert abs(bert.cycles - expected) / expected < 0.10
    assert bert.utilization["pe2d"] >= 0.97
    assert bert.utilization["pe1d"] == pytest.approx(1.0, abs=0.01)
    assert not bert.buffer_overflow
    assert bert.compute_cycles > bert.memory_cycles  # compute-bound, as in the paper


def test_halving_the_array_side_quadruples_compute_time(
    fusemax: Architecture, bert: CostReport, tmp_path: Path
) -> None:
    """A 128x128 2D array and a 128-PE 1D array, mapped with 128-wide tiles: 4x the cycles."""
    small = fusemax.with_changes({"units.pe2d.shape": [128, 128], "units.pe1d.shape": [128]})
    half = compiled_cost(BERT_64K, small, tmp_path, tile=128)
    assert half.compute_cycles / bert.compute_cycles == pytest.approx(4.0, rel=0.02)


def test_tiny_bandwidth_makes_latency_traffic_over_bandwidth(
    fusemax: Architecture, tmp_path: Path
) -> None:
    """At 1 MB/s DRAM traffic dominates: latency = DRAM bytes / bandwidth."""
    sizes = {**BERT_64K, "B": 1, "H": 1, "M": 4096, "P": 4096}
    slow = fusemax.with_changes({"storage.DRAM.bandwidth_bytes_per_s": 2**20})
    report = compiled_cost(sizes, slow, tmp_path)
    assert report.memory_cycles > report.compute_cycles
    assert report.latency_s == pytest.approx(report.dram_bytes / 2**20, rel=1e-6)
    assert report.utilization["pe2d"] < 0.01


def test_a_buffer_too_small_for_the_chosen_p1_is_reported(
    fusemax: Architecture, tmp_path: Path
) -> None:
    """Map for a 16 MB buffer (P1 chosen for it), cost on a 1 MB one: an overflow with spills."""
    sizes = {**BERT_64K, "B": 1, "H": 1}
    module = api.load(EXAMPLES / "attention" / "mha.einsum")
    api.set_rank_sizes(module, sizes)
    small = fusemax.with_changes({"storage.GLB.capacity_bytes": 2**20})
    path = tmp_path / "small_glb.yaml"
    path.write_text(small.to_yaml())
    api.apply(
        module,
        "pass-fusion{rank=M tile=256},map-fusemax,lower-to-loopnest,"
        f'lower-to-dataflow{{arch="{path}"}}',
    )
    report = api.cost(module, small)
    assert report.buffer_overflow
    assert report.buffer_peak_bytes["GLB"] > 2**20
    assert report.spill_bytes.get("GLB", 0) > 0


def test_loop_order_changes_traffic_and_latency_when_memory_bound(tmp_path: Path) -> None:
    """reorder-loops putting P1 outside M1 for QK re-reads every key tile per query block: more
    DRAM traffic; where memory becomes the bound (a bandwidth at which the FuseMax order still
    leaves 20% headroom), a longer latency too."""
    edge = load_architecture("edge")
    sizes = {**BERT_64K, "B": 1, "H": 1, "M": 8192, "P": 8192}
    order = ",reorder-loops{einsum=QK order=B,H,P2,P1,M1,E,P0,M0}"
    base = compiled_cost(sizes, edge, tmp_path, tile=32)
    reordered = compiled_cost(sizes, edge, tmp_path, tile=32, extra=order)
    assert reordered.dram_bytes > 1.2 * base.dram_bytes
    assert reordered.compute_cycles == base.compute_cycles  # the same work, in another order
    bandwidth = edge.level("DRAM").bandwidth_bytes_per_s
    assert bandwidth is not None
    tight = edge.with_changes(
        {
            "storage.DRAM.bandwidth_bytes_per_s": bandwidth
            * base.memory_cycles
            / (0.8 * base.compute_cycles)
        }
    )
    base = compiled_cost(sizes, tight, tmp_path, tile=32)
    reordered = compiled_cost(sizes, tight, tmp_path, tile=32, extra=order)
    assert base.cycles == pytest.approx(base.compute_cycles, abs=1)  # still compute-bound
    assert reordered.cycles > 1.1 * base.cycles  # now bound by the extra traffic
