"""Pass failures about one op of the input are raised with that op (`OpPassFailedException`)
and printed at its place, `file:line:col: error: <pass>: <message>`.

Every raise site in transforms/ and lowering/ (map-search's package aside: its lead changes it)
is found in the source; each one that raises the placed form is exercised here by an input that
fails there, and the op it carries must be the one the case names, at that op's place in the
input. A raise site of the unplaced form must be listed in `UNPLACED` with the reason no op of
the input is at fault.
"""

from __future__ import annotations

import ast
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from xdsl.ir import Operation
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.locations import OpPassFailedException, location_of
from einsum_opt.dialects.loopnest import NestOp
from einsum_opt.tools.diagnostics import format_diagnostic

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SEARCH_INPUTS = Path(__file__).resolve().parent / "map_search"
SCANNED = ("transforms", "lowering")
NOT_SCANNED = ("transforms/map_search",)

UNPLACED: dict[tuple[str, str], str] = {
    ("transforms/apply_mapping.py", "apply_mapping_file"): "the mapping file cannot be read",
    ("transforms/apply_mapping.py", "apply_mapping_text"): "at its place in the mapping file",
    ("transforms/linalg_to_einsum.py", "apply"): "upstream ops parsed without places",
    ("transforms/mapping_roles.py", "roles"): "the architecture option or attachment",
    ("transforms/map_fusemax.py", "map_fusemax"): "the binding option",
    ("transforms/reorder_loops.py", "apply"): "no Einsum has the name the option gives",
    ("transforms/set_ranks.py", "set_rank_sizes"): "no cascade declares the rank",
    ("transforms/set_ranks.py", "apply"): "the sizes option does not parse",
    ("transforms/split_rank.py", "apply"): "no cascade declares the rank",
    ("lowering/loopnest_to_dataflow.py", "lower_to_dataflow"): "the architecture option",
}
"""(file, function) raising the unplaced form -> why no op of the input is at fault."""

UNREACHED: dict[tuple[str, str], str] = {
    ("transforms/count_passes.py", "_rank_state"): "the verifier rejects the read that would "
    "feed a value needing all of a rank back into its own iteration",
    ("lowering/accesses.py", "kernel_accesses"): "place_nest builds only specs the analysis "
    "accepts (a defence against a mistake of ours)",
    ("lowering/placement.py", "_split_spatial"): "a spatial axis beyond 1 is refused first by "
    "stage_shape (units have 1 or 2 axes); map-search's stand-ins for nests reach it unplaced",
}
"""(file, function) with a placed raise that no input of the passes reaches (so no case can):
why."""

_PLACED_CALLS = ("OpPassFailedException",)
_FAIL_HELPERS = ("_fail", "pass_failure")


@dataclass(frozen=True)
class RaiseSite:
    """One `raise` of a pass failure in the source."""

    file: str
    function: str
    line: int
    placed: bool


def _raised_name(node: ast.Raise) -> str | None:
    if not isinstance(node.exc, ast.Call):
        return None
    func = node.exc.func
    return func.id if isinstance(func, ast.Name) else None


def raise_sites() -> list[RaiseSite]:
    """Every `raise` of `PassFailedException`, `OpPassFailedException` or a `_fail` /
    `pass_failure` helper (placed when given the op) in the scanned folders."""
    sites = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(NOT_SCANNED):
                continue
            tree = ast.parse(path.read_text())
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef):
                    continue
                for node in ast.walk(function):
                    if not isinstance(node, ast.Raise):
                        continue
                    name = _raised_name(node)
                    if name not in ("PassFailedException", *_PLACED_CALLS, *_FAIL_HELPERS):
                        continue
                    assert isinstance(node.exc, ast.Call)
                    placed = name in _PLACED_CALLS or (
                        name in _FAIL_HELPERS and len(node.exc.args) + len(node.exc.keywords) > 1
                    )
                    sites.append(RaiseSite(rel, function.name, node.lineno, placed))
    return sites


# -- the cases -------------------------------------------------------------------------------

NESTS = """\
einsum.cascade @softmax(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 16, P = 8) {
  %GM = loopnest.nest on pe1d loops [p = 8 space 0, m = 16] levels [DRAM, GLB] GM[p] = %X[m, p] :: max(m) : !einsum.tensor<[P], f32>
  %SN = loopnest.nest on pe1d loops [m = 16, p = 8 space 0] levels [DRAM, GLB, GLB] SN[m, p] = exp(%X[m, p] - %GM[p]) : !einsum.tensor<[M, P], f32>
  %SD = loopnest.nest on pe1d loops [p = 8 space 0, m = 16] levels [GLB, GLB] SD[p] = %SN[m, p] : !einsum.tensor<[P], f32>
  %A = loopnest.nest on pe1d loops [m = 16, p = 8 space 0] levels [GLB, GLB, DRAM] A[m, p] = %SN[m, p] / %SD[p] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}
"""
"""Loop nests of a softmax on FuseMax's 1D array, which lower to dataflow as they are; each
lowering case changes one nest."""


def nests(nest: str, old: str, new: str, text: str = NESTS) -> str:
    """`text` with `old` replaced by `new` in the line of `nest` only."""
    lines = text.splitlines(keepends=True)
    index = next(i for i, ln in enumerate(lines) if ln.startswith(f"  %{nest} = "))
    assert old in lines[index], (nest, old)
    lines[index] = lines[index].replace(old, new)
    return "".join(lines)


def kernels(*named: tuple[str, str]) -> str:
    """`NESTS` with each (nest, kernel) pair's nest in that kernel."""
    text = NESTS
    for nest, kernel in named:
        text = nests(nest, "on pe1d", f"on pe1d kernel {kernel}", text)
    return text


RUNNING = """\
einsum.cascade @two(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[P], f32> ranks(M = 4, P = 4) {
  %R = loopnest.nest on pe1d loops [m = 4, p = 4] levels [GLB, DRAM, GLB] R[m+1, p] = R[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  %C = loopnest.nest on pe1d loops [m = 4, p = 4] levels [GLB, DRAM, GLB] C[m+1, p] = C[m, p] * %X[m, p] init(1.0) : !einsum.tensor<[M, P], f32>
  %A = loopnest.nest on pe1d loops [p = 4] levels [GLB, GLB, DRAM] A[p] = %R[M, p] + %C[M, p] : !einsum.tensor<[P], f32>
  einsum.return %A : !einsum.tensor<[P], f32>
}
"""
"""Two running values over m, in one pipeline."""

TWO_LOOPS = """\
einsum.cascade @two(%X: !einsum.tensor<[M, P], f32>) -> !einsum.tensor<[M, P], f32> ranks(M = 4, P = 4) {
  %R = loopnest.nest on pe1d loops [m = 4, p = 4] levels [GLB, DRAM, GLB] R[m+1, p] = R[m, p] + %X[m, p] init(0.0) : !einsum.tensor<[M, P], f32>
  %C = loopnest.nest on pe1d loops [p = 4, m = 4] levels [GLB, DRAM, GLB] C[p+1, m] = C[p, m] + %X[m, p] init(0.0) : !einsum.tensor<[P, M], f32>
  %A = loopnest.nest on pe1d loops [m = 4, p = 4] levels [GLB, GLB, DRAM] A[m, p] = %R[M, p] + %C[P, m] : !einsum.tensor<[M, P], f32>
  einsum.return %A : !einsum.tensor<[M, P], f32>
}
"""
"""A running value over m and one over p: two pipelines."""

TANH_SN = """\
  %SN = "loopnest.nest"(%X, %GM) <{tensor = "SN", output = #einsum.indices<[m, p]>, access = [#einsum.indices<[m, p]>, #einsum.indices<[p]>], self_reads = array<i64>, reduce = #einsum.reduce<>, merge = #einsum<merge intersect>, unit = "pe1d", loops = [#loopnest.loop<m = 16>, #loopnest.loop<p = 8 space 0>], levels = ["DRAM", "GLB", "GLB"]}> ({
  ^bb0(%1: f32, %2: f32):
    %3 = "arith.subf"(%1, %2) <{fastmath = #arith.fastmath<none>}> : (f32, f32) -> f32
    %4 = "math.tanh"(%3) <{fastmath = #arith.fastmath<none>}> : (f32) -> f32
    "einsum.yield"(%4) : (f32) -> ()
  }) : (!einsum.tensor<[M, P], f32>, !einsum.tensor<[P], f32>) -> !einsum.tensor<[M, P], f32>
"""
"""SN of `NESTS` in the generic form (which has no place of its own), with tanh: an operation
no unit has a kind for."""


@dataclass(frozen=True)
class Case:
    """An input, a pipeline failing on it, and the op (`@cascade`, or the tensor an Einsum or
    nest computes) the failure must be about."""

    name: str
    source: str
    """A path under examples/ or the text of a .mlir input."""
    pipeline: str
    op: str
    message: str
    """A regular expression the message matches (from its start)."""

    def load(self) -> tuple[object, str]:
        """(the parsed module, the input's name)."""
        if "\n" in self.source:
            return api.parse(self.source, "mlir", f"{self.name}.mlir"), f"{self.name}.mlir"
        path = EXAMPLES / self.source
        return api.load(path), str(path)


def _fusemax_3pass(pipeline: str, op: str, message: str, name: str) -> Case:
    return Case(name, "attention/3pass.einsum", pipeline, op, message)


CASES = [
    # pass-fusion and split-rank: the cascade, or the Einsum that keeps the rank whole
    _fusemax_3pass(
        "pass-fusion{rank=Z}", "@attention", r"pass-fusion: @attention: rank Z", "pf-rank"
    ),
    _fusemax_3pass(
        "pass-fusion{rank=M tile=100}",
        "@attention",
        r"pass-fusion: @attention: tile 100",
        "pf-tile",
    ),
    Case(
        "pf-iterative",
        "attention/2pass.einsum",
        "pass-fusion{rank=M tile=256}",
        "RM",
        r"pass-fusion: @attention: rank M is iterative in einsum RM",
    ),
    Case(
        "split-indexed",
        "attention/1pass.mlir",
        "split-rank{rank=M tile=4}",
        "BK",
        r"split-rank: @attention: einsum BK indexes rank M",
    ),
    _fusemax_3pass(
        "split-rank{rank=M tile=3}", "@attention", r"split-rank: @attention: tile 3", "sr-tile"
    ),
    # set-ranks: the cascade whose rank is derived
    Case(
        "set-derived",
        "attention/1pass.mlir",
        'set-ranks{sizes="M1=2"}',
        "@attention",
        r"set-ranks: @attention: rank M1 is derived",
    ),
    # reorder-loops: the Einsum, also after pass-fusion rewrote it
    _fusemax_3pass(
        "reorder-loops{einsum=SN order=P}", "SN", r"reorder-loops: einsum SN: loop order", "ro"
    ),
    _fusemax_3pass(
        "pass-fusion,reorder-loops{einsum=AV order=P}",
        "AV",
        r"reorder-loops: einsum AV: loop order",
        "ro-fused",
    ),
    # map-fusemax: the running value, or the cascade whose rank an option does not fit
    Case(
        "fm-rank",
        "attention/1pass.einsum",
        "map-fusemax{rank=E}",
        "RM",
        r"map-fusemax: rank E is not a rank of the running value RM",
    ),
    _fusemax_3pass(
        "map-fusemax", "@attention", r"map-fusemax: @attention has no running", "fm-none"
    ),
    Case(
        "fm-buffer",
        "attention/1pass.mlir",
        "map-fusemax{buffer=1000}",
        "@attention",
        r"map-fusemax: the state of 256 queries does not fit",
    ),
    Case(
        "fm-tile",
        "attention/1pass.einsum",
        "map-fusemax{tile=7}",
        "@attention",
        r"map-fusemax: tile 7 does not divide",
    ),
    _fusemax_3pass(
        "pass-fusion{tile=512},map-fusemax",
        "@attention",
        r"map-fusemax: key tile M0 = 512",
        "fm-key",
    ),
    # map-flat, map-unfused: the cascade
    Case(
        "flat-rank",
        "attention/mha.einsum",
        "map-flat{rank=E}",
        "@attention",
        r"map-flat: rank E is not a rank of every",
    ),
    Case(
        "flat-common",
        "attention/1pass.mlir",
        "map-flat",
        "@attention",
        r"map-flat: no rank is common",
    ),
    _fusemax_3pass("map-unfused{tile=384}", "@attention", r"map-unfused: tile 384", "unfused-tile"),
    Case(
        "flat-empty",
        "einsum.cascade @copy(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> "
        "ranks(M = 4) {\n  einsum.return %X : !einsum.tensor<[M], f32>\n}\n",
        "map-flat",
        "@copy",
        r"map-flat: @copy has no Einsum",
    ),
    # lower-to-dataflow: the nest at fault (each nest has its Einsum's place)
    Case(
        "ld-unit",
        "attention/1pass.einsum",
        "lower-to-loopnest,lower-to-dataflow",
        "BK",
        r"lower-to-dataflow: nest BK runs on unit 'default'",
    ),
    Case(
        "ld-einsums",
        "attention/1pass.mlir",
        "lower-to-dataflow",
        "@attention",
        r"lower-to-dataflow: @attention has Einsums that are not loop nests",
    ),
    Case(
        "ld-axis",
        nests("SD", "m = 16", "m = 16 space 1"),
        "lower-to-dataflow",
        "SD",
        r"lower-to-dataflow: nest SD: loop m is spatial on axis 1, but unit 'pe1d' has 1",
    ),
    Case(
        "ld-level",
        nests("SN", "levels [DRAM, GLB, GLB]", "levels [DRAM, L7, GLB]"),
        "lower-to-dataflow",
        "SN",
        r"lower-to-dataflow: nest SN: .* names level 'L7'",
    ),
    Case(
        "ld-keep-order",
        nests("SN", "levels [DRAM, GLB, GLB]", "levels [DRAM, [GLB, DRAM], GLB]"),
        "lower-to-dataflow",
        "SN",
        r"lower-to-dataflow: nest SN: .* out of chain order",
    ),
    Case(
        "ld-split",
        nests("SD", "p = 8 space 0, m = 16", "p = 8, m = 16 space 0")
        .replace("M = 16", "M = 300")
        .replace("m = 16", "m = 300"),
        "lower-to-dataflow",
        "SD",
        r"lower-to-dataflow: nest SD: spatial loop m = 300 does not fit",
    ),
    Case(
        "ld-level-order",
        nests("SD", "p = 8 space 0, m = 16", "p = 8 space 0 at GLB, m = 16 at DRAM"),
        "lower-to-dataflow",
        "SD",
        r"lower-to-dataflow: nest SD: loop m at DRAM is inside a loop at",
    ),
    Case(
        "ld-spatial-first",
        nests("SD", "p = 8 space 0, m = 16", "p = 8 space 0 at GLB, m = 16"),
        "lower-to-dataflow",
        "SD",
        r"lower-to-dataflow: nest SD: at .*, a temporal loop is inside a spatial loop",
    ),
    Case(
        "ld-no-kernel",
        nests("SD", "on pe1d", "on pe1d kernel second"),
        "lower-to-dataflow",
        "GM",
        r"lower-to-dataflow: nest GM has no kernel",
    ),
    Case(
        "ld-no-operation",
        "einsum.cascade @copy(%X: !einsum.tensor<[M], f32>) -> !einsum.tensor<[M], f32> "
        "ranks(M = 4) {\n  %Y = loopnest.nest on pe1d loops [m = 4 space 0] levels [DRAM, DRAM] "
        "Y[m] = %X[m] : !einsum.tensor<[M], f32>\n  einsum.return %Y : !einsum.tensor<[M], f32>\n}\n",
        "lower-to-dataflow",
        "Y",
        r"lower-to-dataflow: nest Y performs no operation",
    ),
    Case(
        "ld-later-kernel",
        nests(
            "SN",
            "levels [DRAM, GLB, GLB]",
            "levels [DRAM, DRAM, GLB]",
            nests(
                "GM",
                "levels [DRAM, GLB]",
                "levels [DRAM, DRAM]",
                kernels(("GM", "one"), ("SN", "two"), ("SD", "one"), ("A", "two")),
            ),
        ),
        "lower-to-dataflow",
        "SD",
        r"lower-to-dataflow: nest SD \(kernel one\) reads SN of kernel two, which runs later",
    ),
    Case(
        "ld-kernel-glb",
        kernels(("GM", "one"), ("SN", "two"), ("SD", "two"), ("A", "two")),
        "lower-to-dataflow",
        "SN",
        r"lower-to-dataflow: nest SN \(kernel two\) reads GM of kernel one from GLB",
    ),
    Case(
        "ld-two-loops",
        TWO_LOOPS,
        "lower-to-dataflow",
        "C",
        r"lower-to-dataflow: running values iterate different loops \(m, p\)",
    ),
    Case(
        "ld-outer-loops",
        nests("C", "loops [m = 4, p = 4]", "loops [p = 4, m = 4]", RUNNING),
        "lower-to-dataflow",
        "C",
        r"lower-to-dataflow: the running values R and C have different loops outside m",
    ),
    Case(
        "ld-op-kind",
        "".join(
            TANH_SN if ln.startswith("  %SN = ") else ln for ln in NESTS.splitlines(keepends=True)
        ),
        "lower-to-dataflow",
        "SN",
        r"lower-to-dataflow: nest SN: no operation kind for 'math.tanh'",
    ),
    # lower-to-linalg: the nest the export (as the interpreter) refuses
    Case(
        "linalg-odd",
        (ROOT / "tests/filecheck/transforms/Inputs/lower-to-linalg-odd.mlir").read_text(),
        "lower-to-linalg",
        "Y",
        r"lower-to-linalg: @odd: nest Y: its loops do not map one-to-one",
    ),
    # map-search (its package is not scanned, this site is placed)
    Case(
        "search-unit",
        "softmax.einsum",
        f'map-search{{arch="{SEARCH_INPUTS / "mac_only.yaml"}" budget=5}}',
        "GM",
        r"map-search: einsum GM needs the operations max",
    ),
]


def _named(module: object, name: str) -> Operation:
    """The cascade `@name`, or the Einsum or nest computing `name`, of a freshly parsed input."""
    assert isinstance(module, Operation)
    for cascade in cascades_in(module):
        if name == f"@{cascade.cascade_name}":
            return cascade
        for op in cascade.body.block.ops:
            if isinstance(op, EinsumOp | NestOp) and op.tensor_name == name:
                return op
    raise AssertionError(f"no op {name} in the input")


def _failure(case: Case) -> tuple[OpPassFailedException, RaiseSite, str]:
    """The failure of `case`'s pipeline, where it was raised, and its diagnostic line."""
    module, name = case.load()
    assert isinstance(module, Operation)
    with pytest.raises(PassFailedException) as info:
        api.apply(module, case.pipeline)  # type: ignore[arg-type]
    error = info.value
    assert isinstance(error, OpPassFailedException), f"{case.name}: unplaced: {error}"
    frame = traceback.extract_tb(error.__traceback__)[-1]
    assert frame.lineno is not None
    rel = Path(frame.filename).resolve().relative_to(ROOT).as_posix()
    site = RaiseSite(rel, frame.name, frame.lineno, True)
    return error, site, format_diagnostic(error, name)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_is_at_the_place_of_its_op(case: Case) -> None:
    error, _, line = _failure(case)
    module, name = case.load()
    expected = location_of(_named(module, case.op))
    assert expected is not None
    assert location_of(error.op) == expected
    if case.op.startswith("@"):
        assert isinstance(error.op, CascadeOp)
    prefix = f"{expected}: error: "
    assert line.startswith(prefix), line
    assert re.match(case.message, line.removeprefix(prefix)), line
    assert str(error) == line.removeprefix(prefix) or "…" in line


def test_every_placed_raise_site_is_exercised() -> None:
    exercised = {(s.file, s.line) for s in (_failure(c)[1] for c in CASES)}
    placed = [s for s in raise_sites() if s.placed]
    missing = [
        f"{s.file}:{s.line} ({s.function})"
        for s in placed
        if (s.file, s.line) not in exercised and (s.file, s.function) not in UNREACHED
    ]
    assert not missing, "placed raise sites no case reaches: " + ", ".join(missing)
    unreached = {(s.file, s.function) for s in placed if (s.file, s.line) not in exercised}
    stale = set(UNREACHED) - unreached
    assert not stale, f"UNREACHED lists functions whose placed raises cases reach: {stale}"


def test_every_unplaced_raise_site_has_no_op_at_fault() -> None:
    sites = raise_sites()
    assert len(sites) > 30 and any(s.placed for s in sites)  # the scan sees the raises
    unlisted = [
        f"{s.file}:{s.line} ({s.function})"
        for s in sites
        if not s.placed and (s.file, s.function) not in UNPLACED
    ]
    assert not unlisted, "unplaced pass failures not in UNPLACED: " + ", ".join(unlisted)
    stale = set(UNPLACED) - {(s.file, s.function) for s in sites if not s.placed}
    assert not stale, f"UNPLACED lists sites that no longer raise unplaced: {sorted(stale)}"


def test_a_failure_without_an_op_keeps_its_unplaced_form() -> None:
    module = api.load(EXAMPLES / "attention" / "3pass.mlir")
    with pytest.raises(PassFailedException) as info:
        api.apply(module, "reorder-loops{einsum=XX order=P}")
    assert not isinstance(info.value, OpPassFailedException)
    assert format_diagnostic(info.value) == "error: reorder-loops: no einsum named XX"


def test_a_placed_failure_crosses_processes_as_the_plain_one() -> None:
    """map-search's workers send failures back pickled: ops do not pickle, places are the
    sending process's."""
    import pickle

    module = api.load(EXAMPLES / "attention" / "3pass.mlir")
    error = OpPassFailedException(_named(module, "SN"), "reorder-loops: einsum SN: bad")
    received = pickle.loads(pickle.dumps(error))
    assert type(received) is PassFailedException
    assert str(received) == "reorder-loops: einsum SN: bad"
