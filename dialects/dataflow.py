"""The dataflow dialect: what the hardware does, as an analytic program the cost model interprets.

```
dataflow.program @attention arch "fusemax" {
  dataflow.repeat "b, h, p2" count 1536 {
    dataflow.pipeline "m1, p1" count 32768 {
      dataflow.compute @QK on pe2d runs 32768 times 64 ops {mac = 1} extent [256, 256]
      dataflow.compute @LM on pe2d runs 32768 times 1 ops {max = 1} extent [256, 256] after [@QK]
      dataflow.compute @RM on pe1d runs 32768 times 1 ops {max = 1} extent [256] carried [@RM]
    }
  }
  dataflow.access @QK "K" at DRAM reads 6442450944 fills 0 updates 0 capacity 3221225472 instances 1
  dataflow.access @QK "K" at GLB reads 824633720832 fills 6442450944 updates 0 capacity 16384 ...
  dataflow.buffer GLB bytes 8585216 holds ["Q" = 4194304, "K" = 32768, "RM" = 65536, ...]
}
```

Repetition is a count, never unrolled: a 1M-token cascade is the same size of IR as a 1K one.
See `docs/dataflow.md` for the meaning of every op; `costmodel/model.py` interprets them.
Regions are single blocks without terminators.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DenseArrayBase,
    DictionaryAttr,
    IntAttr,
    StringAttr,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, Operation, Region
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    region_def,
    traits_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import NoTerminator
from xdsl.utils.lexer import Span

from einsum_opt.dialects.locations import OpVerifyException, record_location

OP_KINDS: tuple[str, ...] = ("mac", "mul", "add", "max", "exp", "div", "sqrt", "log")
"""Operation kinds a compute stage may count (the same as `costmodel.architecture.OP_KINDS`)."""


# -- helpers ----------------------------------------------------------------------------------


def _int(value: int) -> IntAttr:
    return IntAttr(value)


def _names(names: Sequence[str]) -> ArrayAttr[StringAttr]:
    return ArrayAttr([StringAttr(n) for n in names])


def _block_of(ops: Sequence[Operation]) -> Region:
    return Region(Block(list(ops)))


def _start(parser: Parser) -> Span[str]:
    from einsum_opt.dialects.locations import next_token_span  # public parser API only

    return next_token_span(parser)


def _parse_count(parser: Parser, keyword: str) -> int:
    parser.parse_keyword(keyword)
    return parser.parse_integer(allow_boolean=False, allow_negative=True)


def _parse_body(parser: Parser) -> Region:
    region = parser.parse_region()
    if not region.blocks:
        region.add_block(Block())
    return region


def _print_body(printer: Printer, region: Region) -> None:
    printer.print_string(" ")
    printer.print_region(region, print_entry_block_args=False, print_empty_block=False)


def _parse_symbol_list(parser: Parser) -> list[str]:
    return [
        s.data
        for s in parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, parser.parse_symbol_name
        )
    ]


def _print_symbol_list(printer: Printer, names: Sequence[str]) -> None:
    printer.print_string("[")
    printer.print_list(names, printer.print_symbol_name)
    printer.print_string("]")


def _enclosing_program(op: Operation) -> ProgramOp | None:
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, ProgramOp):
        parent = parent.parent_op()
    return parent


def _check_inside_program(op: Operation, what: str) -> None:
    if _enclosing_program(op) is None:
        raise OpVerifyException(op, f"{what}: must be inside a dataflow.program")


def _check_count(op: Operation, what: str, field: str, value: int) -> None:
    if value <= 0:
        raise OpVerifyException(op, f"{what}: {field} must be positive, got {value}")


def _check_block_stages(container: Operation, what: str, block: Block) -> None:
    """The compute stages of one block: unique names, `after`/`carried` name stages of the
    block, and `after` is acyclic."""
    stages: dict[str, ComputeOp] = {}
    for op in block.ops:
        if isinstance(op, ComputeOp):
            if op.einsum_name in stages:
                raise OpVerifyException(
                    op, f"{what}: two compute stages named @{op.einsum_name} in one block"
                )
            stages[op.einsum_name] = op
    where = "pipeline" if isinstance(container, PipelineOp) else "block"
    for stage in stages.values():
        for kind, names in (("after", stage.after_names()), ("carried", stage.carried_names())):
            for name in names:
                if name not in stages:
                    raise OpVerifyException(
                        stage,
                        f"compute @{stage.einsum_name}: {kind} names @{name}, which is not a "
                        f"compute stage of the same {where}",
                    )
    # `after` must be acyclic: depth-first search with colours.
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for dep in stages[name].after_names():
            if state.get(dep) == 1:
                cycle = [*path[path.index(dep) :], dep]
                raise OpVerifyException(
                    stages[name],
                    f"{what}: the after dependencies form a cycle: "
                    + " -> ".join(f"@{n}" for n in cycle),
                )
            if dep not in state:
                visit(dep)
        path.pop()
        state[name] = 2

    for name in stages:
        if name not in state:
            visit(name)


# -- containers -------------------------------------------------------------------------------


@irdl_op_definition
class ProgramOp(IRDLOperation):
    """`dataflow.program @name arch "NAME" { ... }`: one cascade on one architecture; its body
    runs in program order."""

    name = "dataflow.program"
    sym_name = prop_def(StringAttr)
    arch = prop_def(StringAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def __init__(self, name: str, arch: str, body: Sequence[Operation]):
        super().__init__(
            properties={"sym_name": StringAttr(name), "arch": StringAttr(arch)},
            regions=[_block_of(body)],
        )

    @property
    def program_name(self) -> str:
        """The program's name (without `@`)."""
        return self.sym_name.data

    @property
    def arch_name(self) -> str:
        """The architecture the program was lowered for."""
        return self.arch.data

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.program_name)
        printer.print_string(" arch ")
        printer.print_string_literal(self.arch_name)
        printer.print_op_attributes(self.attributes, print_keyword=True)
        _print_body(printer, self.body)

    @classmethod
    def parse(cls, parser: Parser) -> ProgramOp:
        start = _start(parser)
        name = parser.parse_symbol_name().data
        parser.parse_keyword("arch")
        arch = parser.parse_str_literal()
        attrs = parser.parse_optional_attr_dict_with_keyword()
        op = cls.create(
            properties={"sym_name": StringAttr(name), "arch": StringAttr(arch)},
            regions=[_parse_body(parser)],
        )
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op

    def verify_(self) -> None:
        if not self.arch_name:
            raise OpVerifyException(self, f"program @{self.program_name}: arch must not be empty")
        if _enclosing_program(self) is not None:
            raise OpVerifyException(self, f"program @{self.program_name}: programs do not nest")
        _check_block_stages(self, f"program @{self.program_name}", self.body.block)


class _LoopContainer(IRDLOperation):
    """Shared text form and accessors of `repeat` and `pipeline`: `"loops" count N { ... }`."""

    loops = prop_def(StringAttr)
    count = prop_def(IntAttr)
    serial = opt_prop_def(UnitAttr)
    body = region_def("single_block")
    traits = traits_def(NoTerminator())

    def __init__(self, loops: str, count: int, body: Sequence[Operation], serial: bool = False):
        props: dict[str, Attribute] = {"loops": StringAttr(loops), "count": _int(count)}
        if serial:
            props["serial"] = UnitAttr()
        super().__init__(properties=props, regions=[_block_of(body)])

    @property
    def is_serial(self) -> bool:
        """Whether iterations run one at a time (a pipeline with `serial`; a repeat always)."""
        return self.serial is not None

    @property
    def loop_names(self) -> str:
        """The loop variables this op stands for (documentation and diagnostics only)."""
        return self.loops.data

    @property
    def count_value(self) -> int:
        """How many times (iterations) the body runs."""
        return self.count.data

    def describe(self) -> str:
        """How diagnostics name this op."""
        return f'{self.name.removeprefix("dataflow.")} "{self.loop_names}"'

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.loop_names)
        printer.print_string(f" count {self.count_value}")
        if self.serial is not None:
            printer.print_string(" serial")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        _print_body(printer, self.body)

    @classmethod
    def parse(cls, parser: Parser) -> _LoopContainer:
        start = _start(parser)
        loops = parser.parse_str_literal()
        count = _parse_count(parser, "count")
        props: dict[str, Attribute] = {"loops": StringAttr(loops), "count": _int(count)}
        if parser.parse_optional_keyword("serial") is not None:
            if cls is not PipelineOp:
                parser.raise_error("only a dataflow.pipeline can be serial", start)
            props["serial"] = UnitAttr()
        attrs = parser.parse_optional_attr_dict_with_keyword()
        op = cls.create(properties=props, regions=[_parse_body(parser)])
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op

    def verify_(self) -> None:
        what = self.describe()
        _check_inside_program(self, what)
        if self.serial is not None and not isinstance(self, PipelineOp):
            raise OpVerifyException(self, f"{what}: only a dataflow.pipeline can be serial")
        _check_count(self, what, "count", self.count_value)
        _check_block_stages(self, what, self.body.block)


@irdl_op_definition
class RepeatOp(_LoopContainer):
    """`dataflow.repeat "loops" count N { ... }`: the body N times, one after another."""

    name = "dataflow.repeat"


@irdl_op_definition
class PipelineOp(_LoopContainer):
    """`dataflow.pipeline "loops" count N { ... }`: N overlapping iterations of its compute
    stages (software pipelining across tiles)."""

    name = "dataflow.pipeline"

    def verify_(self) -> None:
        super().verify_()
        for op in self.body.block.ops:
            if isinstance(op, RepeatOp | PipelineOp):
                raise OpVerifyException(
                    op, f"{self.describe()}: a pipeline holds compute stages, not a {op.name}"
                )

    def stages(self) -> list[ComputeOp]:
        """The compute stages of one iteration, in program order."""
        return [op for op in self.body.block.ops if isinstance(op, ComputeOp)]


# -- leaves -----------------------------------------------------------------------------------


@irdl_op_definition
class ComputeOp(IRDLOperation):
    """`dataflow.compute @EINSUM on UNIT runs R times T ops {KIND = n} extent [X, Y]
    (after [@A])? (carried [@B])?`: one stage bound to a unit (see docs/dataflow.md)."""

    name = "dataflow.compute"
    einsum = prop_def(StringAttr)
    unit = prop_def(StringAttr)
    runs = prop_def(IntAttr)
    times = prop_def(IntAttr)
    ops = prop_def(DictionaryAttr)
    extent = prop_def(DenseArrayBase[I64])
    after = prop_def(ArrayAttr[StringAttr])
    carried = prop_def(ArrayAttr[StringAttr])

    def __init__(
        self,
        einsum: str,
        unit: str,
        runs: int,
        times: int,
        ops: Mapping[str, int],
        extent: Sequence[int],
        after: Sequence[str] = (),
        carried: Sequence[str] = (),
    ):
        super().__init__(
            properties=_compute_props(einsum, unit, runs, times, ops, extent, after, carried)
        )

    @property
    def einsum_name(self) -> str:
        """The Einsum this stage computes."""
        return self.einsum.data

    @property
    def unit_name(self) -> str:
        """The unit (PE array) the stage runs on."""
        return self.unit.data

    @property
    def runs_value(self) -> int:
        """How many times the stage runs over the whole enclosing pipeline (or block)."""
        return self.runs.data

    @property
    def times_value(self) -> int:
        """Invocations per run."""
        return self.times.data

    def op_counts(self) -> dict[str, int]:
        """Operations one PE performs per invocation, by kind."""
        counts: dict[str, int] = {}
        for kind, value in self.ops.data.items():
            assert isinstance(value, IntAttr)
            counts[kind] = value.data
        return counts

    def extent_list(self) -> list[int]:
        """The spatial extent used on each array axis."""
        return list(self.extent.get_values())

    def after_names(self) -> list[str]:
        """Stages of the same iteration that must finish first."""
        return [s.data for s in self.after.data]

    def carried_names(self) -> list[str]:
        """Stages of the previous iteration that must finish first."""
        return [s.data for s in self.carried.data]

    def describe(self) -> str:
        """How diagnostics name this op."""
        return f"compute @{self.einsum_name}"

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.einsum_name)
        printer.print_string(" on ")
        printer.print_identifier_or_string_literal(self.unit_name)
        printer.print_string(f" runs {self.runs_value} times {self.times_value} ops {{")
        printer.print_list(
            self.op_counts().items(),
            lambda kv: printer.print_string(f"{kv[0]} = {kv[1]}"),
        )
        printer.print_string("} extent [")
        printer.print_list(self.extent_list(), lambda n: printer.print_string(str(n)))
        printer.print_string("]")
        if self.after.data:
            printer.print_string(" after ")
            _print_symbol_list(printer, self.after_names())
        if self.carried.data:
            printer.print_string(" carried ")
            _print_symbol_list(printer, self.carried_names())
        printer.print_op_attributes(self.attributes, print_keyword=True)

    @classmethod
    def parse(cls, parser: Parser) -> ComputeOp:
        start = _start(parser)
        einsum = parser.parse_symbol_name().data
        parser.parse_keyword("on")
        unit = parser.parse_identifier_or_str_literal(" (a unit)")
        runs = _parse_count(parser, "runs")
        times = _parse_count(parser, "times")
        parser.parse_keyword("ops")

        def parse_op() -> tuple[str, int]:
            kind = parser.parse_identifier(" (an operation kind)")
            parser.parse_punctuation("=")
            return kind, parser.parse_integer(allow_boolean=False, allow_negative=True)

        ops = parser.parse_comma_separated_list(parser.Delimiter.BRACES, parse_op)
        parser.parse_keyword("extent")
        extent = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE,
            lambda: parser.parse_integer(allow_boolean=False, allow_negative=True),
        )
        after: list[str] = []
        carried: list[str] = []
        if parser.parse_optional_keyword("after") is not None:
            after = _parse_symbol_list(parser)
        if parser.parse_optional_keyword("carried") is not None:
            carried = _parse_symbol_list(parser)
        attrs = parser.parse_optional_attr_dict_with_keyword()
        if len({k for k, _ in ops}) != len(ops):
            parser.raise_error(f"compute @{einsum}: an operation kind is listed twice", start)
        op = cls.create(
            properties=_compute_props(einsum, unit, runs, times, dict(ops), extent, after, carried)
        )
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op

    def verify_(self) -> None:
        what = self.describe()
        _check_inside_program(self, what)
        _check_count(self, what, "runs", self.runs_value)
        _check_count(self, what, "times", self.times_value)
        counts: dict[str, int] = {}
        for kind, value in self.ops.data.items():
            if not isinstance(value, IntAttr):
                raise OpVerifyException(self, f"{what}: ops must map kinds to integers")
            counts[kind] = value.data
        if not counts:
            raise OpVerifyException(self, f"{what}: ops must list at least one operation")
        for kind, n in counts.items():
            if kind not in OP_KINDS:
                raise OpVerifyException(
                    self,
                    f"{what}: unknown operation kind '{kind}' "
                    f"(the kinds are {', '.join(OP_KINDS)})",
                )
            if n <= 0:
                raise OpVerifyException(
                    self, f"{what}: ops count of {kind} must be positive, got {n}"
                )
        for n in self.extent_list():
            if n <= 0:
                raise OpVerifyException(
                    self, f"{what}: extent must be positive, got {self.extent_list()}"
                )
        parent = self.parent_op()
        if isinstance(parent, PipelineOp) and self.runs_value > parent.count_value:
            raise OpVerifyException(
                self,
                f"{what}: runs {self.runs_value} exceeds the enclosing pipeline's count "
                f"{parent.count_value}",
            )


def _compute_props(
    einsum: str,
    unit: str,
    runs: int,
    times: int,
    ops: Mapping[str, int],
    extent: Sequence[int],
    after: Sequence[str],
    carried: Sequence[str],
) -> dict[str, Attribute]:
    return {
        "einsum": StringAttr(einsum),
        "unit": StringAttr(unit),
        "runs": _int(runs),
        "times": _int(times),
        "ops": DictionaryAttr({k: _int(v) for k, v in ops.items()}),
        "extent": DenseArrayBase.from_list(i64, list(extent)),
        "after": _names(after),
        "carried": _names(carried),
    }


@irdl_op_definition
class AccessOp(IRDLOperation):
    """`dataflow.access @EINSUM "TENSOR" at LEVEL reads R fills F updates U capacity C
    instances I`: what one Einsum's nest does with one tensor at one storage level over the
    whole program, as Timeloop counts it: R words read out of the level (toward the compute),
    F words filled into it from its parent, U partial results written into it, summed over its
    I utilized instances; C is the largest tile of the tensor one instance holds (words)."""

    name = "dataflow.access"
    einsum = prop_def(StringAttr)
    tensor = prop_def(StringAttr)
    level = prop_def(StringAttr)
    reads = prop_def(IntAttr)
    fills = prop_def(IntAttr)
    updates = prop_def(IntAttr)
    capacity = prop_def(IntAttr)
    instances = prop_def(IntAttr)

    def __init__(
        self,
        einsum: str,
        tensor: str,
        level: str,
        reads: int,
        fills: int,
        updates: int,
        capacity: int,
        instances: int,
    ):
        super().__init__(
            properties={
                "einsum": StringAttr(einsum),
                "tensor": StringAttr(tensor),
                "level": StringAttr(level),
                "reads": IntAttr(reads),
                "fills": IntAttr(fills),
                "updates": IntAttr(updates),
                "capacity": IntAttr(capacity),
                "instances": IntAttr(instances),
            }
        )

    @property
    def einsum_name(self) -> str:
        """The Einsum whose nest makes these accesses."""
        return self.einsum.data

    @property
    def tensor_name(self) -> str:
        """The tensor accessed."""
        return self.tensor.data

    @property
    def level_name(self) -> str:
        """The storage level (`GLB`; a unit's registers as `pe2d.PE`)."""
        return self.level.data

    def counts(self) -> tuple[int, int, int]:
        """(reads, fills, updates), summed over the utilized instances."""
        return self.reads.data, self.fills.data, self.updates.data

    @property
    def capacity_value(self) -> int:
        """The largest tile one instance holds, in words."""
        return self.capacity.data

    @property
    def instances_value(self) -> int:
        """The utilized instances of the level."""
        return self.instances.data

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.einsum_name)
        printer.print_string(" ")
        printer.print_string_literal(self.tensor_name)
        printer.print_string(" at ")
        printer.print_identifier_or_string_literal(self.level_name)
        reads, fills, updates = self.counts()
        printer.print_string(
            f" reads {reads} fills {fills} updates {updates} capacity {self.capacity_value} "
            f"instances {self.instances_value}"
        )
        printer.print_op_attributes(self.attributes, print_keyword=True)

    @classmethod
    def parse(cls, parser: Parser) -> AccessOp:
        start = _start(parser)
        einsum = parser.parse_symbol_name().data
        tensor = parser.parse_str_literal(" (a tensor name)")
        parser.parse_keyword("at")
        level = parser.parse_identifier_or_str_literal(" (a storage level)")
        values = [
            _parse_count(parser, key)
            for key in ("reads", "fills", "updates", "capacity", "instances")
        ]
        attrs = parser.parse_optional_attr_dict_with_keyword()
        op = cls(einsum, tensor, level, *values)
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op

    def verify_(self) -> None:
        what = f'access @{self.einsum_name} "{self.tensor_name}" at {self.level_name}'
        _check_inside_program(self, what)
        for key in ("reads", "fills", "updates", "capacity"):
            value = getattr(self, key).data
            if value < 0:
                raise OpVerifyException(self, f"{what}: {key} must be non-negative, got {value}")
        _check_count(self, what, "instances", self.instances_value)


@irdl_op_definition
class BufferOp(IRDLOperation):
    """`dataflow.buffer LEVEL bytes B holds ["T" = b, ...]`: the peak footprint kept in a
    storage level, tensor by tensor (`B` is their sum)."""

    name = "dataflow.buffer"
    level = prop_def(StringAttr)
    holds = prop_def(DictionaryAttr)

    def __init__(self, level: str, holds: Mapping[str, int]):
        super().__init__(
            properties={
                "level": StringAttr(level),
                "holds": DictionaryAttr({k: _int(v) for k, v in holds.items()}),
            }
        )

    @property
    def level_name(self) -> str:
        """The storage level."""
        return self.level.data

    def holds_map(self) -> dict[str, int]:
        """Tensor -> bytes held at the peak."""
        held: dict[str, int] = {}
        for tensor, value in self.holds.data.items():
            assert isinstance(value, IntAttr)
            held[tensor] = value.data
        return held

    @property
    def bytes_value(self) -> int:
        """The peak footprint in bytes (the sum of `holds`)."""
        return sum(self.holds_map().values())

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_identifier_or_string_literal(self.level_name)
        printer.print_string(f" bytes {self.bytes_value} holds [")

        def print_hold(item: tuple[str, int]) -> None:
            printer.print_string_literal(item[0])
            printer.print_string(f" = {item[1]}")

        printer.print_list(self.holds_map().items(), print_hold)
        printer.print_string("]")
        printer.print_op_attributes(self.attributes, print_keyword=True)

    @classmethod
    def parse(cls, parser: Parser) -> BufferOp:
        start = _start(parser)
        level = parser.parse_identifier_or_str_literal(" (a storage level)")
        total = _parse_count(parser, "bytes")
        parser.parse_keyword("holds")

        def parse_hold() -> tuple[str, int]:
            tensor = parser.parse_str_literal(" (a tensor name)")
            parser.parse_punctuation("=")
            return tensor, parser.parse_integer(allow_boolean=False, allow_negative=True)

        holds = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parse_hold)
        attrs = parser.parse_optional_attr_dict_with_keyword()
        if len({t for t, _ in holds}) != len(holds):
            parser.raise_error(f"buffer {level}: a tensor is listed twice", start)
        held = sum(b for _, b in holds)
        if total != held:
            parser.raise_error(
                f"buffer {level}: bytes {total} is not the sum of what it holds ({held})",
                start,
            )
        op = cls(level, dict(holds))
        if attrs is not None:
            op.attributes.update(attrs.data)
        record_location(op, start)
        return op

    def verify_(self) -> None:
        what = f"buffer {self.level_name}"
        _check_inside_program(self, what)
        for tensor, value in self.holds.data.items():
            if not isinstance(value, IntAttr):
                raise OpVerifyException(self, f"{what}: holds must map tensors to integers")
            if value.data < 0:
                raise OpVerifyException(
                    self,
                    f'{what}: "{tensor}" must hold a non-negative number of bytes, '
                    f"got {value.data}",
                )


def programs_in(root: Operation) -> list[ProgramOp]:
    """Every `dataflow.program` under `root` (a module), in order (programs do not nest, so
    their bodies are not searched)."""
    if isinstance(root, ProgramOp):
        return [root]
    found: list[ProgramOp] = []
    for region in root.regions:
        for block in region.blocks:
            for op in block.ops:
                found.extend(programs_in(op))
    return found


Dataflow = Dialect(
    "dataflow",
    [ProgramOp, RepeatOp, PipelineOp, ComputeOp, AccessOp, BufferOp],
    [],
)
"""The dataflow dialect."""
