"""The dataflow dialect: Python constructors, accessors, text forms and verifier messages."""

from __future__ import annotations

import io

import pytest
from xdsl.dialects.builtin import ModuleOp
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError, VerifyException

from einsum_opt.dialects.dataflow import (
    AccessOp,
    BufferOp,
    ComputeOp,
    PipelineOp,
    ProgramOp,
    RepeatOp,
    programs_in,
)
from einsum_opt.frontends.loading import parse_mlir

HUGE = 3 * 2**70  # counts are unbounded integers: 1M tokens of a large model exceed 2^64


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
            AccessOp("QK", "Q", "DRAM", 3221225472, 0, 0, 3221225472, 1),
            AccessOp("QK", "Q", "pe2d.PE", HUGE, 7, 0, 1, 65536),
            AccessOp("RM", "RM", "GLB", 12834570240, 0, 12884901888, 32768, 1),
            BufferOp("GLB", {"Q": 4194304, "K, RM": 65536}),
        ],
    )


EXPECTED = f"""\
builtin.module {{
  dataflow.program @attention arch "fusemax" {{
    dataflow.repeat "b, h, p2" count 1536 {{
      dataflow.pipeline "m1, p1" count 32768 {{
        dataflow.compute @QK on pe2d runs 32768 times 64 ops {{mac = 1}} extent [256, 256]
        dataflow.compute @LM on pe2d runs 32768 times 1 ops {{max = 1}} extent [256, 256] after [@QK]
        dataflow.compute @RM on pe1d runs 32768 times 1 ops {{max = 1}} extent [256] after [@LM] carried [@RM]
        dataflow.compute @SLN on pe2d runs 32768 times 1 ops {{exp = 1, add = 1}} extent [256, 256] after [@RM]
        dataflow.compute @AV on pe1d runs 128 times 64 ops {{div = 1}} extent [256] after [@SLN]
      }}
    }}
    dataflow.access @QK "Q" at DRAM reads 3221225472 fills 0 updates 0 capacity 3221225472 instances 1
    dataflow.access @QK "Q" at pe2d.PE reads {HUGE} fills 7 updates 0 capacity 1 instances 65536
    dataflow.access @RM "RM" at GLB reads 12834570240 fills 0 updates 12884901888 capacity 32768 instances 1
    dataflow.buffer GLB bytes 4259840 holds ["Q" = 4194304, "K, RM" = 65536]
  }}
}}"""


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
    assert (repeat.loop_names, repeat.count_value, repeat.is_serial) == ("b, h, p2", 1536, False)
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
    dram, registers, glb, buffer = list(program.body.block.ops)[1:]
    assert isinstance(dram, AccessOp) and isinstance(registers, AccessOp)
    assert isinstance(glb, AccessOp)
    assert (dram.einsum_name, dram.tensor_name, dram.level_name) == ("QK", "Q", "DRAM")
    assert dram.counts() == (3221225472, 0, 0)
    assert (dram.capacity_value, dram.instances_value) == (3221225472, 1)
    assert registers.level_name == "pe2d.PE"
    assert registers.counts() == (HUGE, 7, 0)  # summed over the 65536 instances, unbounded
    assert registers.instances_value == 65536
    assert glb.counts() == (12834570240, 0, 12884901888)
    assert isinstance(buffer, BufferOp)
    assert buffer.level_name == "GLB"
    assert buffer.holds_map() == {"Q": 4194304, "K, RM": 65536}  # a shared allocation
    assert buffer.bytes_value == 4194304 + 65536
    assert programs_in(ModuleOp([program])) == [program]


def test_access_counts_beyond_64_bits_parse_back() -> None:
    source = (
        'dataflow.program @p arch "flat" {\n'
        f' dataflow.access @A "X" at GLB reads {HUGE} fills {HUGE + 1} updates {2**64} '
        f"capacity {2**65} instances 3\n}}"
    )
    (program,) = programs_in(parse_mlir(source, "<test>"))
    (access,) = program.body.block.ops
    assert isinstance(access, AccessOp)
    assert access.counts() == (HUGE, HUGE + 1, 2**64)
    assert (access.capacity_value, access.instances_value) == (2**65, 3)


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
            [AccessOp("A", "X", "GLB", -1, 0, 0, 1, 1)],
            'access @A "X" at GLB: reads must be non-negative, got -1',
        ),
        (
            [AccessOp("A", "X", "GLB", 0, -2, 0, 1, 1)],
            'access @A "X" at GLB: fills must be non-negative, got -2',
        ),
        (
            [AccessOp("A", "X", "DRAM", 0, 0, -3, 1, 1)],
            'access @A "X" at DRAM: updates must be non-negative, got -3',
        ),
        (
            [AccessOp("A", "X", "pe2d.PE", 0, 0, 0, -4, 1)],
            'access @A "X" at pe2d.PE: capacity must be non-negative, got -4',
        ),
        (
            [AccessOp("A", "X", "GLB", 1, 0, 0, 1, 0)],
            'access @A "X" at GLB: instances must be positive, got 0',
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
        AccessOp("A", "X", "GLB", 4, 4, 0, 4, 1),
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


def test_a_serial_pipeline_prints_and_parses() -> None:
    source = (
        'dataflow.program @p arch "fusemax" {\n'
        '  dataflow.pipeline "m1" count 4 serial {\n'
        "    dataflow.compute @A on pe2d runs 4 times 1 ops {mac = 1} extent [4]\n  }\n}"
    )
    module = parse_mlir(source, "<test>")
    module.verify()
    (pipeline,) = [op for op in module.walk() if isinstance(op, PipelineOp)]
    assert pipeline.is_serial
    assert "count 4 serial {" in text(module)


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
        (
            'dataflow.program @p arch "fusemax" {\n dataflow.repeat "b" count 2 serial {\n }\n}',
            "only a dataflow.pipeline can be serial",
        ),
        (
            'dataflow.program @p arch "fusemax" {\n'
            ' dataflow.access @A "X" at GLB reads 1 fills 2 capacity 3 instances 1\n}',
            "Expected 'updates'",
        ),
    ],
)
def test_parse_errors(source: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_mlir(source, "<test>")
    assert message in str(info.value)
