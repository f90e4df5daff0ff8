"""How an Einsum is mapped onto hardware: the `#einsum.mapping` attribute and its checks.

```
{mapping = #einsum.mapping<unit = pe2d, loops = [P2, M1, P1, E, P0, M0],
                            partition = {P = [4096, 256]}, space = {P0 = 0, M0 = 1},
                            storage = {Q = GLB, BK = DRAM, QK = PE}>}
```
- `partition`: TeAAL `uniform_shape` tiling of a rank inside this Einsum's loop nest, outer to
  inner: P with shapes [4096, 256] gives loop ranks P2 (P / 4096), P1 (4096 / 256), P0 (256).
  (Splitting a rank in the IR itself is `split-rank`; both name the levels the same way.)
- `loops`: the loop ranks outermost first, a permutation of the Einsum's ranks after
  partitioning; empty means the default order (output ranks, then reduced ranks).
- `space`: loop ranks that are spatial, with the array axis they occupy (several loops may
  share an axis: their trip counts multiply); the rest are time.
- `unit`: the hardware unit that executes the body (`pe2d`, `pe1d`, ...).
- `storage`: the storage level holding each tensor the Einsum reads or writes.
- `kernel` (optional): the kernel the Einsum belongs to. Einsums of different kernels run one
  after another, each bounded by its own compute and memory time, and exchange tensors through
  DRAM (the unfused baseline); without it, all of a cascade's Einsums form one kernel.
- `at` (optional): the storage level each block of loops sits at, Timeloop's way: `at = {B =
  DRAM, P1 = GLB, P0 = RF}` puts B and the loops after it (in `loops` order) at DRAM, P1 and
  the loops after it at GLB, and so on; a temporal loop at a level iterates over that level's
  tile, a spatial loop there fans out to the instances below it. When `at` is given it names
  the first loop; without it, `lower-to-dataflow` places the loops (see docs/dataflow.md).
- `keep` (optional): the exact levels holding a tensor, outermost (its home) first, as
  Timeloop's keep/bypass: `keep = {AV = [DRAM, PE]}` bypasses the global buffer. Without it,
  a tensor is kept at its `storage` level and at every level below it on the unit's chain that
  keeps tensors by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, IntAttr, StringAttr
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from einsum_opt.dialects.einsum_syntax import rank_of

if TYPE_CHECKING:
    from einsum_opt.dialects.einsum import EinsumOp

MAPPING_ATTR = "mapping"
"""The name of the Einsum attribute holding its `#einsum.mapping`."""


@irdl_attr_definition
class MappingAttr(ParametrizedAttribute):
    """The mapping of one Einsum: unit, loop order, partitioning, spacetime and storage."""

    name = "einsum.mapping"
    unit: StringAttr
    loops: ArrayAttr[StringAttr]
    partition: DictionaryAttr
    space: DictionaryAttr
    storage: DictionaryAttr
    kernel: StringAttr
    at: DictionaryAttr
    keep: DictionaryAttr

    @staticmethod
    def make(
        unit: str,
        loops: Sequence[str] = (),
        partition: Mapping[str, Sequence[int]] | None = None,
        space: Mapping[str, int] | None = None,
        storage: Mapping[str, str] | None = None,
        kernel: str = "",
        at: Mapping[str, str] | None = None,
        keep: Mapping[str, Sequence[str]] | None = None,
    ) -> MappingAttr:
        """A mapping from plain Python values (`kernel=""`: the cascade's only kernel)."""
        return MappingAttr(
            StringAttr(unit),
            ArrayAttr([StringAttr(x) for x in loops]),
            DictionaryAttr(
                {r: ArrayAttr([IntAttr(s) for s in v]) for r, v in (partition or {}).items()}
            ),
            DictionaryAttr({r: IntAttr(a) for r, a in (space or {}).items()}),
            DictionaryAttr({t: StringAttr(lv) for t, lv in (storage or {}).items()}),
            StringAttr(kernel),
            DictionaryAttr({r: StringAttr(lv) for r, lv in (at or {}).items()}),
            DictionaryAttr(
                {t: ArrayAttr([StringAttr(lv) for lv in v]) for t, v in (keep or {}).items()}
            ),
        )

    @property
    def unit_name(self) -> str:
        """The unit executing the Einsum."""
        return self.unit.data

    @property
    def loop_order(self) -> list[str]:
        """Loop ranks outermost first (empty: the default order)."""
        return [x.data for x in self.loops]

    @property
    def partitions(self) -> dict[str, list[int]]:
        """Rank -> uniform shapes, outer to inner."""
        return {r: [s.data for s in v.data] for r, v in self.partition.data.items()}  # type: ignore[attr-defined]

    @property
    def spatial(self) -> dict[str, int]:
        """Spatial loop rank -> array axis."""
        return {r: a.data for r, a in self.space.data.items()}  # type: ignore[attr-defined]

    @property
    def levels(self) -> dict[str, str]:
        """Tensor -> storage level."""
        return {t: lv.data for t, lv in self.storage.data.items()}  # type: ignore[attr-defined]

    @property
    def kernel_name(self) -> str:
        """The kernel the Einsum belongs to ("" : the cascade's only kernel)."""
        return self.kernel.data

    @property
    def boundaries(self) -> dict[str, str]:
        """Loop rank -> the storage level of the block of loops it starts."""
        return {r: lv.data for r, lv in self.at.data.items()}  # type: ignore[attr-defined]

    @property
    def keeps(self) -> dict[str, list[str]]:
        """Tensor -> the levels holding it, outermost first (only where given)."""
        return {t: [lv.data for lv in v.data] for t, v in self.keep.data.items()}  # type: ignore[attr-defined]

    def with_loops(self, loops: Sequence[str]) -> MappingAttr:
        """The same mapping with another loop order (level boundaries kept by rank)."""
        return MappingAttr.make(
            self.unit_name,
            loops,
            self.partitions,
            self.spatial,
            self.levels,
            self.kernel_name,
            self.boundaries,
            self.keeps,
        )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, object] = {}
        with parser.in_angle_brackets():
            while True:
                key = parser.parse_identifier(
                    " (unit, loops, partition, space, storage, kernel, at or keep)"
                )
                parser.parse_punctuation("=")
                if key in ("unit", "kernel"):
                    values[key] = parser.parse_identifier_or_str_literal()
                elif key == "loops":
                    values[key] = parser.parse_comma_separated_list(
                        parser.Delimiter.SQUARE, parser.parse_identifier
                    )
                elif key in ("partition", "space", "storage", "at", "keep"):
                    values[key] = _parse_dict(parser, key)
                else:
                    parser.raise_error(f"unknown mapping field '{key}'")
                if parser.parse_optional_punctuation(",") is None:
                    break
        if "unit" not in values:
            parser.raise_error("a mapping needs a unit")
        made = MappingAttr.make(
            str(values["unit"]),
            values.get("loops", []),  # type: ignore[arg-type]
            values.get("partition"),  # type: ignore[arg-type]
            values.get("space"),  # type: ignore[arg-type]
            values.get("storage"),  # type: ignore[arg-type]
            str(values.get("kernel", "")),
            values.get("at"),  # type: ignore[arg-type]
            values.get("keep"),  # type: ignore[arg-type]
        )
        return made.parameters

    def print_parameters(self, printer: Printer) -> None:
        parts = [f"unit = {name_text(self.unit_name)}"]
        if self.loop_order:
            parts.append(f"loops = [{', '.join(self.loop_order)}]")
        if self.partitions:
            inner = ", ".join(
                f"{r} = [{', '.join(map(str, v))}]" for r, v in self.partitions.items()
            )
            parts.append(f"partition = {{{inner}}}")
        if self.spatial:
            parts.append(f"space = {{{', '.join(f'{r} = {a}' for r, a in self.spatial.items())}}}")
        if self.levels:
            parts.append(
                f"storage = {{{', '.join(f'{t} = {lv}' for t, lv in self.levels.items())}}}"
            )
        if self.kernel_name:
            parts.append(f"kernel = {name_text(self.kernel_name)}")
        if self.boundaries:
            inner = ", ".join(f"{r} = {name_text(lv)}" for r, lv in self.boundaries.items())
            parts.append(f"at = {{{inner}}}")
        if self.keeps:
            inner = ", ".join(
                f"{t} = [{', '.join(name_text(lv) for lv in v)}]" for t, v in self.keeps.items()
            )
            parts.append(f"keep = {{{inner}}}")
        printer.print_string(f"<{', '.join(parts)}>")


_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$.]*")


def name_text(name: str) -> str:
    """`name` as the parser reads it back: bare when it is an identifier, else quoted."""
    return name if _BARE_NAME.fullmatch(name) else json.dumps(name)


def _parse_dict(parser: AttrParser, key: str) -> dict[str, object]:
    out: dict[str, object] = {}
    parser.parse_punctuation("{")
    if parser.parse_optional_punctuation("}") is not None:
        return out
    while True:
        name = parser.parse_identifier()
        parser.parse_punctuation("=")
        if key == "partition":
            out[name] = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, lambda: parser.parse_integer(allow_boolean=False)
            )
        elif key == "space":
            out[name] = parser.parse_integer(allow_boolean=False, allow_negative=False)
        elif key == "keep":
            out[name] = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, parser.parse_identifier_or_str_literal
            )
        else:
            out[name] = parser.parse_identifier_or_str_literal()
        if parser.parse_optional_punctuation(",") is None:
            break
    parser.parse_punctuation("}")
    return out


def partition_names(rank: str, levels: int) -> list[str]:
    """Loop ranks of a rank tiled `levels` times, outer first: P, 2 -> [P2, P1, P0]."""
    return [f"{rank}{k}" for k in range(levels, -1, -1)]


def einsum_ranks(op: EinsumOp) -> list[str]:
    """The ranks an Einsum iterates: output ranks, then reduced ranks."""
    return [rank_of(v) for v in op.variables()]


def loop_ranks(op: EinsumOp, mapping: MappingAttr) -> list[str]:
    """The Einsum's ranks after partitioning, in default order."""
    parts = mapping.partitions
    out: list[str] = []
    for rank in einsum_ranks(op):
        shapes = parts.get(rank)
        out += partition_names(rank, len(shapes)) if shapes else [rank]
    return out


def loop_extents(op: EinsumOp, mapping: MappingAttr, sizes: Mapping[str, int]) -> dict[str, int]:
    """Loop rank -> trip count (raises VerifyException when a shape does not divide)."""
    parts = mapping.partitions
    extents: dict[str, int] = {}
    for rank in einsum_ranks(op):
        shapes = parts.get(rank)
        if not shapes:
            extents[rank] = sizes[rank]
            continue
        chain = [sizes[rank], *shapes]
        for outer, inner in zip(chain, chain[1:], strict=False):
            if inner <= 0 or outer % inner:
                raise VerifyException(
                    f"einsum {op.tensor_name}: partition {rank} = {shapes}: {inner} does not "
                    f"divide {outer}"
                )
        names = partition_names(rank, len(shapes))
        for name, outer, inner in zip(names, chain, [*shapes, 1], strict=True):
            extents[name] = outer // inner
        extents[names[-1]] = shapes[-1]
    return extents


def ordered_loops(op: EinsumOp, mapping: MappingAttr) -> list[str]:
    """The loop ranks outermost first (the mapping's order, or the default one)."""
    return mapping.loop_order or loop_ranks(op, mapping)


def check_mapping(op: EinsumOp, mapping: MappingAttr, sizes: Mapping[str, int]) -> None:
    """Raise VerifyException when `mapping` does not fit `op`."""
    where = f"einsum {op.tensor_name}"
    ranks = einsum_ranks(op)
    for rank in mapping.partitions:
        if rank not in ranks:
            raise VerifyException(f"{where}: partition of rank {rank}, which it does not iterate")
    expected = loop_ranks(op, mapping)
    clash = [r for r in expected if r not in ranks and r in sizes]
    if clash:
        raise VerifyException(
            f"{where}: partition loop rank {clash[0]} clashes with a declared rank"
        )
    loop_extents(op, mapping, sizes)
    order = mapping.loop_order
    if order and sorted(order) != sorted(expected):
        raise VerifyException(
            f"{where}: loop order [{', '.join(order)}] is not a permutation of its loop ranks "
            f"[{', '.join(expected)}]"
        )
    for rank, axis in mapping.spatial.items():
        if rank not in expected:
            raise VerifyException(f"{where}: spatial loop {rank} is not one of its loop ranks")
        if axis < 0:
            raise VerifyException(f"{where}: spatial loop {rank} has negative axis {axis}")
    iterative = op.iterative_rank()
    if iterative is not None:
        it = rank_of(iterative)
        if it in mapping.partitions:
            raise VerifyException(f"{where}: iterative rank {it} cannot be partitioned")
        if it in mapping.spatial:
            raise VerifyException(
                f"{where}: iterative rank {it} cannot be spatial (each step needs the previous)"
            )
    for value, indices in op.accesses():
        producer = value.owner if value is not None else None
        r = getattr(producer, "iterative_rank", lambda: None)()
        if r is None or rank_of(r) not in mapping.spatial:
            continue
        for ix in indices:
            off = ix.as_offset()
            if off is not None and off[0] == r:
                raise VerifyException(
                    f"{where}: spatial loop {rank_of(r)} would read "
                    f"{op.access_name(value)}[...{ix}...] before it is produced (the running "
                    "value is computed one step at a time)"
                )
    names = {op.tensor_name} | {op.access_name(v) for v, _ in op.accesses()}
    for tensor in [*mapping.levels, *mapping.keeps]:
        if tensor not in names:
            raise VerifyException(
                f"{where}: storage level given for {tensor}, which it neither reads nor writes"
            )
    for tensor, kept in mapping.keeps.items():
        if not kept:
            raise VerifyException(f"{where}: keep of {tensor} names no level")
        if len(set(kept)) != len(kept):
            raise VerifyException(f"{where}: keep of {tensor} names a level twice")
        home = mapping.levels.get(tensor)
        if home is not None and home != kept[0]:
            raise VerifyException(
                f"{where}: {tensor} is stored in {home} but kept first in {kept[0]} (the first "
                "level it is kept in is its storage level)"
            )
    bounds = mapping.boundaries
    loops = ordered_loops(op, mapping)
    for rank in bounds:
        if rank not in loops:
            raise VerifyException(f"{where}: at names {rank}, which is not one of its loop ranks")
    if bounds and loops and loops[0] not in bounds:
        raise VerifyException(
            f"{where}: at must name the level of its first loop {loops[0]} (every loop then "
            "has a level)"
        )
