"""The measured defects of issue 12, each as a user meets it: a cascade in the Extended Einsum
notation, a mapping (a TeAAL-style file for `apply-mapping`, or the `#einsum.mapping`
attribute), `einsum-opt ... -p ...,lower-to-loopnest,lower-to-dataflow -t cost-json`. Each test
fails on the cost model before issue 12 (which reported 100% utilisation, no partial sums, a
free and unchecked buffered input, ignored buffer bandwidths, and silent architecture
mismatches)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from einsum_opt.tools.einsum_opt import main as einsum_opt_main

ROOT = Path(__file__).resolve().parent.parent
FUSEMAX_YAML = ROOT / "hardware" / "architectures" / "fusemax.yaml"
LOWER = "lower-to-loopnest,lower-to-dataflow"
BYTES_PER_CYCLE = 400 * 2**30 / 940e6  # FuseMax's DRAM: 400 GiB/s at 940 MHz


def gemm_einsum(tmp: Path, k: int, m: int, n: int) -> Path:
    """Z = A x B as a user writes it."""
    path = tmp / "gemm.einsum"
    path.write_text(
        f"cascade gemm\nranks K={k}, M={m}, N={n}\ninput A[K,M], B[K,N]\noutput Z\n"
        "Z[m,n] = A[k,m] * B[k,n]\n"
    )
    return path


def mapping_file(tmp: Path, text: str) -> str:
    path = tmp / "mapping.yaml"
    path.write_text(text)
    return f'apply-mapping{{file="{path}"}}'


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`einsum-opt ARGS` in process: (exit status, stdout, stderr)."""
    status = einsum_opt_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def cost_json(
    capsys: pytest.CaptureFixture[str], *args: str, overflows: bool = False
) -> dict[str, Any]:
    """The JSON report; stderr is empty, or (`overflows`) one warning per reported overflow."""
    status, out, err = run(capsys, *args, "-t", "cost-json")
    assert status == 0, err
    data: dict[str, Any] = json.loads(out)
    expected = [
        f"warning: {o['level']} holds {o['peak_bytes']:,} bytes of {', '.join(o['tensors'])} "
        f"but has {o['capacity_bytes']:,}"
        for o in data["overflows"]
    ]
    assert err.splitlines() == (expected if overflows else [])
    return data


# -- utilisation counts PEs -------------------------------------------------------------------

TINY_GEMM_2D = """\
mapping:
  loop-order:
    Z: [K, M, N]
  spacetime:
    Z: {space: [M, N], time: [K]}
bindings:
  Z: pe2d
"""


def test_a_4_by_2_gemm_uses_8_of_65536_pes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """M = 4 and N = 2 spatial on the 256 x 256 array: 8 PEs busy, 8/65536 utilisation (it
    was 100%: time, not PEs, was counted)."""
    source = gemm_einsum(tmp_path, 64, 4, 2)
    data = cost_json(capsys, str(source), "-p", f"{mapping_file(tmp_path, TINY_GEMM_2D)},{LOWER}")
    assert data["cycles"] == 64
    assert data["computes"] == 64 * 8
    assert data["utilization"] == {"pe2d": 8 / 65536, "pe1d": 0.0}


def test_a_1d_mapping_on_64_of_256_pes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = gemm_einsum(tmp_path, 64, 64, 1)
    mapping = TINY_GEMM_2D.replace("space: [M, N], time: [K]", "space: [M], time: [K, N]")
    data = cost_json(
        capsys,
        str(source),
        "-p",
        f"{mapping_file(tmp_path, mapping.replace('pe2d', 'pe1d'))},{LOWER}",
    )
    assert data["utilization"] == {"pe2d": 0.0, "pe1d": 64 / 256}


# -- partial sums -----------------------------------------------------------------------------

BIG_GEMM = """\
mapping:
  partitioning:
    Z: {M: [uniform_shape(256)], N: [uniform_shape(256)]}
  loop-order:
    Z: [M1, N1, K, M0, N0]
  spacetime:
    Z: {space: [M0, N0], time: [M1, N1, K]}
bindings:
  Z: pe2d
"""


def test_k_outermost_moves_the_partial_sums_of_z_for_every_k(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An 8192^3 GEMM with K outermost: Z's 128 MiB of partial sums go out to DRAM and come
    back for every step of K (updated K times, read back K - 1 times: the first update needs
    no read), so the worst loop order is over 400x slower than the output-stationary one,
    which writes Z once."""
    side = 8192
    z = side * side
    source = str(gemm_einsum(tmp_path, side, side, side))
    mapping = mapping_file(tmp_path, BIG_GEMM)
    good = cost_json(capsys, source, "-p", f"{mapping},{LOWER}")
    bad = cost_json(
        capsys, source, "-p", f"{mapping},reorder-loops{{einsum=Z order=K,M1,N1,M0,N0}},{LOWER}"
    )
    good_z, bad_z = good["levels"]["DRAM"]["Z"], bad["levels"]["DRAM"]["Z"]
    assert (good_z["reads"], good_z["fills"], good_z["updates"]) == (0, 0, z)
    assert (bad_z["reads"], bad_z["fills"], bad_z["updates"]) == (z * (side - 1), 0, z * side)
    assert bad["dram_bytes"] > 2 * (2 * side - 1) * z  # Z alone: 2 bytes per word
    assert bad["cycles"] == pytest.approx(bad["dram_bytes"] / BYTES_PER_CYCLE, abs=1)
    assert bad["cycles"] > 400 * good["cycles"]
    assert bad["buffer_peak_bytes"]["GLB"] > 0  # the partial sums pass through the buffer
    assert bad["computes"] == good["computes"] == side**3


# -- an input placed in the buffer ------------------------------------------------------------

HOMED = """builtin.module {{
  einsum.cascade @gemm(%A: !einsum.tensor<[K, M], f32>, %B: !einsum.tensor<[K, N], f32>) -> !einsum.tensor<[M, N], f32> ranks(K = 4096, M = 4096, N = 4096) {{
    %Z = einsum.einsum Z[m, n] = %A[k, m] * %B[k, n] {{mapping = #einsum.mapping<unit = pe2d, loops = [N1, M1, K, M0, N0], partition = {{M = [256], N = [256]}}, space = {{M0 = 0, N0 = 1}}, storage = {{A = GLB, B = DRAM, Z = DRAM}}{at}>}} : !einsum.tensor<[M, N], f32>
    einsum.return %Z : !einsum.tensor<[M, N], f32>
  }}
}}"""
A_WORDS = 4096 * 4096  # 32 MiB of 16-bit values, twice FuseMax's 16 MB buffer


def homed_cost(tmp: Path, capsys: pytest.CaptureFixture[str], at: str) -> dict[str, Any]:
    path = tmp / "homed.mlir"
    path.write_text(HOMED.format(at=at))
    return cost_json(capsys, str(path), "-p", LOWER, overflows=True)


def check_overflow_of_a(data: dict[str, Any]) -> None:
    """A lives in the GLB (all of it: 32 MiB), comes from DRAM once, and the GLB overflows,
    the overflow naming the level and A."""
    assert data["levels"]["DRAM"]["A"]["reads"] == A_WORDS
    assert data["levels"]["GLB"]["A"]["utilized_capacity"] == A_WORDS
    assert data["buffer_overflow"]
    (overflow,) = data["overflows"]
    assert overflow["level"] == "GLB" and overflow["capacity_bytes"] == 16 * 2**20
    assert "A" in overflow["tensors"]
    assert overflow["peak_bytes"] >= 2 * A_WORDS


def test_an_input_homed_in_the_buffer_with_its_loops_there_overflows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`storage = {A = GLB}` with the loops over A's tiles placed at the GLB (`at`): the
    buffer holds all of A, which does not fit: an overflow naming GLB and A (it used to be
    free: no DRAM traffic for A, a buffer peak of 0, no overflow)."""
    data = homed_cost(tmp_path, capsys, ", at = {N1 = DRAM, M1 = GLB, M0 = RF}")
    check_overflow_of_a(data)
    assert data["levels"]["DRAM"]["B"]["reads"] == A_WORDS  # B's K x N0 tile: read once


def test_an_input_homed_in_the_buffer_overflows_with_the_default_placement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same without `at`: the capacity-driven placement must keep the loops over A at or
    below A's home (placement.py: "a 32 MiB input homed in a 16 MB buffer overflows rather
    than streams")."""
    check_overflow_of_a(homed_cost(tmp_path, capsys, ""))


# -- buffer bandwidth -------------------------------------------------------------------------

MID_GEMM = BIG_GEMM  # 4096^3: 16 x 16 tiles of 256 x 256 outputs, K = 4096 in time


def throttled(tmp: Path, capsys: pytest.CaptureFixture[str], **glb: float) -> dict[str, Any]:
    """The 4096^3 GEMM lowered for FuseMax with the GLB fields `glb` changed in the YAML file,
    and costed for it (the architecture it was lowered for, by default)."""
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    data["storage"]["GLB"].update(glb)
    arch = tmp / "slow_glb.yaml"
    arch.write_text(yaml.safe_dump(data, sort_keys=False))
    source = str(gemm_einsum(tmp, 4096, 4096, 4096))
    mapping = mapping_file(tmp, MID_GEMM)
    return cost_json(
        capsys, source, "-p", f'{mapping},lower-to-loopnest,lower-to-dataflow{{arch="{arch}"}}'
    )


def test_glb_read_bandwidth_throttles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The buffer streams A and B into the array: 2 x 4096^3 / 256 reads for 16 x 16 x 4096
    compute cycles, 512 words per cycle. Unthrottled, DRAM bounds the GEMM (B is fetched
    again for each of the 16 rows of tiles); at 64 words per cycle the buffer takes
    reads / 64 cycles, 8 times the compute."""
    compute = 16 * 16 * 4096
    reads = 2 * 4096**3 // 256
    free = throttled(tmp_path, capsys)
    assert free["compute_cycles"] == compute
    assert free["bound"] == "DRAM" and free["level_cycles"]["GLB"] == 0
    assert free["cycles"] == pytest.approx(free["dram_bytes"] / BYTES_PER_CYCLE, abs=1)
    glb = free["levels"]["GLB"]
    assert glb["A"]["reads"] + glb["B"]["reads"] == reads
    slow = throttled(tmp_path, capsys, read_bandwidth=64)
    assert slow["cycles"] == reads // 64 == 8 * compute
    assert slow["level_cycles"]["GLB"] == reads // 64
    assert slow["bound"] == "GLB"
    assert slow["utilization"]["pe2d"] == pytest.approx(1 / 8)


def test_glb_bandwidth_in_bytes_per_second_throttles_reads_and_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`bandwidth_bytes_per_s` is shared by reads, fills and updates: at 64 words per cycle
    (64 x 2 bytes x 940 MHz), all of the buffer's traffic over 64."""
    free = throttled(tmp_path, capsys)
    words = sum(a["reads"] + a["fills"] + a["updates"] for a in free["levels"]["GLB"].values())
    slow = throttled(tmp_path, capsys, bandwidth_bytes_per_s=64 * 2 * 940e6)
    assert slow["cycles"] == pytest.approx(words / 64, abs=1)
    assert slow["bound"] == "GLB"


# -- architecture mismatch --------------------------------------------------------------------


@pytest.fixture
def lowered_for_fusemax(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The 4 x 2 GEMM's dataflow program, lowered for fusemax, as a file."""
    source = gemm_einsum(tmp_path, 64, 4, 2)
    status, out, err = run(
        capsys, str(source), "-p", f"{mapping_file(tmp_path, TINY_GEMM_2D)},{LOWER}"
    )
    assert status == 0, err
    path = tmp_path / "program.mlir"
    path.write_text(out)
    return path


def test_costing_against_the_lowered_architecture_is_silent(
    lowered_for_fusemax: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for target in ("cost-json", "cost-json{arch=fusemax}"):
        status, out, err = run(capsys, str(lowered_for_fusemax), "-t", target)
        assert (status, err) == (0, "")
        assert json.loads(out)["arch"] == "fusemax"


def test_a_compatible_other_architecture_is_a_warning_naming_both(
    lowered_for_fusemax: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """flat has every level and unit the program uses: costed on flat, with a warning."""
    status, out, err = run(capsys, str(lowered_for_fusemax), "-t", "cost-json{arch=flat}")
    assert status == 0
    assert json.loads(out)["arch"] == "flat"
    assert err.splitlines() == [
        "warning: the programs were lowered for architecture 'fusemax' and are costed "
        "against 'flat'"
    ]
    status, out, err = run(capsys, str(lowered_for_fusemax), "-t", "cost-report{arch=edge}")
    assert status == 0 and "on edge" in out
    assert "'fusemax'" in err and "'edge'" in err


def without(tmp: Path, name: str, change: dict[str, Any]) -> Path:
    """fusemax.yaml renamed `name`, with top-level sections replaced by `change`."""
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    data["name"] = name
    for section, value in change.items():
        data[section] = value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_incompatible_architecture_is_an_error_naming_both(
    lowered_for_fusemax: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An architecture without a level or a unit the program uses: one `error:` line naming
    both architectures and what is missing, exit status 1, nothing on stdout."""
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    no_rf = without(tmp_path, "nobuffer", {"storage": {"DRAM": data["storage"]["DRAM"]}})
    status, out, err = run(capsys, str(lowered_for_fusemax), "-t", f'cost-json{{arch="{no_rf}"}}')
    assert (status, out) == (1, "")
    (line,) = err.splitlines()
    assert line.startswith("error: program @gemm was lowered for architecture 'fusemax' and ")
    assert "cannot be costed against 'nobuffer' (it has no level GLB)" in line
    renamed = {"grid": data["units"]["pe2d"], "row": data["units"]["pe1d"]}
    no_pe2d = without(tmp_path, "other_units", {"units": renamed})
    status, out, err = run(
        capsys, str(lowered_for_fusemax), "-t", f'cost-report{{arch="{no_pe2d}"}}'
    )
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        "error: program @gemm was lowered for architecture 'fusemax' and cannot be costed "
        "against 'other_units' (it has no unit pe2d)"
    ]


def test_an_architecture_of_the_same_name_with_other_numbers_is_a_warning(
    lowered_for_fusemax: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Architectures are compared by content, not by name: a YAML file named fusemax with a
    dearer GLB is costed with a warning saying so, and its GLB energy is the one used."""
    data = yaml.safe_load(FUSEMAX_YAML.read_text())
    data["storage"]["GLB"]["read_pj"] *= 2
    path = tmp_path / "fusemax-dear-glb.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    status, out, err = run(capsys, str(lowered_for_fusemax), "-t", f'cost-json{{arch="{path}"}}')
    assert status == 0
    assert err.splitlines() == [
        "warning: the programs were lowered for architecture 'fusemax' and are costed "
        f"against another architecture named 'fusemax' ({path})"
    ]
    _, same, quiet = run(capsys, str(lowered_for_fusemax), "-t", "cost-json{arch=fusemax}")
    assert quiet == ""  # the architecture it was lowered for: no warning
    dear, cheap = json.loads(out)["energy_by_level_pj"], json.loads(same)["energy_by_level_pj"]
    assert sum(dear["GLB"].values()) > sum(cheap["GLB"].values())
