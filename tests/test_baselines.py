"""The baselines of the FuseMax evaluation (`map-unfused`, `map-flat`, `map-fusemax{binding=
matmul}`) and the lowering features they rely on: kernels, fused pipelines without running
values (the GLB's shared allocations) and serial pipelines (`lower-to-dataflow{overlap=false}`).
The FLAT and unfused points are recomputed by hand from the FuseMax artifact's counts
(`shared/reference/fusemax-energy.md` §3, §6)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from dataflow_queries import accesses, buffers, stages
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.costmodel.model import evaluate, evaluate_module
from einsum_opt.costmodel.report import CostReport
from einsum_opt.dialects.dataflow import (
    PipelineOp,
    ProgramOp,
    RepeatOp,
    programs_in,
)
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.lowering.buffers import Produced, share_space
from einsum_opt.lowering.fusion import fused_loops
from einsum_opt.lowering.kernels import split_kernels
from einsum_opt.lowering.loopnest_to_dataflow import find_views
from einsum_opt.tools.einsum_opt import main as einsum_opt_main
from einsum_opt.transforms.map_baselines import (
    RowLayout,
    find_rows,
    is_contraction,
    kernel_name,
    map_flat,
)
from einsum_opt.transforms.map_fusemax import map_fusemax

ROOT = Path(__file__).resolve().parent.parent
ATTENTION = ROOT / "examples" / "attention"
THREE_PASS = ATTENTION / "3pass.einsum"
MHA = ATTENTION / "mha.einsum"
ONE_PASS = ATTENTION / "1pass.mlir"
LINEAR = ROOT / "examples" / "transformer" / "linear.einsum"

BUFFER = 32 * 2**20  # FLAT's and the unfused baseline's global buffer (bytes)
WORD = 2  # bytes per value
DRAM_BYTES_PER_CYCLE = 400 * 2**30 / 940e6  # 400 GiB/s at 940 MHz
BERT = {"B": 64, "H": 12}  # batch 64, 12 heads, E = F = 64 (mha.einsum's E, F)
ON_FLAT = "lower-to-loopnest,lower-to-dataflow{arch=flat}"

# FLAT's per-action energies (pJ), reference/fusemax-energy.md §2.
MAC, ADD, MAX, DIV, EXP = 17.1645, 8.3395, 0.028036, 36.251153, 94.6475
DRAM_PJ = 249.6  # per 64-bit access (4 words)
GLB_READ, GLB_WRITE = 23854.6, 27097.5  # per 256-word row, 32 MB
REG_READ, REG_WRITE = 0.653, 0.570


# -- helpers ----------------------------------------------------------------------------------


def load(path: Path, sizes: dict[str, int] | None = None) -> ModuleOp:
    module = api.load(path)
    if sizes:
        api.set_rank_sizes(module, sizes)
    return module


def cascade_of(module: ModuleOp) -> CascadeOp:
    (cascade,) = cascades_in(module)
    return cascade


def einsums(module: ModuleOp) -> dict[str, EinsumOp]:
    return {op.tensor_name: op for op in cascade_of(module).einsums()}


def mappings(module: ModuleOp) -> dict[str, MappingAttr]:
    out = {}
    for name, op in einsums(module).items():
        mapping = op.attributes[MAPPING_ATTR]
        assert isinstance(mapping, MappingAttr)
        out[name] = mapping
    return out


def nests(module: ModuleOp) -> list[NestOp]:
    return [op for op in cascade_of(module).body.block.ops if isinstance(op, NestOp)]


def programs(module: ModuleOp) -> dict[str, ProgramOp]:
    return {p.program_name: p for p in programs_in(module)}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `einsum-opt` in process: (exit status, stdout, stderr)."""
    status = einsum_opt_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def per_score(report: CostReport, level: str, scores: int) -> dict[str, tuple[Fraction, ...]]:
    """Tensor -> (reads, fills, updates) per score at `level`, over every instance."""
    return {
        tensor: tuple(Fraction(c * a.instances, scores) for c in (a.reads, a.fills, a.updates))
        for tensor, a in report.levels.get(level, {}).items()
    }


# -- is_contraction ---------------------------------------------------------------------------

SMALL_CASES = """\
cascade c
ranks M=4, P=4
input X[M,P], Y[M]
output MX, SC, SQ
MX[p] = X[m,p] * Y[m] :: max(m)
SC[p] = X[m,p] * 2.0
SQ[p] = X[m,p] * X[m,p]
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            THREE_PASS,
            {"QK": True, "GM": False, "SN": False, "SD": False, "A": False, "AV": True},
        ),
        (
            ONE_PASS,
            {
                "BK": False,
                "BV": False,
                "QK": True,
                "LM": False,
                "RM": False,
                "SLN": False,
                "PRM": False,
                "SPD": False,  # a product of two tensors, but nothing reduced
                "SLD": False,  # a sum, but no product
                "RD": False,
                "SPNV": False,
                "SLNV": True,
                "RNV": False,
                "AV": False,
            },
        ),
        (LINEAR, dict.fromkeys(["Q", "K", "V", "O", "F1", "F2"], True)),
    ],
    ids=["3pass", "1pass", "linear"],
)
def test_is_contraction(path: Path, expected: dict[str, bool]) -> None:
    found = {name: is_contraction(op) for name, op in einsums(load(path)).items()}
    assert found == expected


def test_is_contraction_needs_two_tensors_reduced_with_add() -> None:
    """A product reduced with max, or with a constant, is not a matrix product; a tensor
    times itself reduced with + is."""
    found = {
        name: is_contraction(op)
        for name, op in einsums(api.parse(SMALL_CASES, "einsum", "c.einsum")).items()
    }
    assert found == {"MX": False, "SC": False, "SQ": True}


def test_kernel_name() -> None:
    ops = einsums(load(THREE_PASS))
    assert kernel_name([ops["QK"]]) == "QK"
    assert kernel_name([ops["GM"], ops["SN"], ops["SD"], ops["A"]]) == "GM_A"


def test_find_rows() -> None:
    """The row rank is the largest rank of every output; the other common ones are outer."""
    assert find_rows(cascade_of(load(MHA)), None, "map-flat") == RowLayout("P", ("B", "H"))
    assert find_rows(cascade_of(load(LINEAR)), None, "map-flat") == RowLayout("P", ("B",))
    assert find_rows(cascade_of(load(MHA)), "H", "map-flat") == RowLayout("H", ("P", "B"))
    with pytest.raises(PassFailedException, match=r"^map-flat: rank E is not a rank of every"):
        find_rows(cascade_of(load(MHA)), "E", "map-flat")


# -- map-flat: the row block ------------------------------------------------------------------


def flat_rows_by_hand(n: int) -> int | None:
    """FLAT's row block R for BERT's multi-head attention at M = P = n, as the lowering counts
    the buffer: QK, SN and A share one R x M allocation in place (each written over the one
    it reads for the last time), GM and SD stay in the 1D array's registers, Q, K and V stream
    from DRAM into the PEs and AV leaves for DRAM straight. R: the largest multiple of 256
    dividing P whose 2 * R * M bytes fit 32 MB; None when not even 256 rows fit."""
    fitting = [r for r in range(256, n + 1, 256) if n % r == 0 and WORD * r * n <= BUFFER]
    return max(fitting, default=None)


# 1K: 2 MB for the whole P (head granularity); 4K: 4096 rows, exactly 32 MB; 16K: 1024;
# 64K: 256 rows, exactly 32 MB; 256K: 256 rows would take 128 MB: QK and A go off chip.
FLAT_ROWS = {1024: 1024, 4096: 4096, 16384: 1024, 65536: 256, 262144: None}


@pytest.mark.parametrize("n", sorted(FLAT_ROWS))
def test_flat_row_block_follows_sequence_length(n: int) -> None:
    assert flat_rows_by_hand(n) == FLAT_ROWS[n]
    module = load(MHA, {**BERT, "M": n, "P": n})
    rows = map_flat(cascade_of(module), arch="flat")
    found = mappings(module)
    assert {m.kernel_name for m in found.values()} == {""}
    if FLAT_ROWS[n] is None:
        assert (found["QK"].levels["QK"], found["A"].levels["A"]) == ("DRAM", "DRAM")
        return
    assert rows == FLAT_ROWS[n]
    for name, mapping in found.items():
        assert mapping.partitions["P"] == [FLAT_ROWS[n], 256], name
    assert {found[t].levels[t] for t in ("QK", "SN", "A")} == {"GLB"}


def test_flat_at_64k_fills_the_buffer_exactly() -> None:
    """At 64K one 256-row tile of QK (then SN, then A, in place) is 256 x 64K values: exactly
    the 32 MB; one pipeline iteration per tile of 256 queries (B * H * P / 256 of them)."""
    module = load(MHA, {**BERT, "M": 65536, "P": 65536})
    api.apply(module, f"map-flat{{arch=flat}},{ON_FLAT}")
    (program,) = programs_in(module)
    (pipeline,) = [op for op in program.body.block.ops if isinstance(op, PipelineOp)]
    assert (pipeline.loop_names, pipeline.count_value) == ("b, h, p2, p1", 64 * 12 * 256)
    assert buffers(program)["GLB"] == {"QK, SN, A": 256 * 65536 * WORD}
    report = evaluate_module(module, "flat")
    assert not report.buffer_overflow
    assert report.buffer_peak_bytes["GLB"] == BUFFER == report.buffer_capacity_bytes["GLB"]


@pytest.mark.parametrize(("n", "artifact"), [(1024, 3086.57), (65536, 3086.0)])
def test_flat_point_by_hand(n: int, artifact: float) -> None:
    """BERT at 1K and 64K, per score (reference §3): Q, K and V stream from DRAM into the PEs
    once per 256-wide tile of keys (Q) or queries (K, V), AV is written once; the buffer
    holds QK, written by QK and read by GM and by SN, then SN written over it and read by A
    (SD reads SN from the registers), then A written over SN and read by AV: 4 reads and 3
    writes. Energy (the artifact's accounting): 2E MACs, max, exp and subtraction, sum,
    divide, plus those accesses at the 32 MB buffer's row energies, within 0.2% of the
    reference's reconstruction. Latency: a pipeline over the tiles of 256 queries, bound by
    the 1D array's 4 cycles per key."""
    module = load(MHA, {**BERT, "M": n, "P": n})
    api.apply(module, f"map-flat{{arch=flat}},{ON_FLAT}")
    report = evaluate_module(module, "flat", "artifact")
    scores = 64 * 12 * n * n
    e = f = 64
    assert per_score(report, "DRAM", scores) == {
        "Q": (Fraction(e, 256), 0, 0),
        "K": (Fraction(e, 256), 0, 0),
        "V": (Fraction(f, 256), 0, 0),
        "AV": (0, 0, Fraction(f, n)),
    }
    assert per_score(report, "GLB", scores) == {"QK": (2, 0, 1), "SN": (1, 0, 1), "A": (1, 0, 1)}
    dram_words = Fraction(3 * e, 256) + Fraction(f, n)
    assert Fraction(report.dram_bytes, scores) == WORD * dram_words
    compute = 2 * e * MAC + MAX + (EXP + ADD) + ADD + DIV
    energy = compute + 4 * GLB_READ / 256 + 3 * GLB_WRITE / 256 + float(dram_words) / 4 * DRAM_PJ
    registers = report.energy_breakdown_pj["registers"] / scores
    assert 0 < registers < 0.1  # one PE's registers per array
    assert report.energy_pj / scores - registers == pytest.approx(energy, rel=1e-9)
    assert report.energy_pj / scores == pytest.approx(artifact, rel=2e-3)
    iterations, m1 = 64 * 12 * n // 256, n // 256
    assert report.cycles == (iterations - 1) * 4 * n + m1 * e + 5 * n
    assert report.utilization["pe2d"] == pytest.approx(
        iterations * 2 * n * e * 256 / (65536 * report.cycles), rel=1e-12
    )


def test_flat_off_chip_at_256k() -> None:
    """Not even 256 rows of QK fit at 256K: what the arrays pass each other (QK, A) goes
    through DRAM, written once and read once (8 bytes per score), and the 1D array works on
    blocks of 32 rows with the keys across its PEs (32 x 256K values of QK, then SN in place:
    16 MB, beside one key tile of K or V; 64 rows would not fit)."""
    n = 262144
    module = load(MHA, {**BERT, "M": n, "P": n})
    assert map_flat(cascade_of(module), arch="flat") == 32
    assert mappings(module)["SN"].spatial == {"M0": 0}
    api.apply(module, ON_FLAT)
    report = evaluate_module(module, "flat")
    scores = 64 * 12 * n * n
    dram = per_score(report, "DRAM", scores)
    assert (dram["QK"], dram["A"]) == ((1, 0, 1), (1, 0, 1))
    assert Fraction(report.dram_bytes, scores) == Fraction(8201, 1024)
    assert not report.buffer_overflow
    assert report.bound == "DRAM"


# -- map-unfused ------------------------------------------------------------------------------


def unfused_mha(n: int = 1024, lower: bool = True) -> ModuleOp:
    module = api.apply(load(MHA, {**BERT, "M": n, "P": n}), "map-unfused{arch=flat}")
    return api.apply(module, ON_FLAT) if lower else module


def test_unfused_mapping_kernels_and_storage() -> None:
    module = api.apply(load(THREE_PASS), "map-unfused{arch=flat}")
    found = mappings(module)
    assert {n: m.kernel_name for n, m in found.items()} == {
        "QK": "QK",
        "GM": "GM_A",
        "SN": "GM_A",
        "SD": "GM_A",
        "A": "GM_A",
        "AV": "AV",
    }
    assert {n: m.unit_name for n, m in found.items()} == {
        "QK": "pe2d",
        "GM": "pe1d",
        "SN": "pe1d",
        "SD": "pe1d",
        "A": "pe1d",
        "AV": "pe2d",
    }
    # Tensors crossing kernels (QK, A) live in DRAM and leave the PEs for it straight; the
    # softmax keeps SN in the GLB, GM and SD in the 1D array's registers.
    assert found["QK"].levels == {"Q": "DRAM", "K": "DRAM", "QK": "DRAM"}
    assert found["QK"].keeps == {"QK": ["DRAM", "PE"]}
    assert found["SN"].levels == {"QK": "DRAM", "GM": "PE", "SN": "GLB"}
    assert found["A"].levels == {"SN": "GLB", "SD": "PE", "A": "DRAM"}
    assert found["A"].keeps == {"A": ["DRAM", "PE"], "SD": ["PE"]}
    assert all(m.partitions["P"] == [1024, 256] for m in found.values())


def test_unfused_latency_is_the_sum_over_kernels() -> None:
    """Three programs, each max(compute, DRAM), run one after another. By hand at 1K (B = 64,
    H = 12, E = F = 64): QK does E MACs per score on all 256 x 256 PEs and moves Q and K once
    and QK out once, DRAM-bound; the softmax runs 4 one-cycle stages per score on the 1D array
    and moves QK in and A out once, compute-bound; AV spans F = 64 of the 2D array's 256
    columns (a quarter of it: 1 cycle per score over 256 PEs) and moves A, V and AV once,
    DRAM-bound."""
    module = unfused_mha()
    found = programs(module)
    assert list(found) == ["attention.QK", "attention.GM_A", "attention.AV"]
    reports = {name: evaluate(program, "flat") for name, program in found.items()}
    n, e, f = 1024, 64, 64
    scores = 64 * 12 * n * n
    qk_bytes = WORD * (Fraction(e, n) + Fraction(e, n) + 1) * scores
    av_bytes = WORD * (1 + Fraction(f, n) + Fraction(f, n)) * scores
    expected = {
        "attention.QK": (scores * e / 65536, qk_bytes / DRAM_BYTES_PER_CYCLE),
        "attention.GM_A": (4 * scores / 256, 2 * WORD * scores / DRAM_BYTES_PER_CYCLE),
        "attention.AV": (scores / 256, av_bytes / DRAM_BYTES_PER_CYCLE),
    }
    for name, (compute, memory) in expected.items():
        assert reports[name].compute_cycles == pytest.approx(compute), name
        assert reports[name].cycles == math.ceil(max(compute, memory)), name
        assert reports[name].bound == ("DRAM" if memory > compute else "compute"), name
    total = evaluate_module(module, "flat")
    assert total.programs == tuple(found)
    assert total.cycles == sum(r.cycles for r in reports.values()) == 3965625 * 2 + 12582912
    # Not max(total compute, total DRAM): kernels do not overlap.
    assert total.cycles > max(total.compute_cycles, total.memory_cycles)


def test_unfused_QK_and_A_go_through_dram_once() -> None:  # noqa: N802 - tensor names
    """QK is written to DRAM once and read back once by the softmax (its row block fits the
    buffer: GM brings it in, SN reads it from the GLB); A is written once and read once by
    AV: B * H * M * P values each way."""
    found = programs(unfused_mha())
    scores = 64 * 12 * 1024 * 1024
    qk, softmax, av = (found[f"attention.{k}"] for k in ("QK", "GM_A", "AV"))
    assert accesses(qk, "DRAM")[("QK", "QK")] == (0, 0, scores)
    assert {k: v for k, v in accesses(softmax, "DRAM").items()} == {
        ("GM", "QK"): (scores, 0, 0),
        ("A", "A"): (0, 0, scores),
    }
    assert accesses(softmax, "GLB")[("SN", "QK")] == (scores, 0, 0)
    assert accesses(av, "DRAM")[("AV", "A")] == (scores, 0, 0)


def test_unfused_softmax_at_long_rows_takes_one_row_block_at_a_time() -> None:
    """At 256K not even 256 rows of QK fit the buffer: the softmax takes blocks of 64 rows
    (64 x 256K values, QK then SN in place, exactly 32 MB) with the keys across the 1D array,
    and still reads QK once and writes A once (4 bytes per score). With the QK and AV kernels
    the unfused baseline moves 8.00-8.01 bytes per score (reference §6)."""
    n = 262144
    module = unfused_mha(n, lower=False)
    found = mappings(module)
    assert found["GM"].partitions["P"] == [64] and found["GM"].spatial == {"M0": 0}
    api.apply(module, ON_FLAT)
    softmax = programs(module)["attention.GM_A"]
    scores = 64 * 12 * n * n
    assert accesses(softmax, "DRAM") == {("GM", "QK"): (scores, 0, 0), ("A", "A"): (0, 0, scores)}
    assert buffers(softmax)["GLB"] == {"QK, SN": 64 * n * WORD}
    report = evaluate_module(module, "flat")
    assert not report.buffer_overflow
    assert 8 < report.dram_bytes / scores < 8.01


def test_unfused_linear_layers_are_one_kernel_on_pe2d() -> None:
    module = api.apply(load(LINEAR), "map-unfused")
    found = mappings(module)
    assert {m.unit_name for m in found.values()} == {"pe2d"}
    assert {m.kernel_name for m in found.values()} == {"Q_F2"}
    api.apply(module, "lower-to-loopnest,lower-to-dataflow{arch=flat}")
    assert list(programs(module)) == ["linear"]


COLLIDING_NAMES = """\
cascade c
ranks M=256, N=256, P=256
input X[M,P], W[N,M], U[N,M]
output Z
A[n,p] = X[m,p] * W[n,m]
B[n,p] = A[n,p] * U[n,m]
C[n,p] = exp(B[n,p])
A_B[n,p] = C[n,p] * U[n,m]
Z[p] = A_B[n,p] :: max(n)
"""


def test_unfused_kernel_names_are_unique() -> None:
    """The run A, B is kernel A_B; the later Einsum A_B gets its own kernel, A_B_2 (sharing
    the name would merge the two into one kernel that reads C, which runs later)."""
    module = api.apply(api.parse(COLLIDING_NAMES, "einsum", "c.einsum"), "map-unfused")
    assert {n: m.kernel_name for n, m in mappings(module).items()} == {
        "A": "A_B",
        "B": "A_B",
        "C": "C",
        "A_B": "A_B_2",
        "Z": "Z",
    }
    api.apply(module, "lower-to-loopnest,lower-to-dataflow{arch=flat}")
    assert list(programs(module)) == ["c.A_B", "c.C", "c.A_B_2", "c.Z"]


# -- kernels: split_kernels -------------------------------------------------------------------

Edit = Callable[[str, dict[str, str], str], tuple[dict[str, str], str]]


def unfused_edited(edit: Edit) -> ModuleOp:
    """3-pass attention mapped by map-unfused, then each mapping's storage and kernel edited
    (`edit(einsum, levels, kernel) -> (levels, kernel)`), lowered to loop nests."""
    module = api.apply(load(THREE_PASS), "map-unfused")
    for name, op in einsums(module).items():
        m = op.attributes[MAPPING_ATTR]
        assert isinstance(m, MappingAttr)
        levels, kernel = edit(name, m.levels, m.kernel_name)
        op.attributes[MAPPING_ATTR] = MappingAttr.make(
            m.unit_name, m.loop_order, m.partitions, m.spatial, levels, kernel
        )
    return api.apply(module, "lower-to-loopnest")


def qk_homed_in_glb(name: str, levels: dict[str, str], kernel: str) -> tuple[dict[str, str], str]:
    return ({**levels, "QK": "GLB"} if "QK" in levels else levels), kernel


def gm_reads_qk_from_glb(
    name: str, levels: dict[str, str], kernel: str
) -> tuple[dict[str, str], str]:
    return ({**levels, "QK": "GLB"} if name == "GM" else levels), kernel


def qk_and_av_one_kernel(
    name: str, levels: dict[str, str], kernel: str
) -> tuple[dict[str, str], str]:
    return levels, ("mm" if name in ("QK", "AV") else kernel)


def av_without_kernel(name: str, levels: dict[str, str], kernel: str) -> tuple[dict[str, str], str]:
    return levels, ("" if name == "AV" else kernel)


KERNEL_ERRORS: dict[str, tuple[Edit, str]] = {
    "crossing through the GLB": (
        qk_homed_in_glb,
        "lower-to-dataflow: nest GM (kernel GM_A) reads QK of kernel QK from GLB (stored in "
        "GLB): tensors cross kernels through DRAM",
    ),
    "read from the GLB": (
        gm_reads_qk_from_glb,
        "lower-to-dataflow: nest GM (kernel GM_A) reads QK of kernel QK from GLB (stored in "
        "DRAM): tensors cross kernels through DRAM",
    ),
    "reading a later kernel": (
        qk_and_av_one_kernel,
        "lower-to-dataflow: nest AV (kernel mm) reads A of kernel GM_A, which runs later",
    ),
    "a nest without kernel": (
        av_without_kernel,
        "lower-to-dataflow: nest AV has no kernel, but other nests of its cascade do: name a "
        "kernel in every mapping of the cascade, or in none",
    ),
}


@pytest.mark.parametrize("case", list(KERNEL_ERRORS))
def test_kernel_errors(case: str) -> None:
    edit, message = KERNEL_ERRORS[case]
    module = unfused_edited(edit)
    with pytest.raises(PassFailedException) as error:
        api.apply(module, "lower-to-dataflow{arch=flat}")
    assert str(error.value) == message


def test_split_kernels_groups_in_order() -> None:
    module = api.apply(load(THREE_PASS), "map-unfused,lower-to-loopnest")
    found = nests(module)
    kernels = split_kernels(found, find_views(cascade_of(module), found))
    assert {k: [n.tensor_name for n in v] for k, v in kernels.items()} == {
        "QK": ["QK"],
        "GM_A": ["GM", "SN", "SD", "A"],
        "AV": ["AV"],
    }
    assert list(kernels) == ["QK", "GM_A", "AV"]
    flat = nests(api.apply(load(THREE_PASS), "map-flat,lower-to-loopnest"))
    assert list(split_kernels(flat, {})) == [""]


KERNEL_TEXT_ERRORS = {
    "through the GLB": (
        "storage = {QK = DRAM, GM = PE}",
        "storage = {QK = GLB, GM = PE}",
        "lower-to-dataflow: nest GM (kernel GM_A) reads QK of kernel QK from GLB (stored in "
        "DRAM): tensors cross kernels through DRAM",
    ),
    "a later kernel": (
        "kernel = AV,",
        "kernel = QK,",
        "lower-to-dataflow: nest AV (kernel QK) reads A of kernel GM_A, which runs later",
    ),
    "no kernel": (
        ", kernel = AV,",
        ",",
        "lower-to-dataflow: nest AV has no kernel, but other nests of its cascade do: name a "
        "kernel in every mapping of the cascade, or in none",
    ),
}


@pytest.mark.parametrize("case", list(KERNEL_TEXT_ERRORS))
def test_kernel_errors_on_the_command_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mappings written out with explicit `kernel = NAME`, edited, and lowered by einsum-opt:
    one `error:` line at the Einsum of the nest at fault, exit status 1, nothing on stdout."""
    old, new, message = KERNEL_TEXT_ERRORS[case]
    text = str(api.apply(load(THREE_PASS), "map-unfused"))
    assert text.count(old) == 1
    source = tmp_path / "unfused.mlir"
    edited = text.replace(old, new)
    source.write_text(edited)
    status, out, err = cli(
        capsys, str(source), "-p", "lower-to-loopnest,lower-to-dataflow{arch=flat}"
    )
    assert (status, out) == (1, "")
    nest = re.match(r"lower-to-dataflow: nest (\w+)", message)
    assert nest is not None
    line, statement = next(
        (n, ln)
        for n, ln in enumerate(edited.splitlines(), 1)
        if ln.lstrip().startswith(f"%{nest[1]} = einsum.einsum ")
    )
    column = statement.index("einsum.einsum ") + len("einsum.einsum ") + 1
    assert err.splitlines() == [f"{source}:{line}:{column}: error: {message}"]


# -- share_space ------------------------------------------------------------------------------


def test_share_space_in_place() -> None:
    """An Einsum writes over the operand it reads for the last time when both have the same
    size (SN = exp(QK - GM) over QK)."""
    produced = [Produced("QK", 100, {"Q"}), Produced("SN", 100, {"QK"})]
    assert share_space(produced) == {"QK, SN": 100}


def test_share_space_not_in_place_when_sizes_differ_or_read_later() -> None:
    assert share_space([Produced("QK", 100, set()), Produced("GM", 10, {"QK"})]) == {
        "QK": 100,
        "GM": 10,
    }
    # QK is read again after SN: SN cannot overwrite it; Z, its last reader, can.
    produced = [
        Produced("QK", 100, set()),
        Produced("SN", 100, {"QK"}),
        Produced("Z", 100, {"QK", "SN"}),
    ]
    assert share_space(produced) == {"QK, Z": 100, "SN": 100}


def test_share_space_reuses_after_lifetimes_end() -> None:
    """X is dead once Y read it: Z takes its space; Y, still read by Z, keeps its own."""
    produced = [
        Produced("X", 100, set()),
        Produced("Y", 10, {"X"}),
        Produced("Z", 100, {"Y"}),
    ]
    assert share_space(produced) == {"X, Z": 100, "Y": 10}


def test_share_space_overlapping_lifetimes_do_not_share() -> None:
    produced = [
        Produced("X", 100, set()),
        Produced("Y", 100, set()),
        Produced("Z", 10, {"X", "Y"}),
    ]
    assert share_space(produced) == {"X": 100, "Y": 100, "Z": 10}


def test_share_space_picks_the_smallest_fitting_else_grows_the_largest() -> None:
    produced = [
        Produced("A", 100, set()),
        Produced("B", 50, set()),
        Produced("C", 1, {"A", "B"}),  # A and B die here
        Produced("D", 40, set()),  # the smallest free allocation that fits: B's
        Produced("E", 150, set()),  # none fits: A's, the largest free one, grown
    ]
    assert share_space(produced) == {"A, E": 150, "B, D": 50, "C": 1}


def test_share_space_size_zero_readers_end_lifetimes() -> None:
    """A reader stored elsewhere (size 0) takes no space but keeps what it reads alive."""
    alive = [Produced("X", 100, set()), Produced("Y", 100, set()), Produced("R", 0, {"X"})]
    assert share_space(alive) == {"X": 100, "Y": 100}
    unread = [Produced("X", 100, set()), Produced("Y", 100, set())]
    assert share_space(unread) == {"X, Y": 100}
    produced = [
        Produced("X", 100, set()),
        Produced("R", 0, {"X"}),
        Produced("Z", 100, set()),
    ]
    assert share_space(produced) == {"X, Z": 100}


def test_share_space_of_3pass_attention() -> None:
    """FLAT's working set: QK, SN, A in one allocation, GM and SD in another; AV (returned,
    size 0) only reads A."""
    r, m = 256, 1024
    produced = [
        Produced("QK", r * m, {"Q", "K"}),
        Produced("GM", r, {"QK"}),
        Produced("SN", r * m, {"QK", "GM"}),
        Produced("SD", r, {"SN"}),
        Produced("A", r * m, {"SN", "SD"}),
        Produced("AV", 0, {"A", "V"}),
    ]
    assert share_space(produced) == {"QK, SN, A": r * m, "GM, SD": r}


# -- fused_loops ------------------------------------------------------------------------------


def test_fused_loops_stop_before_a_reduced_loop_read_by_another_nest() -> None:
    """The unfused softmax kernel shares b, h, p2, p1 and m, but GM reduces m and SN reads GM:
    the pipeline is over b, h, p2, p1."""
    module = api.apply(load(MHA), "map-unfused,lower-to-loopnest")
    softmax = [n for n in nests(module) if n.kernel_name == "GM_A"]
    assert [n.tensor_name for n in softmax] == ["GM", "SN", "SD", "A"]
    assert all("m" in n.extents() for n in softmax)
    assert fused_loops(softmax) == ("b", "h", "p2", "p1")
    assert fused_loops(softmax[:1]) == ()


def test_fused_loops_stop_at_a_differing_loop() -> None:
    """FLAT: every nest loops over b, h, p2, p1 first; then QK loops over m1 where the
    softmax loops over m and AV over m and p0. Unfused at 256K: the softmax's row blocks
    (p1, p0) differ from QK's."""
    module = api.apply(load(MHA), "map-flat,lower-to-loopnest")
    assert fused_loops(nests(module)) == ("b", "h", "p2", "p1")
    long = api.apply(unfused_mha(262144, lower=False), "lower-to-loopnest")
    assert fused_loops(nests(long)) == ("b", "h")


# -- map-fusemax{binding=matmul} --------------------------------------------------------------


def test_fusemax_matmul_binding_puts_only_contractions_on_pe2d() -> None:
    module = load(ONE_PASS)
    map_fusemax(cascade_of(module), binding="matmul")
    found = mappings(module)
    assert {n for n, m in found.items() if m.unit_name == "pe2d"} == {"QK", "SLNV"}
    for name in ("LM", "SLN", "SLD"):  # they iterate the key tile M0, now in time
        assert found[name].unit_name == "pe1d"
        assert "M0" in found[name].loop_order, name
        assert found[name].spatial == {"P0": 0}, name
    assert found["QK"].spatial == {"P0": 0, "M0": 1}
    api.apply(module, "lower-to-loopnest,lower-to-dataflow{arch=flat}")
    lowered = stages(programs_in(module)[0])
    assert (lowered["LM"].unit_name, lowered["LM"].times_value) == ("pe1d", 256)
    assert lowered["LM"].extent_list() == [256]
    assert lowered["SLNV"].extent_list() == [256, 256]
    default = load(ONE_PASS)
    map_fusemax(cascade_of(default))
    views = {"BK", "BV"}  # copies of K and V: no stage, whatever their unit
    assert {n for n, m in mappings(default).items() if m.unit_name == "pe2d"} - views == {
        "QK",
        "LM",
        "SLN",
        "SLD",
        "SLNV",
    }


def test_fusemax_unknown_binding(capsys: pytest.CaptureFixture[str]) -> None:
    message = "map-fusemax: unknown binding 'flat' (expected fusemax or matmul)"
    with pytest.raises(PassFailedException) as error:
        map_fusemax(cascade_of(load(ONE_PASS)), binding="flat")
    assert str(error.value) == message
    # On the command line the option is checked against its allowed values first.
    status, out, err = cli(capsys, str(ONE_PASS), "-p", "map-fusemax{binding=flat}")
    assert (status, out, err.splitlines()) == (
        1,
        "",
        [
            "error: pass map-fusemax: option binding (fusemax|matmul) expects one of fusemax, "
            "matmul, got 'flat'"
        ],
    )


# -- serial pipelines -------------------------------------------------------------------------

# The serial program of the 1-pass cascade at M = P = 1024 (M1 = P1 = 4): per stage its unit,
# per-run cycles on FuseMax (times x cycles per invocation; exp + add = 6 MACs + 1) and `after`.
SERIAL_STAGES = {
    "QK": ("pe2d", 64, []),
    "LM": ("pe2d", 1, ["QK"]),
    "RM": ("pe1d", 1, ["LM"]),
    "SLN": ("pe2d", 7, ["QK", "RM"]),
    "PRM": ("pe1d", 7, ["RM"]),
    "SPD": ("pe1d", 1, ["PRM"]),
    "SLD": ("pe2d", 1, ["SLN"]),
    "RD": ("pe1d", 1, ["SPD", "SLD"]),
    "SPNV": ("pe1d", 64, ["PRM"]),
    "SLNV": ("pe2d", 64, ["SLN"]),
    "RNV": ("pe1d", 64, ["SPNV", "SLNV"]),
    "AV": ("pe1d", 64, ["RNV", "RD"]),
}
# Finish times of one iteration; a pe2d -> pe1d edge waits 256 cycles for the 2D array to
# drain (the 1D array has no drain time):
#   QK 64, LM 65, RM 65 + 256 + 1 = 322, SLN max(64, 322) + 7 = 329, PRM 329, SPD 330,
#   SLD 330, RD max(330, 330 + 256) + 1 = 587, SPNV 393, SLNV 393,
#   RNV max(393, 393 + 256) + 64 = 713, AV max(713, 587) + 64 = 777.
# AV runs in 4 of the 16 iterations (once per query block): 12 iterations take 713 cycles and
# 4 take 777; the model counts AV's 64 cycles at 4/16 in every iteration, the same total.
SERIAL_CYCLES = 12 * 713 + 4 * 777


def fusemax_program(overlap: bool) -> ProgramOp:
    module = api.apply(
        load(ONE_PASS),
        f"map-fusemax,lower-to-loopnest,lower-to-dataflow{{overlap={str(overlap).lower()}}}",
    )
    (program,) = programs_in(module)
    return program


def test_serial_fusemax_sums_the_drained_critical_path_of_each_iteration() -> None:
    program = fusemax_program(overlap=False)
    (repeat,) = [op for op in program.body.block.ops if isinstance(op, RepeatOp)]
    assert not repeat.is_serial and repeat.count_value == 1
    (pipeline,) = [op for op in repeat.body.block.ops if isinstance(op, PipelineOp)]
    assert pipeline.is_serial and pipeline.count_value == 16
    found = stages(program)
    cycles = {"mac": 1, "max": 1, "add": 1, "mul": 1, "div": 1, "exp": 6}
    printed = {
        name: (
            s.unit_name,
            s.times_value * sum(cycles[k] * n for k, n in s.op_counts().items()),
            s.after_names(),
        )
        for name, s in found.items()
    }
    assert printed == SERIAL_STAGES
    serial = evaluate(program, "fusemax")
    assert serial.compute_cycles == SERIAL_CYCLES
    assert serial.cycles == SERIAL_CYCLES  # compute-bound
    overlapped_program = fusemax_program(overlap=True)
    assert not any(op.is_serial for op in overlapped_program.walk() if isinstance(op, PipelineOp))
    overlapped = evaluate(overlapped_program, "fusemax")
    assert serial.cycles > overlapped.cycles
    # The same work either way: only the timing differs.
    busy = {name: cost.cycles for name, cost in serial.per_einsum.items()}
    assert busy == {name: cost.cycles for name, cost in overlapped.per_einsum.items()}


# -- numerical equivalence ----------------------------------------------------------------------


@pytest.mark.parametrize("mapping", ["map-flat{tile=64}", "map-unfused{tile=64}"])
def test_mapped_cascades_still_execute(mapping: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = cli(
        capsys,
        str(THREE_PASS),
        "--ranks",
        "M=256,P=256",
        "-p",
        f"{mapping},lower-to-loopnest",
        "--check-equivalence",
    )
    assert status == 0, err
    assert "loopnest.nest" in out
    assert "check-equivalence: @attention AV:" in err and err.rstrip().endswith("ok")


# -- kernel names in the text forms ---------------------------------------------------------------


def test_a_quoted_kernel_name_round_trips() -> None:
    text = str(api.apply(load(THREE_PASS), "map-unfused")).replace(
        "kernel = GM_A", 'kernel = "soft max"'
    )
    module = api.parse(text)
    assert mappings(module)["GM"].kernel_name == "soft max"
    api.parse(str(module))
    api.parse(str(api.apply(module, "lower-to-loopnest")))
