"""The Timeloop example of the repository (examples/timeloop/gemm, and gemm-bandwidth with
bandwidth limits) through the command line users run:

    einsum-opt DIR/input.yaml --ert DIR/ERT.yaml --art DIR/ART.yaml
        -p lower-to-loopnest,lower-to-dataflow -t cost-json

against the numbers counted by hand in Run 2 of the project's Timeloop notes
(../shared/reference/timeloop.md: GEMM 64 x 64 x 64, int8, on a 16 x 16 output-stationary
array). Each number below is the note's, with its derivation; none is read from the tool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from timeloop_cli import cost_json as run_cost_json

ROOT = Path(__file__).resolve().parent.parent
GEMM = ROOT / "examples" / "timeloop" / "gemm"
BANDWIDTH = ROOT / "examples" / "timeloop" / "gemm-bandwidth"
MACS = 64 * 64 * 64

# pJ per access (the ERT of Run 2) and per cycle per instance (leak).
DRAM_PJ, GLB_READ, GLB_WRITE, RF_PJ, MAC_PJ = 512.0, 25.8695, 19.6486, 0.06794, 0.845
GLB_LEAK, RF_LEAK = 0.00167, 0.0001202


def cost_json(case: Path, *extra: str) -> dict[str, Any]:
    return run_cost_json(case / "input.yaml", GEMM / "ERT.yaml", GEMM / "ART.yaml", *extra)


@pytest.fixture(scope="module")
def unlimited() -> dict[str, Any]:
    return cost_json(GEMM)


@pytest.fixture(scope="module")
def limited() -> dict[str, Any]:
    return cost_json(BANDWIDTH)


def fj_per_mac(pj: float) -> float:
    """fJ per MAC to Timeloop's printed precision."""
    return round(pj * 1000 / MACS, 2)


def test_cycles_utilisation_and_total_energy(unlimited: dict[str, Any]) -> None:
    # 262,144 MACs on 256 MACs all busy: 1024 cycles; no bandwidth limit.
    assert unlimited["computes"] == MACS
    assert unlimited["cycles"] == 1024
    assert unlimited["utilization"] == {"MAC": 1.0}
    assert unlimited["energy_pj"] == pytest.approx(1_179_460, rel=1e-3)
    assert fj_per_mac(unlimited["energy_pj"]) == 4499.28


def test_counts_per_level_and_tensor(unlimited: dict[str, Any]) -> None:
    levels = unlimited["levels"]

    def counts(level: str, tensor: str) -> tuple[int, int, int]:
        entry = levels[level][tensor]
        return entry["reads"], entry["fills"], entry["updates"]

    # Each PE owns 16 outputs (4 x 4 GLB tiles), 64 MACs each: 1024 updates, and 1024 - 16
    # reads (the first touch of an output reads no zero); drains count at the GLB only.
    assert counts("RF", "Z") == (1008, 0, 1024)
    assert levels["RF"]["Z"]["utilized_instances"] == 256
    # A word of A goes to the 16 PEs of a row as one read (multicast): 262,144 / 16.
    assert counts("GLB", "A") == (16384, 4096, 0)
    assert counts("GLB", "B") == (16384, 4096, 0)
    assert counts("GLB", "Z") == (0, 0, 4096)
    assert counts("DRAM", "A") == (4096, 0, 0)
    assert counts("DRAM", "B") == (4096, 0, 0)
    assert counts("DRAM", "Z") == (0, 0, 4096)
    # The RF keeps only Z; the front end's dummy level before the array keeps nothing.
    assert set(levels["RF"]) == {"Z"}
    assert levels.get("inter_PE_spatial", {}) == {}
    assert set(levels) <= {"DRAM", "GLB", "inter_PE_spatial", "RF"}


def test_energy_per_level_and_tensor(unlimited: dict[str, Any]) -> None:
    by_level = unlimited["energy_by_level_pj"]
    breakdown = unlimited["energy_breakdown_pj"]
    cents = pytest.approx
    assert breakdown["compute"] == cents(221_511.68, abs=0.005)  # 262144 x 0.845
    assert by_level["RF"]["Z"] == cents(35_341.84, abs=0.005)  # (1008 + 1024) x 0.06794 x 256
    assert by_level["RF"]["leakage"] == cents(31.51, abs=0.005)  # 0.0001202 x 1024 x 256
    # ceil(16384 / 8) x 25.8695 + ceil(4096 / 8) x 19.6486
    assert by_level["GLB"]["A"] == cents(63_040.82, abs=0.005)
    assert by_level["GLB"]["B"] == cents(63_040.82, abs=0.005)
    assert by_level["GLB"]["Z"] == cents(10_060.08, abs=0.005)  # 512 x 19.6486
    for tensor in ("A", "B", "Z"):
        assert by_level["DRAM"][tensor] == 262_144  # 512 vectors x 512 pJ
    # fJ per MAC by level, as the note (and Timeloop's summary) prints them.
    assert fj_per_mac(breakdown["compute"]) == 845.00
    assert fj_per_mac(breakdown["RF"]) == 134.94
    assert fj_per_mac(breakdown["GLB"]) == 519.35
    assert fj_per_mac(breakdown["DRAM"]) == 3000.00
    assert breakdown.get("inter_PE_spatial", 0.0) == 0.0


def test_the_hand_formulas_agree_with_the_numbers_above() -> None:
    """The note's derivations, recomputed from its ERT: the literals above are consistent."""
    glb_a = -(-16384 // 8) * GLB_READ + -(-4096 // 8) * GLB_WRITE
    rf = (1008 + 1024) * RF_PJ * 256 + RF_LEAK * 1024 * 256
    glb = 2 * glb_a + 512 * GLB_WRITE + GLB_LEAK * 1024
    total = MACS * MAC_PJ + rf + glb + 3 * 512 * DRAM_PJ
    assert round(glb_a, 2) == 63_040.82
    assert round(total) == 1_179_460
    assert fj_per_mac(total) == 4499.28


def test_bandwidth_limits_throttle(limited: dict[str, Any], unlimited: dict[str, Any]) -> None:
    # The GLB reads 32 words per cycle at full speed (A and B, 16 each) but may read 16:
    # 0.5, 2048 cycles. The DRAM moves 12 per cycle (8192 reads + 4096 updates in 1024
    # cycles) of its shared 8: 0.67, 1536 cycles. Total max(1024, 2048, 1536).
    assert limited["cycles"] == 2048
    assert limited["level_cycles"]["GLB"] == 2048
    assert limited["level_cycles"]["DRAM"] == 1536
    assert limited["compute_cycles"] == 1024
    assert limited["bound"] == "GLB"
    assert limited["utilization"] == {"MAC": 0.5}
    assert fj_per_mac(limited["energy_pj"]) == 4499.41
    # The same accesses: energy changes only through leakage, over twice the cycles.
    assert limited["levels"] == unlimited["levels"]
    for level, tensors in unlimited["energy_by_level_pj"].items():
        for tensor, pj in tensors.items():
            expected = 2 * pj if tensor == "leakage" else pj
            assert limited["energy_by_level_pj"][level][tensor] == pytest.approx(expected)


def test_area_is_the_macs_of_the_art(unlimited: dict[str, Any]) -> None:
    # The example's ART prices the MAC (466 um^2, Aladdin's 8-bit intmac) and the DRAM (0).
    assert unlimited["area_um2"] == pytest.approx(256 * 466.0)


def test_a_mapping_in_a_file_of_its_own(tmp_path: Path, unlimited: dict[str, Any]) -> None:
    """`--mapping FILE`: the same case with its mapping moved into a `.map.yaml`."""
    text = (GEMM / "input.yaml").read_text()
    head, _, mapping = text.partition("\nmapping:\n")
    case = tmp_path / "gemm"
    case.mkdir()
    (case / "input.yaml").write_text(head + "\n")
    (tmp_path / "gemm.map.yaml").write_text("mapping:\n" + mapping)
    alone = cost_json(case, "--mapping", str(tmp_path / "gemm.map.yaml"))
    for key in ("cycles", "energy_pj", "levels", "utilization", "energy_by_level_pj"):
        assert alone[key] == unlimited[key], key
