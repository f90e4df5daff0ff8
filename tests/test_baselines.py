"""The baselines of the FuseMax evaluation (`map-unfused`, `map-flat`, `map-fusemax{binding=
matmul}`) and the lowering features they rely on: kernels, fused pipelines without running
values (the GLB's shared allocations) and serial pipelines (`lower-to-dataflow{overlap=false}`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.costmodel.model import evaluate, evaluate_module
from einsum_opt.dialects.dataflow import (
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    TransferOp,
    programs_in,
)
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.lowering.buffers import Produced, share_space
from einsum_opt.lowering.kernels import split_kernels
from einsum_opt.lowering.loopnest_to_dataflow import find_views, fused_loops
from einsum_opt.tools.einsum_opt import main as einsum_opt_main
from einsum_opt.transforms.map_baselines import (
    RowLayout,
    find_rows,
    flat_block,
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


def transfers(program: ProgramOp) -> list[tuple[str, str, str, str, int]]:
    return [
        (op.einsum_name, op.tensor_name, op.source_level, op.dest_level, op.bytes_value)
        for op in program.walk()
        if isinstance(op, TransferOp)
    ]


def stages(program: ProgramOp) -> dict[str, ComputeOp]:
    return {op.einsum_name: op for op in program.walk() if isinstance(op, ComputeOp)}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `einsum-opt` in process: (exit status, stdout, stderr)."""
    status = einsum_opt_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


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


def flat_rows_by_hand(n: int) -> int:
    """FLAT's row block R for BERT-sized multi-head attention at M = P = n, by the rule of
    map_baselines' docstring: QK, SN and A share one R x M allocation in place, GM and SD one
    R vector, plus Q's rows R x E; K and V have no row rank. R: the largest multiple of 256
    dividing P whose 2 * R * (M + 1 + E) bytes fit 32 MB, else 256."""
    e = 64
    candidates = [r for r in range(256, n + 1, 256) if n % r == 0]
    fitting = [r for r in candidates if WORD * (r * n + r + r * e) <= BUFFER]
    return max(fitting, default=256)


# 1K: 2 * 1024 * 1089 = 2.1 MB: the whole P (head granularity).
# 4K: 2 * R * 4161 <= 32 MB  ->  R <= 4032: 2048 (4096 does not fit).
# 16K: 2 * R * 16449 <= 32 MB  ->  R <= 1019: 512.
# 64K: 2 * R * 65601 <= 32 MB  ->  R <= 255: nothing fits, one tile.
FLAT_ROWS = {1024: 1024, 4096: 2048, 16384: 512, 65536: 256}


@pytest.mark.parametrize("n", sorted(FLAT_ROWS))
def test_flat_row_block_follows_sequence_length(n: int) -> None:
    assert flat_rows_by_hand(n) == FLAT_ROWS[n]
    module = load(MHA, {**BERT, "M": n, "P": n})
    cascade = cascade_of(module)
    rows = find_rows(cascade, None, "map-flat")
    assert flat_block(cascade, rows, 256, BUFFER, WORD) == FLAT_ROWS[n]
    assert map_flat(cascade) == FLAT_ROWS[n]
    for name, mapping in mappings(module).items():
        assert mapping.partitions["P"] == [FLAT_ROWS[n], 256], name
        assert mapping.kernel_name == "", name


def test_flat_at_64k_overflows_and_spills() -> None:
    """Not even one 256-row tile fits at 64K: the buffer of one pipeline iteration (QK/SN/A in
    place, 256 x 64K values = 32 MB, plus GM/SD, 512 B) overflows by 512 bytes, written out and
    read back once per iteration (B * H * P / 256 of them)."""
    module = load(MHA, {**BERT, "M": 65536, "P": 65536})
    api.apply(module, "map-flat,lower-to-loopnest,lower-to-dataflow{arch=flat}")
    (program,) = programs_in(module)
    (pipeline,) = [op for op in program.body.block.ops if isinstance(op, PipelineOp)]
    assert (pipeline.loop_names, pipeline.count_value) == ("b, h, p2", 64 * 12 * 256)
    (buffer,) = [op for op in pipeline.body.block.ops if isinstance(op, BufferOp)]
    assert buffer.bytes_value == 256 * 65536 * WORD + 256 * WORD
    report = evaluate_module(module, "flat")
    assert report.buffer_overflow
    assert report.buffer_peak_bytes["GLB"] == BUFFER + 512
    assert report.spill_bytes == {"GLB": 2 * 512 * 64 * 12 * 256}


def test_flat_at_1k_fits() -> None:
    module = load(MHA, {**BERT, "M": 1024, "P": 1024})
    api.apply(module, "map-flat,lower-to-loopnest,lower-to-dataflow{arch=flat}")
    report = evaluate_module(module, "flat")
    assert not report.buffer_overflow and report.spill_bytes == {}


# -- map-unfused ------------------------------------------------------------------------------


def unfused_mha(n: int = 1024) -> ModuleOp:
    module = load(MHA, {**BERT, "M": n, "P": n})
    return api.apply(module, "map-unfused,lower-to-loopnest,lower-to-dataflow{arch=flat}")


def test_unfused_mapping_kernels_and_storage() -> None:
    module = api.apply(load(THREE_PASS), "map-unfused")
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
    # Tensors crossing kernels (QK, A) live in DRAM; the softmax's own ones in the GLB.
    assert found["QK"].levels == {"Q": "DRAM", "K": "DRAM", "QK": "DRAM"}
    assert found["SN"].levels == {"QK": "DRAM", "GM": "GLB", "SN": "GLB"}
    assert found["A"].levels == {"SN": "GLB", "SD": "GLB", "A": "DRAM"}
    assert all(m.partitions["P"] == [256, 256] for m in found.values())


def test_unfused_latency_is_the_sum_over_kernels() -> None:
    """Three programs, each max(compute, memory), run one after another. By hand at 1K (B = 64,
    H = 12, E = F = 64): QK and AV move Q/K (or V/AV) once and QK (or A) once,
    2 * 100663296 + 1610612736 bytes, memory-bound; the softmax runs 4 one-cycle stages per
    element on the 1D array (B * H * M * P / 256 cycles each), compute-bound."""
    module = unfused_mha()
    found = programs(module)
    assert list(found) == ["attention.QK", "attention.GM_A", "attention.AV"]
    reports = {name: evaluate(program, "flat") for name, program in found.items()}
    elements = 64 * 12 * 1024 * 1024
    matrix = 2 * 64 * 12 * 64 * 1024 * WORD + elements * WORD
    expected = {
        "attention.QK": (elements * 64 / 65536, matrix / DRAM_BYTES_PER_CYCLE),
        "attention.GM_A": (4 * elements / 256, 2 * elements * WORD / DRAM_BYTES_PER_CYCLE),
        "attention.AV": (elements * 64 / 65536, matrix / DRAM_BYTES_PER_CYCLE),
    }
    for name, (compute, memory) in expected.items():
        assert reports[name].compute_cycles == pytest.approx(compute), name
        assert reports[name].memory_cycles == pytest.approx(memory), name
        assert reports[name].cycles == math.ceil(max(compute, memory)), name
    latency = sum(max(c, m) for c, m in expected.values())
    total = evaluate_module(module, "flat")
    assert total.programs == tuple(found)
    assert total.cycles == math.ceil(latency) == 3965625 * 2 + 12582912
    # Not max(total compute, total memory): kernels do not overlap.
    assert total.cycles > max(total.compute_cycles, total.memory_cycles)


def test_unfused_QK_and_A_go_through_dram_once() -> None:  # noqa: N802 - tensor names
    """QK is written to DRAM once and read back once by the softmax (its row block fits the
    buffer: GM fetches it, SN reads it from the GLB); A is written once and read once by AV:
    B * H * M * P * 2 bytes each way."""
    found = programs(unfused_mha())
    size = 64 * 12 * 1024 * 1024 * WORD
    qk = transfers(found["attention.QK"])
    softmax = transfers(found["attention.GM_A"])
    av = transfers(found["attention.AV"])
    assert [t for t in qk if t[1] == "QK"] == [("QK", "QK", "GLB", "DRAM", size)]
    assert [t for t in softmax if "DRAM" in t[2:4]] == [
        ("GM", "QK", "DRAM", "GLB", size),
        ("A", "A", "GLB", "DRAM", size),
    ]
    assert [t for t in av if t[1] == "A"] == [("AV", "A", "DRAM", "GLB", size)]


def test_unfused_softmax_rereads_QK_when_its_rows_do_not_fit() -> None:  # noqa: N802
    """At 64K one 256-row block of QK is the whole buffer: GM and SN each read QK from DRAM."""
    softmax = programs(unfused_mha(65536))["attention.GM_A"]
    size = 64 * 12 * 65536 * 65536 * WORD
    assert [t for t in transfers(softmax) if t[2] == "DRAM"] == [
        ("GM", "QK", "DRAM", "GLB", size),
        ("SN", "QK", "DRAM", "GLB", size),
    ]


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
        "storage = {QK = DRAM, GM = GLB}",
        "storage = {QK = GLB, GM = GLB}",
        "lower-to-dataflow: nest GM (kernel GM_A) reads QK of kernel QK from GLB (stored in "
        "DRAM): tensors cross kernels through DRAM",
    ),
    "a later kernel": (
        "kernel = AV>",
        "kernel = QK>",
        "lower-to-dataflow: nest AV (kernel QK) reads A of kernel GM_A, which runs later",
    ),
    "no kernel": (
        ", kernel = AV>",
        ">",
        "lower-to-dataflow: nest AV has no kernel, but other nests of its cascade do: name a "
        "kernel in every mapping of the cascade, or in none",
    ),
}


@pytest.mark.parametrize("case", list(KERNEL_TEXT_ERRORS))
def test_kernel_errors_on_the_command_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mappings written out with explicit `kernel = NAME`, edited, and lowered by einsum-opt:
    one `error:` line, exit status 1, nothing on stdout."""
    old, new, message = KERNEL_TEXT_ERRORS[case]
    text = str(api.apply(load(THREE_PASS), "map-unfused"))
    assert text.count(old) == 1
    source = tmp_path / "unfused.mlir"
    source.write_text(text.replace(old, new))
    status, out, err = cli(
        capsys, str(source), "-p", "lower-to-loopnest,lower-to-dataflow{arch=flat}"
    )
    assert (status, out) == (1, "")
    assert err.splitlines() == [f"error: {message}"]


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
    """FLAT: QK and AV loop over m1 where the softmax loops over p1."""
    module = api.apply(load(MHA), "map-flat,lower-to-loopnest")
    assert fused_loops(nests(module)) == ("b", "h", "p2")


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
