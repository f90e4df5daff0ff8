"""`apply-mapping`: FuseMax's mapping of the 1-pass cascade from a TeAAL-style file, and the
errors a bad mapping file gives (unchanged IR, one line naming the file and place)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from einsum_opt import api
from einsum_opt.dialects.einsum import CascadeOp, EinsumOp
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.transforms.apply_mapping import (
    ApplyMappingPass,
    apply_mapping_file,
    apply_mapping_text,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ONE_PASS = EXAMPLES / "attention" / "1pass.mlir"
FUSEMAX = EXAMPLES / "attention" / "fusemax_mapping.yaml"
EINSUM_OPT = str(Path(sys.executable).parent / "einsum-opt")


def einsums(module: ModuleOp) -> dict[str, EinsumOp]:
    """The Einsums of the module's cascade by name."""
    (cascade,) = [op for op in module.ops if isinstance(op, CascadeOp)]
    return {op.tensor_name: op for op in cascade.einsums()}


def mapping(op: EinsumOp) -> MappingAttr:
    """An Einsum's mapping."""
    attr = op.attributes[MAPPING_ATTR]
    assert isinstance(attr, MappingAttr)
    return attr


def test_fusemax_mapping_applies_and_verifies() -> None:
    module = api.load(ONE_PASS)
    api.apply(module, [ApplyMappingPass(file=str(FUSEMAX))])
    module.verify()
    ops = einsums(module)
    assert all(MAPPING_ATTR in op.attributes for op in ops.values())
    for name, op in ops.items():
        m = mapping(op)
        has_m0 = "m0" in op.variables()
        assert m.unit_name == ("pe2d" if has_m0 else "pe1d"), name
        if "p" in op.variables():
            assert m.partitions == {"P": [256]}
            assert m.spatial == ({"P0": 0, "M0": 1} if has_m0 else {"P0": 0}), name
            assert m.loop_order[-1] == ("M0" if has_m0 else "P0"), name
        if "m1" in op.variables():
            assert m.loop_order[0] == "M1", name
    assert mapping(ops["QK"]) == MappingAttr.make(
        "pe2d",
        ["M1", "P1", "E", "P0", "M0"],
        {"P": [256]},
        {"P0": 0, "M0": 1},
        {"Q": "GLB", "BK": "GLB", "QK": "PE"},
    )
    assert mapping(ops["RM"]) == MappingAttr.make(
        "pe1d", ["M1", "P1", "P0"], {"P": [256]}, {"P0": 0}
    )
    # The mapped cascade prints and parses back.
    again = api.parse(str(module))
    assert str(again) == str(module)


def test_mapping_does_not_change_results() -> None:
    module = api.load(ONE_PASS)
    api.set_rank_sizes(module, {"E": 4, "F": 4, "M": 512, "P": 256})
    before = module.clone()
    api.apply(module, f'apply-mapping{{file="{FUSEMAX}"}}')
    api.check_equivalent(before, module)


def test_cli() -> None:
    result = subprocess.run(
        [EINSUM_OPT, str(ONE_PASS), "-p", f'apply-mapping{{file="{FUSEMAX}"}}'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "unit = pe2d, loops = [M1, P1, E, P0, M0], partition = {P = [256]}" in result.stdout
    result = subprocess.run(
        [EINSUM_OPT, str(ONE_PASS), "-p", 'apply-mapping{file="no/such.yaml"}'],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == "error: apply-mapping: cannot read 'no/such.yaml': no such file\n"


def test_replaces_only_the_named_einsums() -> None:
    module = api.load(ONE_PASS)
    apply_mapping_file(module, FUSEMAX)
    apply_mapping_text(module, "bindings:\n  QK: other\n", "m.yaml")
    ops = einsums(module)
    assert mapping(ops["QK"]) == MappingAttr.make("other")
    assert mapping(ops["LM"]).unit_name == "pe2d"


BAD: list[tuple[str, str]] = [
    (
        "bindings:\n  QQ: pe2d\n",
        "m.yaml:2:3: mapping for QQ, which no Einsum writes (Einsums: BK, BV, QK, LM, RM, SLN, PRM, SPD, SLD, RD, SPNV, SLNV, RNV, AV)",
    ),
    (
        "mapping:\n  loop-order:\n    QK: [M1, P, M0]\n",
        "m.yaml:3:9: loop-order of QK [M1, P, M0] is not a permutation of its loop ranks [M1, M0, P, E]",
    ),
    (
        "mapping:\n  loop-order:\n    QK: [M1, M0, P, P, E]\n",
        "m.yaml:3:9: loop-order of QK [M1, M0, P, P, E] is not a permutation of its loop ranks [M1, M0, P, E]",
    ),
    (
        "mapping:\n  spacetime:\n    RM: {space: [M1], time: [P]}\n",
        "m.yaml:3:5: einsum RM: iterative rank M1 cannot be spatial (each step needs the previous)",
    ),
    (
        "mapping:\n  partitioning:\n    QK: {P: [uniform_shape(300)]}\n",
        "m.yaml:3:10: einsum QK: partition P = [300]: 300 does not divide 1024",
    ),
    (
        "mapping:\n  partitioning:\n    RM: {M1: [uniform_shape(2)]}\n",
        "m.yaml:3:10: einsum RM: iterative rank M1 cannot be partitioned",
    ),
    (
        "mapping:\n  loop-order:\n    QK: [M1, M0, P, Q]\n",
        "m.yaml:3:21: loop-order of QK names rank Q, which is not one of its loop ranks [M1, M0, P, E]",
    ),
    (
        "storage:\n  QK: {V: GLB}\n",
        "m.yaml:2:3: einsum QK: storage level given for V, which it neither reads nor writes",
    ),
    (
        "mapping: [\n",
        "m.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'",
    ),
    ("einsum: {}\n", "m.yaml: no mapping, bindings, storage section: nothing to apply"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_errors_leave_the_module_unchanged(text: str, message: str) -> None:
    module = api.load(ONE_PASS)
    apply_mapping_file(module, FUSEMAX)
    before = str(module)
    with pytest.raises(PassFailedException) as info:
        apply_mapping_text(module, text, "m.yaml", warn=lambda _: None)
    assert str(info.value) == f"apply-mapping: {message}"
    assert str(module) == before


def test_missing_file() -> None:
    module = api.load(ONE_PASS)
    with pytest.raises(
        PassFailedException, match=r"^apply-mapping: cannot read 'nope\.yaml': no such file$"
    ):
        apply_mapping_file(module, "nope.yaml")


def test_warnings() -> None:
    lines: list[str] = []
    module = api.load(ONE_PASS)
    text = "mapping:\n  rank-order: {Q: [P, E]}\n  loop-order: {AV: [F, P]}\nformat: {}\n"
    apply_mapping_text(module, text, "m.yaml", warn=lines.append)
    assert lines == [
        "warning: m.yaml:4: section 'format' is not read by apply-mapping (it reads mapping, "
        "bindings, storage); ignored",
        "warning: m.yaml:2: mapping.rank-order is not part of #einsum.mapping; ignored",
    ]
    assert mapping(einsums(module)["AV"]) == MappingAttr.make("default", ["F", "P"])
