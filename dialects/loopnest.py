"""The loopnest dialect: each Einsum as a hardware-mapped loop nest.

```
%QK = loopnest.nest on pe2d loops [p2 = 4, m1 = 4, e = 64, p0 = 256 space 0, m0 = 256 space 1]
      levels [DRAM, DRAM, PE] QK[m1, m0, 256*p2+p0] = %Q[e, 256*p2+p0] * %BK[e, m1, m0]
      : !einsum.tensor<[M1, M0, P], f32>
```
A `loopnest.nest` is the Einsum it was lowered from, over loop variables instead of rank
variables: its loops (outermost first) carry a trip count and are temporal or spatial on an
array axis; it runs on a unit; every access and the output index the tensors by affine forms of
loop variables (a partitioned rank p reads as `256*p2+256*p1+p0`); `levels` names the storage
level of each access, then of the output (or, `[DRAM, GLB, PE]`, the exact levels that keep
it, outermost first); `at LEVEL` on a loop places it and the loops after it at that storage
level, as in Timeloop's mapping. Loop variables that the output index does not use
are reduced, with the operators in the `::` list; an output index `m1+1` marks the iterative
loop, as in the einsum dialect. The nests live in the `einsum.cascade` they came from.
`on pe1d kernel softmax` names the kernel of a nest whose mapping put it in one (see
`#einsum.mapping`).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import (
    ArrayAttr,
    IntAttr,
    StringAttr,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, Region, SSAValue
from xdsl.irdl import (
    irdl_attr_definition,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum import EinsumOp, EinsumStructure
from einsum_opt.dialects.einsum_attrs import (
    IndicesAttr,
    ReduceAttr,
)
from einsum_opt.dialects.einsum_mapping import name_text
from einsum_opt.dialects.einsum_syntax import IndexExpr
from einsum_opt.dialects.einsum_text import parse_einsum, print_einsum
from einsum_opt.dialects.locations import (
    OpVerifyException,
    carry_location,
    location_of,
    record_location,
)


@irdl_attr_definition
class LoopAttr(ParametrizedAttribute):
    """One loop: `#loopnest.loop<p0 = 256 space 0 at RF>` (axis -1: a temporal loop; level "":
    not placed yet)."""

    name = "loopnest.loop"
    var: StringAttr
    extent: IntAttr
    axis: IntAttr
    level: StringAttr

    @staticmethod
    def make(var: str, extent: int, axis: int | None = None, level: str = "") -> LoopAttr:
        """A loop over `var` with `extent` trips, spatial on `axis` if given, at storage level
        `level` (`""`: placed by the lowering)."""
        return LoopAttr(
            StringAttr(var),
            IntAttr(extent),
            IntAttr(-1 if axis is None else axis),
            StringAttr(level),
        )

    @property
    def spatial_axis(self) -> int | None:
        """The array axis of a spatial loop, None for a temporal one."""
        return None if self.axis.data < 0 else self.axis.data

    @property
    def level_name(self) -> str:
        """The storage level the loop sits at ("" when not placed)."""
        return self.level.data

    def at_level(self, level: str) -> LoopAttr:
        """The same loop at `level`."""
        return LoopAttr.make(self.var.data, self.extent.data, self.spatial_axis, level)

    def text(self, show_level: bool = True) -> str:
        """`p0 = 256 space 0 at RF` or `p2 = 4`."""
        axis = self.spatial_axis
        out = f"{self.var.data} = {self.extent.data}" + ("" if axis is None else f" space {axis}")
        if show_level and self.level_name:
            out += f" at {name_text(self.level_name)}"
        return out

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return _parse_loop(parser, "").parameters

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.text()}>")

    def verify(self) -> None:
        if self.extent.data <= 0:
            raise VerifyException(f"loop {self.var.data} must have a positive trip count")


def _parse_loop(parser: AttrParser, level: str) -> LoopAttr:
    """`var = N (space A)? (at LEVEL)?`; without `at`, the loop is at `level`."""
    var = parser.parse_identifier(" (a loop variable)")
    parser.parse_punctuation("=")
    at = parser.pos
    extent = parser.parse_integer(allow_boolean=False, allow_negative=False)
    if extent <= 0:
        parser.raise_error(f"loop {var} must have a positive trip count, got {extent}", at)
    axis = None
    if parser.parse_optional_keyword("space") is not None:
        axis = parser.parse_integer(allow_boolean=False, allow_negative=False)
    if parser.parse_optional_keyword("at") is not None:
        level = parser.parse_identifier_or_str_literal()
    return LoopAttr.make(var, extent, axis, level)


EXACT = "="
"""Marks a `levels` entry that lists the exact levels keeping a tensor (`=DRAM>PE`); an entry
without it names only the tensor's home (the lowering derives the levels below it)."""

KEEP_SEPARATOR = ">"
"""Joins the levels of an exact entry, outermost first."""


def keep_entry(levels: Sequence[str]) -> str:
    """The `levels` entry keeping a tensor exactly in `levels`, outermost first."""
    return EXACT + KEEP_SEPARATOR.join(levels)


def _parse_keep(parser: Parser) -> str:
    """`HOME` or `[L1, L2, ...]` (the exact levels)."""
    if parser.parse_optional_punctuation("[") is None:
        return parser.parse_identifier_or_str_literal()
    names = [parser.parse_identifier_or_str_literal()]
    while parser.parse_optional_punctuation(",") is not None:
        names.append(parser.parse_identifier_or_str_literal())
    parser.parse_punctuation("]")
    return keep_entry(names)


def _keep_text(entry: str) -> str:
    if not entry.startswith(EXACT):
        return name_text(entry)
    names = entry.removeprefix(EXACT).split(KEEP_SEPARATOR)
    return "[" + ", ".join(name_text(n) for n in names) + "]"


def _loops_text(loops: Sequence[LoopAttr]) -> str:
    """Loops with `at LEVEL` on the first loop of each level."""
    parts = []
    previous = ""
    for loop in loops:
        parts.append(loop.text(show_level=loop.level_name != previous))
        previous = loop.level_name
    return ", ".join(parts)


@irdl_op_definition
class NestOp(EinsumStructure):
    """One Einsum as a loop nest mapped onto a unit (see the module docstring)."""

    name = "loopnest.nest"
    unit = prop_def(StringAttr)
    loops = prop_def(ArrayAttr[LoopAttr])
    levels = prop_def(ArrayAttr[StringAttr])
    kernel = opt_prop_def(StringAttr)

    @staticmethod
    def from_einsum(
        op: EinsumOp,
        unit: str,
        loops: Sequence[LoopAttr],
        levels: Sequence[str],
        output: Sequence[IndexExpr],
        accesses: Sequence[tuple[SSAValue | None, Sequence[IndexExpr]]],
        reduce: Sequence[tuple[str, str]],
        body: Region,
        kernel: str = "",
    ) -> NestOp:
        """A nest computing `op` with the given loops and loop-variable indices (in `kernel`,
        if not empty)."""
        props: dict[str, Attribute] = {
            "tensor": op.tensor,
            "output": IndicesAttr(tuple(output)),
            "access": ArrayAttr([IndicesAttr(tuple(ix)) for _, ix in accesses]),
            "self_reads": op.self_reads,
            "reduce": ReduceAttr(tuple(reduce)),
            "merge": op.merge,
            "unit": StringAttr(unit),
            "loops": ArrayAttr(list(loops)),
            "levels": ArrayAttr([StringAttr(lv) for lv in levels]),
        }
        if op.init is not None:
            props["init"] = op.init
        if kernel:
            props["kernel"] = StringAttr(kernel)
        nest = NestOp.create(
            operands=[v for v, _ in accesses if v is not None],
            properties=props,
            regions=[body],
            result_types=[op.result.type],
        )
        nest.result.name_hint = op.tensor_name
        carry_location(op, nest)
        return nest

    @property
    def unit_name(self) -> str:
        """The unit that executes the body."""
        return self.unit.data

    @property
    def kernel_name(self) -> str:
        """The kernel the nest belongs to ("": the cascade's only kernel)."""
        return "" if self.kernel is None else self.kernel.data

    def loop_list(self) -> list[LoopAttr]:
        """The loops, outermost first."""
        return list(self.loops.data)

    def extents(self) -> dict[str, int]:
        """Loop variable -> trip count."""
        return {loop.var.data: loop.extent.data for loop in self.loops.data}

    def level_names(self) -> list[str]:
        """Storage level (home) of each access, then of the output."""
        return [
            lv.data.removeprefix(EXACT).split(KEEP_SEPARATOR)[0] for lv in self.levels.data
        ]

    def kept_levels(self) -> list[list[str] | None]:
        """The exact levels holding each access, then the output, outermost first, where the
        nest gives them (`[DRAM, PE]`); None where only the home is given."""
        return [
            lv.data.removeprefix(EXACT).split(KEEP_SEPARATOR)
            if lv.data.startswith(EXACT)
            else None
            for lv in self.levels.data
        ]

    def is_placed(self) -> bool:
        """Whether every loop names its storage level."""
        return all(loop.level_name for loop in self.loops.data)

    def describe(self) -> str:
        """How diagnostics name this nest."""
        return f"nest {self.tensor_name}"

    def print(self, printer: Printer) -> None:
        loops = _loops_text(self.loops.data)
        levels = ", ".join(_keep_text(lv.data) for lv in self.levels.data)
        kernel = f" kernel {name_text(self.kernel_name)}" if self.kernel_name else ""
        unit = name_text(self.unit_name)
        printer.print_string(f" on {unit}{kernel} loops [{loops}] levels [{levels}]")
        print_einsum(self, printer)

    @classmethod
    def parse(cls, parser: Parser) -> NestOp:
        parser.parse_keyword("on")
        unit = parser.parse_identifier_or_str_literal()
        kernel = None
        if parser.parse_optional_keyword("kernel") is not None:
            kernel = parser.parse_identifier_or_str_literal()
        parser.parse_keyword("loops")
        loops: list[LoopAttr] = []

        def loop() -> LoopAttr:
            loops.append(_parse_loop(parser, loops[-1].level_name if loops else ""))
            return loops[-1]

        parser.parse_comma_separated_list(parser.Delimiter.SQUARE, loop)
        parser.parse_keyword("levels")
        levels = parser.parse_comma_separated_list(
            parser.Delimiter.SQUARE, lambda: _parse_keep(parser)
        )
        einsum = parse_einsum(parser)
        body = einsum.detach_region(einsum.body)
        nest = cls.create(
            operands=list(einsum.inputs),
            properties={
                **einsum.properties,
                "unit": StringAttr(unit),
                "loops": ArrayAttr(loops),
                "levels": ArrayAttr([StringAttr(lv) for lv in levels]),
                **({} if kernel is None else {"kernel": StringAttr(kernel)}),
            },
            attributes=dict(einsum.attributes),
            regions=[body],
            result_types=[einsum.result.type],
        )
        nest.result.name_hint = einsum.tensor_name
        where = location_of(einsum)
        einsum.erase(safe_erase=False)
        if where is not None:
            record_location(nest, where)
        return nest

    def verify_(self) -> None:
        where = self.describe()
        extents = self.extents()
        if len(extents) != len(self.loops.data):
            raise OpVerifyException(self, f"{where}: a loop variable appears twice")
        accesses = self.accesses()
        if len(self.levels.data) != len(accesses) + 1:
            raise OpVerifyException(
                self,
                f"{where}: {len(self.levels.data)} storage levels for {len(accesses)} "
                "accesses and the output (one each)",
            )
        used = {v for _, ix in accesses for i in ix for v in i.variables}
        used |= set(self.output_variables())
        for var in used - set(extents):
            raise OpVerifyException(self, f"{where}: index variable {var} has no loop")
        for var in set(extents) - used:
            raise OpVerifyException(self, f"{where}: loop {var} is used by no index")
        it = self.iterative_rank()
        if it is not None and self.init is None:
            raise OpVerifyException(self, f"{where}: iterative loop {it} has no initial value")
        if it is None and self.init is not None:
            raise OpVerifyException(self, f"{where}: has an initial value but no iterative loop")
        for loop in self.loops.data:
            if loop.spatial_axis is not None and loop.var.data == it:
                raise OpVerifyException(self, f"{where}: the iterative loop {it} cannot be spatial")
        placed = [bool(loop.level_name) for loop in self.loops.data]
        if any(placed) and not all(placed):
            raise OpVerifyException(
                self, f"{where}: some loops name their storage level and others do not"
            )
        reduced = self.reduced_variables()
        listed = tuple(v for v, _ in self.reduce.data)
        if listed != reduced:
            raise OpVerifyException(
                self,
                f"{where}: reductions must name the loops the output does not use, in "
                f"order of first use: {', '.join(reduced) or 'none'}",
            )
        last = self.body.block.last_op
        if last is None or len(self.body.block.args) != len(accesses):
            raise OpVerifyException(self, f"{where}: map region does not match its accesses")


LoopNest = Dialect("loopnest", [NestOp], [LoopAttr])
"""The loopnest dialect."""
