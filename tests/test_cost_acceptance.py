"""The cost model's acceptance criteria, on cascades compiled through the whole pipeline.

Every number here comes out of the cost model run on IR that `pass-fusion`, `map-fusemax`,
`lower-to-loopnest` and `lower-to-dataflow` produced from `examples/attention/mha.einsum`;
the expected values are computed by hand: latency from the reference's composition
(`shared/reference/fusemax.md` §4) and from the pipeline's own initiation interval, the
accesses and energy per score from the FuseMax artifact's counts
(`shared/reference/fusemax-energy.md` §3), as exact fractions where they are counts.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from reference_composition import reference_cycles

from einsum_opt import api
from einsum_opt.costmodel.report import CostReport
from einsum_opt.hardware import Architecture, load_architecture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BERT = {"B": 64, "H": 12, "E": 64, "F": 64}
BERT_64K = {**BERT, "M": 65536, "P": 65536}

# FuseMax's per-action energies (pJ), reference/fusemax-energy.md §2.
MAC, ADD, MAX, DIV = 17.1645, 8.3395, 0.028036, 36.251153
DRAM_PJ = 249.6  # per 64-bit access (4 words)
GLB_READ, GLB_WRITE = 12512.7, 15751.4  # per 256-word row, 16 MB
RF_READ, RF_WRITE = 2.194455, 1.906455
REG_READ, REG_WRITE = 0.653, 0.570


def fuse(tile: int = 256) -> str:
    """pass-fusion over the keys in tiles of `tile` (the 2D array's side)."""
    return f"pass-fusion{{rank=M tile={tile}}}"


def compiled(
    sizes: dict[str, int],
    arch: Architecture,
    tmp: Path,
    extra: str = "",
    overlap: bool = True,
    tile: int = 256,
) -> api.ModuleOp:
    """Multi-head attention fused in key tiles of `tile`, mapped for `arch` (query tile,
    buffer and arrays read from it), and lowered for it."""
    path = tmp / f"{arch.name}.yaml"
    path.write_text(arch.to_yaml())
    module = api.load(EXAMPLES / "attention" / "mha.einsum")
    api.set_rank_sizes(module, sizes)
    return api.apply(
        module,
        f'{fuse(tile)},map-fusemax{{arch="{path}"}}{extra},lower-to-loopnest,'
        f'lower-to-dataflow{{arch="{path}" overlap={str(overlap).lower()}}}',
    )


def compiled_cost(
    sizes: dict[str, int],
    arch: Architecture,
    tmp: Path,
    extra: str = "",
    accounting: str = "physical",
    tile: int = 256,
) -> CostReport:
    return api.cost(compiled(sizes, arch, tmp, extra, tile=tile), arch, accounting)


@pytest.fixture(scope="module")
def fusemax() -> Architecture:
    """The built-in FuseMax architecture."""
    return load_architecture("fusemax")


@pytest.fixture(scope="module")
def bert(fusemax: Architecture, tmp_path_factory: pytest.TempPathFactory) -> CostReport:
    """BERT attention at 64K tokens on FuseMax (the artifact's accounting)."""
    return compiled_cost(BERT_64K, fusemax, tmp_path_factory.mktemp("bert"), accounting="artifact")


def test_bert_64k_latency_by_hand(bert: CostReport) -> None:
    """B x H x P2 = 1536 repetitions of a pipeline of M1 x P1 = 32768 iterations. The 1D array
    is the bottleneck: RM 1 + PRM 7 + SPD 1 + RD 1 + SPNV 64 + RNV 64 cycles per iteration,
    plus AV's 64 once per query block (128 of the 32768 iterations): II = 138.25. The last
    iteration ends after QK 64, LM 1, RM 1, PRM 7, SPNV 64, RNV 64, AV 64 = 265. Within 0.01%
    of §4's composition."""
    assert bert.cycles == 1536 * (Fraction(553, 4) * 32767 + 265) == 6_958_545_024
    expected = reference_cycles(BERT_64K)
    assert abs(bert.cycles - expected) / expected < 1e-4
    assert bert.bound == "compute"
    assert bert.compute_cycles > bert.memory_cycles


def test_bert_64k_utilisation(bert: CostReport) -> None:
    """The 2D array is busy 64 + 1 + 7 + 1 + 64 = 137 of every 138.25 cycles; the 1D array
    all but the pipeline's fill."""
    assert bert.utilization["pe2d"] == pytest.approx(1536 * 32768 * 137 / bert.cycles, rel=1e-12)
    assert round(bert.utilization["pe2d"], 3) == 0.991
    assert round(bert.utilization["pe1d"], 3) == 1.0
    assert not bert.buffer_overflow


def fusemax_per_score(n: int, p1: int) -> dict[str, Fraction]:
    """The FuseMax artifact's counts per score (reference/fusemax-energy.md §3), in words, at
    M = P = n with query blocks of p1 tiles, E = F = 64. Loops: B, H, P2, M1 at DRAM; P1 and
    E | F at the buffer; P0 and M0 spatial."""
    e = f = 64
    m = p = n
    m0 = p0 = 256
    m1, p2 = m // m0, p // (p1 * p0)
    dram = Fraction(e, m) + 2 * Fraction(e * p2, p) + Fraction(f, m)  # Q; K, V per P2; AV
    glb_reads = (
        3 * Fraction(e, 256)  # Q, K and V streamed into the 2D array
        + (3 - Fraction(1, m1)) / m0  # RM: by itself (not at the first step), SLN and PRM
        + Fraction(1, m0)
        + Fraction(1, m)  # RD: by SPD, and its final value by AV
        + Fraction(f, m0)
        + Fraction(f, m)  # RNV: by SPNV, and its final value by AV
    )
    glb_writes = (
        Fraction(e, m)
        + 2 * Fraction(e * p2, p)  # fills of Q, K and V
        + 2 * Fraction(1, m0)
        + Fraction(f, m0)  # updates of RM, RD, RNV
    )
    rf = 2 * Fraction(1, m0) + Fraction(f, m0)  # LM, SLD, SLNV: written and read once
    return {"dram": dram, "glb_reads": glb_reads, "glb_writes": glb_writes, "rf": rf}


def fusemax_energy_per_score(n: int, counts: dict[str, Fraction]) -> float:
    """pJ per score at M = n, without the PE registers: 2D (E + 6 + F) MAC, 2 add, 1 max; 1D
    per key tile of 256 (6 + 1 + F) MAC, (1 + 1 + F) add, 1 max; F / M divides (AV); the
    accesses."""
    e = f = 64
    one_d = ((6 + 1 + f) * MAC + (1 + 1 + f) * ADD + MAX) / 256 + f / n * DIV
    compute = (e + 6 + f) * MAC + 2 * ADD + MAX + one_d
    return (
        compute
        + float(counts["glb_reads"]) * GLB_READ / 256
        + float(counts["glb_writes"]) * GLB_WRITE / 256
        + float(counts["rf"]) * (RF_READ + RF_WRITE)
        + float(counts["dram"]) / 4 * DRAM_PJ
    )


def level_words(report: CostReport, level: str) -> tuple[Fraction, Fraction]:
    """(reads, fills + updates) of `level`, summed over its instances and tensors."""
    reads = writes = Fraction(0)
    for access in report.levels.get(level, {}).values():
        reads += access.reads * access.instances
        writes += (access.fills + access.updates) * access.instances
    return reads, writes


def artifact_registers(report: CostReport) -> float:
    """The PE registers as the artifact charges them: one instance per array."""
    return sum(
        float(a.reads) * REG_READ + float(a.fills + a.updates) * REG_WRITE
        for level in ("pe2d.PE", "pe1d.PE")
        for a in report.levels[level].values()
    )


@pytest.mark.parametrize(
    ("n", "p1", "artifact"),
    [(1024, 4, 2422.35), (65536, 128, 2390.60)],
)
def test_fusemax_accesses_and_energy_per_score_by_hand(
    n: int, p1: int, artifact: float, fusemax: Architecture, tmp_path: Path
) -> None:
    """BERT at 1K and 64K (P1 = 4 and 128, reference §3): DRAM bytes, buffer reads and writes
    and RF accesses per score exactly as counted by hand; energy the hand sum (the registers
    charged for one instance each, as the artifact does: about 0.01 pJ per score), within
    0.1% of the reference's reconstruction of the artifact. The model reads RM three times per
    step (RM, SLN, PRM) where the reconstruction counts once: +0.4 pJ per score."""
    report = compiled_cost({**BERT, "M": n, "P": n}, fusemax, tmp_path, accounting="artifact")
    scores = 64 * 12 * n * n
    counts = fusemax_per_score(n, p1)
    assert Fraction(report.dram_bytes, scores) == 2 * counts["dram"]
    assert level_words(report, "GLB") == (
        counts["glb_reads"] * scores,
        counts["glb_writes"] * scores,
    )
    assert level_words(report, "RF") == (counts["rf"] * scores, counts["rf"] * scores)
    registers = report.energy_breakdown_pj["registers"]
    assert registers == pytest.approx(artifact_registers(report), rel=1e-9)
    assert 0 < registers / scores < 0.02
    per_score = report.energy_pj / scores
    assert per_score - registers / scores == pytest.approx(
        fusemax_energy_per_score(n, counts), rel=1e-9
    )
    assert per_score == pytest.approx(artifact, rel=1e-3)
    assert report.energy_breakdown_pj["DRAM"] / scores == pytest.approx(
        float(counts["dram"]) / 4 * DRAM_PJ, rel=1e-9
    )


def test_physical_accounting_charges_every_register_instance(
    bert: CostReport, fusemax: Architecture, tmp_path: Path
) -> None:
    """The default accounting charges every PE's registers: the same counts, 65536 and 256
    instances instead of one; compute, buffer, RF and DRAM energy are unchanged."""
    physical = api.cost(compiled(BERT_64K, fusemax, tmp_path), fusemax)
    assert physical.cycles == bert.cycles and physical.levels == bert.levels
    for key in ("compute", "DRAM", "GLB", "RF"):
        assert physical.energy_breakdown_pj[key] == pytest.approx(bert.energy_breakdown_pj[key])
    expected = sum(
        (float(a.reads) * REG_READ + float(a.fills + a.updates) * REG_WRITE) * a.instances
        for level in ("pe2d.PE", "pe1d.PE")
        for a in physical.levels[level].values()
    )
    assert physical.energy_breakdown_pj["registers"] == pytest.approx(expected, rel=1e-9)
    assert physical.energy_pj > bert.energy_pj


def test_halving_the_array_side_quadruples_compute_time(
    fusemax: Architecture, bert: CostReport, tmp_path: Path
) -> None:
    """A 128x128 2D array and a 128-PE 1D array: map-fusemax takes 128-wide tiles from the
    architecture, and the compute takes 4x the cycles."""
    small = fusemax.with_changes(
        {"name": "small", "units.pe2d.shape": [128, 128], "units.pe1d.shape": [128]}
    )
    half = compiled_cost(BERT_64K, small, tmp_path, tile=128)
    assert half.compute_cycles / bert.compute_cycles == pytest.approx(4.0, rel=0.02)
    assert half.utilization["pe2d"] == pytest.approx(bert.utilization["pe2d"], abs=0.01)


def test_tiny_bandwidth_makes_latency_traffic_over_bandwidth(
    fusemax: Architecture, tmp_path: Path
) -> None:
    """At 1 MB/s DRAM traffic dominates: latency = DRAM bytes / bandwidth."""
    sizes = {**BERT_64K, "B": 1, "H": 1, "M": 4096, "P": 4096}
    slow = fusemax.with_changes({"name": "slow", "storage.DRAM.bandwidth_bytes_per_s": 2**20})
    report = compiled_cost(sizes, slow, tmp_path)
    assert report.memory_cycles > report.compute_cycles
    assert report.bound == "DRAM"
    assert report.latency_s == pytest.approx(report.dram_bytes / 2**20, rel=1e-6)
    assert report.utilization["pe2d"] < 0.01


def test_a_buffer_too_small_for_the_chosen_p1_is_reported(
    fusemax: Architecture, tmp_path: Path
) -> None:
    """Mapped for a 16 MB buffer (P1 chosen for it), lowered and costed for a 1 MB one: an
    overflow of the GLB naming what it holds; the accesses are those of the mapping."""
    sizes = {**BERT_64K, "B": 1, "H": 1}
    module = api.load(EXAMPLES / "attention" / "mha.einsum")
    api.set_rank_sizes(module, sizes)
    small = fusemax.with_changes({"name": "small_glb", "storage.GLB.capacity_bytes": 2**20})
    path = tmp_path / "small_glb.yaml"
    path.write_text(small.to_yaml())
    api.apply(module, f'{fuse()},map-fusemax,lower-to-loopnest,lower-to-dataflow{{arch="{path}"}}')
    report = api.cost(module, small)
    assert report.buffer_overflow
    (overflow,) = report.overflows
    assert overflow.level == "GLB" and overflow.capacity_bytes == 2**20
    assert {"Q", "RNV"} <= set(overflow.tensors)
    assert report.buffer_peak_bytes["GLB"] == overflow.peak_bytes > 2**20
    on_fusemax = compiled_cost(sizes, fusemax, tmp_path)
    assert report.dram_bytes == on_fusemax.dram_bytes


def test_a_serial_pipeline_is_slower_and_does_the_same_work(
    fusemax: Architecture, tmp_path: Path
) -> None:
    """`lower-to-dataflow{overlap=false}` (the ablation's "architecture" step): one tile at a
    time, each waiting for the 2D array to drain; the same accesses and computes."""
    sizes = {**BERT_64K, "B": 1, "H": 1, "M": 4096, "P": 4096}
    overlapped = api.cost(compiled(sizes, fusemax, tmp_path), fusemax)
    serial = api.cost(compiled(sizes, fusemax, tmp_path, overlap=False), fusemax)
    assert serial.cycles > 1.5 * overlapped.cycles
    assert serial.computes == overlapped.computes
    assert serial.levels == overlapped.levels
    assert serial.dram_bytes == overlapped.dram_bytes


def test_loop_order_changes_traffic_and_latency_when_memory_bound(tmp_path: Path) -> None:
    """reorder-loops putting the key tiles M1 outermost for QK fetches Q again for every key
    tile (and K once rather than once per block of P1 x P0 = 1024 queries): more DRAM
    traffic, the same work; where memory becomes the bound (a bandwidth at
    which the FuseMax order still leaves 20% headroom), a longer latency too."""
    edge = load_architecture("edge")
    sizes = {**BERT_64K, "B": 1, "H": 1, "M": 8192, "P": 8192}
    order = ",reorder-loops{einsum=QK order=M1,B,H,P2,P1,E,P0,M0}"
    base = compiled_cost(sizes, edge, tmp_path, tile=32)
    reordered = compiled_cost(sizes, edge, tmp_path, extra=order, tile=32)
    m1, p2 = 8192 // 32, 8192 // 1024
    words = 64 * 8192  # of Q, of K
    q_base, q_reordered = (r.levels["DRAM"]["Q"].reads for r in (base, reordered))
    k_base, k_reordered = (r.levels["DRAM"]["K"].reads for r in (base, reordered))
    assert (q_base, k_base) == (words, p2 * words)
    assert (q_reordered, k_reordered) == (m1 * words, words)
    assert reordered.dram_bytes - base.dram_bytes == 2 * (m1 - p2) * words
    assert reordered.compute_cycles == base.compute_cycles  # the same work, in another order
    assert reordered.computes == base.computes
    assert not base.buffer_overflow and not reordered.buffer_overflow
    seconds = base.compute_cycles / edge.clock_hz
    tight = edge.with_changes(
        {"name": "tight", "storage.DRAM.bandwidth_bytes_per_s": base.dram_bytes / (0.8 * seconds)}
    )
    base = compiled_cost(sizes, tight, tmp_path, tile=32)
    reordered = compiled_cost(sizes, tight, tmp_path, extra=order, tile=32)
    assert base.cycles == pytest.approx(base.compute_cycles, abs=1)  # still compute-bound
    assert base.bound == "compute" and reordered.bound == "DRAM"
    bytes_per_cycle = base.dram_bytes / (0.8 * base.compute_cycles)
    assert reordered.cycles == pytest.approx(reordered.dram_bytes / bytes_per_cycle, abs=1)
    assert reordered.cycles > 1.1 * base.cycles  # now bound by the extra traffic
