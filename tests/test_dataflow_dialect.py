"""The dataflow dialect: Python constructors, accessors, text forms and verifier messages."""

from __future__ import annotations

import io

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from einsum_opt.dialects.dataflow import (
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    TransferOp,
    programs_in,
)
from einsum_opt.frontends.loading import parse_mlir


def text(op: ModuleOp, generic: bool = False) -> str:
    buf = io.StringIO()
    Printer(stream=buf, print_generic_format=generic).print_op(op)
    return buf.getvalue()


def attention_program() -> ProgramOp:
    stages = [
        ComputeOp("QK", "pe2d", 32768, 64, {"mac": 1}, [256, 256]),
        ComputeOp("LM", "pe2d", 32768, 1, {"max": 1}, [256, 256], after=["QK"]),
        ComputeOp("RM", "pe1d", 32768, 1, {"max": 1}, [256], after=["LM"], carried=["RM"]),
        ComputeOp("SLN", "pe2d", 32768, 1, {"exp": 1, "add": 1}, [256, 256], after=["RM"]),
        ComputeOp("AV", "pe1d", 128, 64, {"div": 1}, [256], after=["SLN"]),
    ]
    return ProgramOp(
        "attention",
        "fusemax",
        [
            RepeatOp("b, h, p2", 1536, [PipelineOp("m1, p1", 32768, stages)]),
            TransferOp("QK", "BK", "DRAM", "GLB", 805306368),
            BufferOp("GLB", {"Q": 8388608, "RM": 65536}),
        ],
    )


EXPECTED = """\
builtin.module {
  dataflow.program @attention arch "fusemax" {
    dataflow.repeat "b, h, p2" count 1536 {
      dataflow.pipeline "m1, p1" count 32768 {
        dataflow.compute @QK on pe2d runs 32768 times 64 ops {mac = 1} extent [256, 256]
        dataflow.compute @LM on pe2d runs 32768 times 1 ops {max = 1} extent [256, 256] after [@QK]
        dataflow.compute @RM on pe1d runs 32768 times 1 ops {max = 1} extent [256] after [@LM] carried [@RM]
        dataflow.compute @SLN on pe2d runs 32768 times 1 ops {exp = 1, add = 1} extent [256, 256] after [@RM]
        dataflow.compute @AV on pe1d runs 128 times 64 ops {div = 1} extent [256] after [@SLN]
      }
    }
    dataflow.transfer @QK "BK" from DRAM to GLB bytes 805306368
    dataflow.buffer GLB bytes 8454144 holds ["Q" = 8388608, "RM" = 65536]
  }
}"""


def test_constructors_print_the_documented_text_form() -> None:
    module = ModuleOp([attention_program()])
    module.verify()
    assert text(module).strip() == EXPECTED


@pytest.mark.parametrize("generic", [False, True])
def test_round_trip_in_both_forms(generic: bool) -> None:
    module = ModuleOp([attention_program()])
    printed = text(module, generic)
    again = parse_mlir(printed, "<test>")
    again.verify()
    assert text(again, generic) == printed
    assert text(again).strip() == EXPECTED


def test_accessors() -> None:
    program = attention_program()
    assert program.program_name == "attention"
    assert program.arch_name == "fusemax"
    repeat = next(iter(program.body.block.ops))
    assert isinstance(repeat, RepeatOp)
    assert (repeat.loop_names, repeat.count_value) == ("b, h, p2", 1536)
    pipeline = next(iter(repeat.body.block.ops))
    assert isinstance(pipeline, PipelineOp)
    assert pipeline.count_value == 32768
    rm = pipeline.stages()[2]
    assert (rm.einsum_name, rm.unit_name, rm.runs_value, rm.times_value) == ("RM", "pe1d", 32768, 1)
    assert rm.op_counts() == {"max": 1}
    assert rm.extent_list() == [256]
    assert rm.after_names() == ["LM"]
    assert rm.carried_names() == ["RM"]
    sln = pipeline.stages()[3]
    assert sln.op_counts() == {"exp": 1, "add": 1}
    transfer, buffer = list(program.body.block.ops)[1:]
    assert isinstance(transfer, TransferOp)
    assert (transfer.einsum_name, transfer.tensor_name) == ("QK", "BK")
    assert (transfer.source_level, transfer.dest_level, transfer.bytes_value) == (
        "DRAM",
        "GLB",
        805306368,
    )
    assert isinstance(buffer, BufferOp)
    assert buffer.level_name == "GLB"
    assert buffer.holds_map() == {"Q": 8388608, "RM": 65536}
    assert buffer.bytes_value == 8454144
    assert programs_in(ModuleOp([program])) == [program]


def verify_error(*ops: object) -> str:
    program = ProgramOp("p", "fusemax", list(ops))  # type: ignore[arg-type]
    with pytest.raises(VerifyException) as info:
        ModuleOp([program]).verify()
    return str(info.value)


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (
            [ComputeOp("A", "pe2d", 0, 1, {"mac": 1}, [4])],
            "compute @A: runs must be positive, got 0",
        ),
        (
            [ComputeOp("A", "pe2d", 1, 0, {"mac": 1}, [4])],
            "compute @A: times must be positive, got 0",
        ),
        (
            [ComputeOp("A", "pe2d", 1, 1, {"mac": 1}, [4, -1])],
            "compute @A: extent must be positive, got [4, -1]",
        ),
        (
            [ComputeOp("A", "pe2d", 1, 1, {"fma": 1}, [4])],
            "compute @A: unknown operation kind 'fma'",
        ),
        (
            [ComputeOp("A", "pe2d", 1, 1, {"mac": 0}, [4])],
            "compute @A: ops count of mac must be positive, got 0",
        ),
        ([ComputeOp("A", "pe2d", 1, 1, {}, [4])], "compute @A: ops must list at least one"),
        (
            [PipelineOp("m1", 4, [ComputeOp("A", "pe2d", 5, 1, {"mac": 1}, [4])])],
            "compute @A: runs 5 exceeds the enclosing pipeline's count 4",
        ),
        (
            [PipelineOp("m1", 4, [ComputeOp("A", "pe2d", 4, 1, {"mac": 1}, [4], after=["B"])])],
            "compute @A: after names @B, which is not a compute stage of the same pipeline",
        ),
        (
            [
                ComputeOp("B", "pe2d", 4, 1, {"mac": 1}, [4]),
                PipelineOp("m1", 4, [ComputeOp("A", "pe2d", 4, 1, {"mac": 1}, [4], carried=["B"])]),
            ],
            "compute @A: carried names @B, which is not a compute stage of the same pipeline",
        ),
        (
            [
                PipelineOp(
                    "m1",
                    4,
                    [
                        ComputeOp("A", "pe2d", 4, 1, {"mac": 1}, [4], after=["B"]),
                        ComputeOp("B", "pe2d", 4, 1, {"mac": 1}, [4], after=["A"]),
                    ],
                )
            ],
            'pipeline "m1": the after dependencies form a cycle: @A -> @B -> @A',
        ),
        (
            [
                ComputeOp("A", "pe2d", 4, 1, {"mac": 1}, [4]),
                ComputeOp("A", "pe1d", 4, 1, {"mac": 1}, [4]),
            ],
            "program @p: two compute stages named @A in one block",
        ),
        ([RepeatOp("b", 0, [])], 'repeat "b": count must be positive, got 0'),
        ([PipelineOp("m", 0, [])], 'pipeline "m": count must be positive, got 0'),
        (
            [PipelineOp("m", 2, [RepeatOp("e", 2, [])])],
            'pipeline "m": a pipeline holds compute stages, not a dataflow.repeat',
        ),
        ([ProgramOp("q", "fusemax", [])], "program @q: programs do not nest"),
        (
            [TransferOp("A", "X", "DRAM", "GLB", -1)],
            'transfer @A "X": bytes must be non-negative, got -1',
        ),
        (
            [TransferOp("A", "X", "GLB", "GLB", 1)],
            'transfer @A "X": source and destination are the same level GLB',
        ),
        (
            [BufferOp("GLB", {"X": -4})],
            'buffer GLB: "X" must hold a non-negative number of bytes, got -4',
        ),
    ],
)
def test_verifier_messages(ops: list[object], message: str) -> None:
    assert message in verify_error(*ops)


def test_empty_arch_is_rejected() -> None:
    with pytest.raises(VerifyException, match="program @p: arch must not be empty"):
        ModuleOp([ProgramOp("p", "", [])]).verify()


@pytest.mark.parametrize(
    "op",
    [
        ComputeOp("A", "pe2d", 1, 1, {"mac": 1}, [4]),
        RepeatOp("b", 2, []),
        TransferOp("A", "X", "DRAM", "GLB", 4),
        BufferOp("GLB", {"X": 4}),
    ],
)
def test_ops_must_be_inside_a_program(op: object) -> None:
    with pytest.raises(VerifyException, match="must be inside a dataflow.program"):
        ModuleOp([op]).verify()  # type: ignore[list-item]


def test_after_may_reference_a_later_stage_and_stages_of_a_plain_block() -> None:
    program = ProgramOp(
        "p",
        "fusemax",
        [
            ComputeOp("B", "pe2d", 4, 1, {"mac": 1}, [4], after=["A"]),
            ComputeOp("A", "pe2d", 4, 1, {"mac": 1}, [4], carried=["A", "B"]),
        ],
    )
    ModuleOp([program]).verify()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'dataflow.program @p arch "fusemax" {\n dataflow.buffer GLB bytes 5 holds ["X" = 4]\n}',
            "buffer GLB: bytes 5 is not the sum of what it holds (4)",
        ),
        (
            'dataflow.program @p arch "fusemax" {\n'
            ' dataflow.buffer GLB bytes 8 holds ["X" = 4, "X" = 4]\n}',
            "buffer GLB: a tensor is listed twice",
        ),
        (
            'dataflow.program @p arch "fusemax" {\n'
            " dataflow.compute @A on pe2d runs 1 times 1 ops {mac = 1, mac = 1} extent [4]\n}",
            "compute @A: an operation kind is listed twice",
        ),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    with pytest.raises(ParseError, match="listed twice|not the sum") as info:
        parse_mlir(source, "<test>")
    assert message in str(info.value)
