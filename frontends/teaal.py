"""The TeAAL frontend: a TeAAL specification (YAML) -> one `einsum.cascade`.

```yaml
einsum:
  declaration: {A: [K, M], B: [K, N], Z: [M, N]}
  expressions:
    - Z[m, n] = A[k, m] * B[k, n]
mapping:
  partitioning: {Z: {M: [uniform_shape(4)]}}
  loop-order: {Z: [M1, N, K, M0]}
  spacetime: {Z: {space: [M0], time: [M1, N, K]}}
bindings: {Z: pe1d}
```

- `einsum.declaration` gives each tensor's ranks; `einsum.expressions` (or upstream's
  `expression:`) the Einsums, in order. Inputs are the declared tensors no expression writes (in
  declaration order), then the scalars the expressions read (a lower-case name that is not a
  declared tensor, e.g. `a` in `a * T1[m, n]`: an input `!einsum.tensor<[], f32>`). Outputs are
  the tensors written and never read (in order), or the last expression's tensor if every one
  is read. Every tensor is f32. A tensor written twice keeps its name for the last write; the
  earlier value is renamed (`Z_v1`) with a warning, and each read sees the latest write.
- Rank sizes are not part of a TeAAL spec. Every rank gets `DEFAULT_RANK_SIZE` (8), rounded up
  to a multiple of the product of the integer `uniform_shape`s that partition it, and a rank read
  through an affine index grows until the index stays in range: `I[x+r, y+s]` with X = R = 8
  makes I's rank M = X + R - 1 = 15 (the verifier range-checks every index). A stride constant
  (`g` in `I[z, c, g*x + r, g*y + s]`) becomes the rank size `G`, declared with
  `DEFAULT_STRIDE` (1). `--ranks`/`set-ranks` change any of them; a rank read through an affine
  index must then be resized along with the ranks of its variables (sizes like X + R - 1 are
  not derived automatically).
- `mapping` and `bindings` become each Einsum's `mapping = #einsum.mapping<...>` (see
  `teaal_mapping`); `mapping.rank-order` is kept on the cascade as
  `teaal = {rank_order = {A = ["K", "M"]}}`; `format` and `architecture` are not imported (one
  warning each). Warnings go to stderr as `warning: file:line: ...`.
- Every error is one `NotationError` line: `file:line:col: error: ...` where the place is known,
  `file: error: ...` otherwise (for instance a spec with no `einsum` section).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr, f32
from xdsl.ir import Block, Region, SSAValue

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, ReturnOp
from einsum_opt.dialects.einsum_attrs import RANK_NAME, RanksAttr, TensorType
from einsum_opt.dialects.einsum_map import build_map_region
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR
from einsum_opt.dialects.einsum_syntax import IndexExpr, rank_of
from einsum_opt.dialects.locations import SourceLocation, record_location
from einsum_opt.frontends.notation import verify_cascade_module
from einsum_opt.frontends.teaal_expr import TeaalAccess, TeaalExpression, parse_expression
from einsum_opt.frontends.teaal_mapping import (
    MappingSections,
    check_einsum_names,
    read_mapping_sections,
    resolve_mapping,
)
from einsum_opt.frontends.teaal_yaml import SpecReader, Warn

DEFAULT_RANK_SIZE = 8
"""The size of every rank a spec does not constrain (TeAAL specs give no sizes)."""

DEFAULT_STRIDE = 1
"""The value of a stride constant such as `g` in `g*x + r` (the rank size `G`)."""

SECTIONS = ("einsum", "mapping", "format", "architecture", "bindings", "storage")
"""Top-level keys of a TeAAL spec (`storage` is our extension, as in `apply-mapping`)."""

NOT_IMPORTED = {
    "format": "storage formats of each tensor rank",
    "architecture": "the accelerator's components",
}
"""Sections read by TeAAL but not by us: each gives one warning."""


def parse_teaal(text: str, filename: str, warn: Warn | None = None) -> ModuleOp:
    """Import a TeAAL specification into a verified module holding one cascade.

    Warnings (ignored sections, unrepresentable partitionings) go to `warn` (default: stderr).
    Raises `NotationError` (`file:line:col: error: message`) for any bad input.
    """
    reader = SpecReader(filename, warn)
    root = reader.compose(text)
    if root is None or reader.is_null(root):
        reader.fail(None, "empty TeAAL specification: there is no einsum section to import")
    sections = {k: (kn, v) for k, kn, v in reader.entries(root, "a TeAAL specification")}
    if "einsum" not in sections:
        held = ", ".join(sections) or "nothing"
        reader.fail(
            None, f"no einsum section (the spec holds {held}); there is no cascade to import"
        )
    for key, (key_node, _) in sections.items():
        if key not in SECTIONS:
            reader.warn(
                key_node, f"unknown section '{key}' (known: {', '.join(SECTIONS)}); ignored"
            )
        elif key in NOT_IMPORTED:
            reader.warn(key_node, f"section '{key}' ({NOT_IMPORTED[key]}) is not imported")

    def section(key: str) -> yaml.Node | None:
        return sections[key][1] if key in sections else None

    mapping = read_mapping_sections(
        reader, section("mapping"), section("bindings"), section("storage")
    )
    builder = _Builder(reader, mapping)
    builder.read_einsum(*sections["einsum"])
    cascade = builder.build(_cascade_name(filename))
    module = ModuleOp([cascade])
    verify_cascade_module(module, cascade, filename)
    return module


def _cascade_name(filename: str) -> str:
    """The file stem as a symbol name (`extensor-energy` -> `extensor_energy`)."""
    name = re.sub(r"\W", "_", Path(filename).stem)
    if not name or name[0].isdigit():
        name = "main" if not name else f"_{name}"
    return name


def _text_location(reader: SpecReader, node: yaml.Node) -> SourceLocation:
    """Where the text of a scalar starts (after the quote of a quoted scalar)."""
    at = reader.at(node)
    if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        return SourceLocation(at.filename, at.line, at.column + 1)
    return at


@dataclass
class _Write:
    """One expression with the SSA name its result gets."""

    expression: TeaalExpression
    name: str
    reads: list[str] = field(default_factory=list)
    """The SSA name each access reads, by access number."""


class _Builder:
    """Builds the cascade of one spec's einsum section and attaches the mappings."""

    def __init__(self, reader: SpecReader, mapping: MappingSections):
        self.reader = reader
        self.mapping = mapping
        self.declared: dict[str, list[str]] = {}
        self.ranks: list[str] = []
        self.writes: list[_Write] = []
        self.scalars: list[str] = []
        self.einsum_at = SourceLocation(reader.filename, 1, 1)

    # -- the einsum section --------------------------------------------------------------

    def read_einsum(self, key: yaml.Node, node: yaml.Node) -> None:
        """Declarations and expressions, parsed and named."""
        reader = self.reader
        self.einsum_at = reader.at(key)
        found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for name, name_node, value in reader.entries(node, "einsum"):
            if name not in ("declaration", "expressions", "expression"):
                reader.warn(name_node, f"einsum.{name} is not a TeAAL einsum key; ignored")
            found[name] = (name_node, value)
        if "expressions" in found and "expression" in found:
            reader.fail(found["expression"][0], "einsum has both expressions and expression")
        exprs = found.get("expressions") or found.get("expression")
        if "declaration" not in found:
            reader.fail(key, "einsum has no declaration (tensor: [ranks] entries)")
        if exprs is None:
            reader.fail(key, "einsum has no expressions")
        self.declare(found["declaration"][1])
        items = reader.items(exprs[1], "einsum.expressions")
        if not items:
            reader.fail(exprs[0], "einsum.expressions is empty")
        parsed = [
            parse_expression(
                reader.scalar(item, "an expression"),
                _text_location(reader, item),
                self.declared,
                self.ranks,
            )
            for item in items
        ]
        self.name_writes(parsed)

    def declare(self, node: yaml.Node) -> None:
        """`tensor: [RANK, ...]` entries, in order."""
        reader = self.reader
        for tensor, key, ranks_node in reader.entries(node, "einsum.declaration"):
            if not tensor.isidentifier():
                reader.fail(key, f"tensor name '{tensor}' is not an identifier")
            ranks: list[str] = []
            for rank, rank_node in reader.names(ranks_node, f"the ranks of {tensor}"):
                if not RANK_NAME.fullmatch(rank) or rank != rank.upper():
                    reader.fail(
                        rank_node,
                        f"rank '{rank}' of {tensor} must be upper case (its index variable is "
                        "the lower-case name)",
                    )
                if rank in ranks:
                    reader.fail(rank_node, f"{tensor} declares rank {rank} twice")
                ranks.append(rank)
                if rank not in self.ranks:
                    self.ranks.append(rank)
            self.declared[tensor] = ranks

    def name_writes(self, parsed: Sequence[TeaalExpression]) -> None:
        """SSA names: the last write of a tensor keeps its name, earlier ones are renamed."""
        last = {e.tensor: i for i, e in enumerate(parsed)}
        first: dict[str, TeaalExpression] = {}
        taken = set(self.declared) | {a.tensor for e in parsed for a in e.accesses}
        current: dict[str, str] = {}
        for i, expression in enumerate(parsed):
            write = _Write(expression, expression.tensor)
            for access in expression.accesses:
                write.reads.append(self.read(access, current, last, parsed))
            if expression.tensor in first:
                earlier = current[expression.tensor]
                self.reader.warn_at(
                    expression.at.line,
                    f"{expression.tensor} is written again (first on line "
                    f"{first[expression.tensor].at.line}); the earlier value is named {earlier} "
                    "and later expressions read this one",
                )
            first.setdefault(expression.tensor, expression)
            if last[expression.tensor] != i:
                write.name = _fresh(expression.tensor, taken)
            current[expression.tensor] = write.name
            self.writes.append(write)

    def read(
        self,
        access: TeaalAccess,
        current: Mapping[str, str],
        last: Mapping[str, int],
        parsed: Sequence[TeaalExpression],
    ) -> str:
        """The SSA name an access reads: the latest write, an input or a scalar input."""
        if access.tensor in current:
            return current[access.tensor]
        if access.tensor in last:
            writer = parsed[last[access.tensor]]
            self.reader.fail(
                access.at,
                f"{access.tensor} is read before any expression writes it (line "
                f"{writer.at.line} writes it); an Einsum cannot read its own result",
            )
        if access.scalar and access.tensor not in self.scalars:
            self.scalars.append(access.tensor)
        return access.tensor

    # -- rank sizes ----------------------------------------------------------------------

    def rank_table(self) -> dict[str, int]:
        """Every rank's size (see the module docstring for how they are chosen)."""
        sizes = {r: DEFAULT_RANK_SIZE for r in self.ranks}
        for write in self.writes:
            for access in write.expression.accesses:
                for index in access.indices:
                    for var in index.variables:
                        sizes.setdefault(rank_of(var), DEFAULT_RANK_SIZE)
        for write in self.writes:
            for constant in write.expression.constants:
                sizes.setdefault(constant, DEFAULT_STRIDE)
        multiple = {r: 1 for r in sizes}
        for spec in self.mapping.einsums.values():
            for rank, (shapes, _) in spec.partition.items():
                if rank in multiple:
                    multiple[rank] = math.lcm(multiple[rank], math.prod(shapes))
        for rank, m in multiple.items():
            sizes[rank] = -(-sizes[rank] // m) * m
        for _ in range(len(sizes) + 1):
            changed = False
            for write in self.writes:
                for access in write.expression.accesses:
                    for rank, index in zip(
                        self.declared[access.tensor] if not access.scalar else [],
                        access.indices,
                        strict=True,
                    ):
                        if index.as_variable() is not None:
                            continue
                        need = index.bounds(sizes.__getitem__)[1] + 1
                        if need > sizes[rank]:
                            sizes[rank] = -(-need // multiple[rank]) * multiple[rank]
                            changed = True
            if not changed:
                break
        return sizes

    # -- building ------------------------------------------------------------------------

    def build(self, name: str) -> CascadeOp:
        """The cascade, with mappings attached (not yet verified)."""
        writers: dict[str, list[EinsumOp]] = {}
        for write in self.writes:
            writers.setdefault(write.expression.tensor, [])
        check_einsum_names(self.reader, self.mapping, writers)
        sizes = self.rank_table()
        written = {w.expression.tensor for w in self.writes}
        inputs = [(t, TensorType(r, f32)) for t, r in self.declared.items() if t not in written]
        inputs += [(s, TensorType([], f32)) for s in self.scalars]
        block = Block(arg_types=[t for _, t in inputs])
        values: dict[str, SSAValue] = {n: a for (n, _), a in zip(inputs, block.args, strict=True)}
        read: set[str] = set()
        for write in self.writes:
            op = self.einsum(write, values)
            block.add_op(op)
            values[write.name] = op.result
            read.update(write.reads)
            writers[write.expression.tensor].append(op)
        finals = [w.name for w in self.writes if w.name == w.expression.tensor]
        outputs = [n for n in finals if n not in read] or [self.writes[-1].name]
        block.add_op(ReturnOp([values[n] for n in outputs]))
        cascade = CascadeOp(
            name,
            inputs,
            [values[n].type for n in outputs],
            RanksAttr(tuple(sizes.items())),
            Region(block),
        )
        record_location(cascade, self.einsum_at)
        for tensor, spec in self.mapping.einsums.items():
            for op in writers[tensor]:
                op.attributes[MAPPING_ATTR] = resolve_mapping(self.reader, spec, op, sizes)
        if self.mapping.rank_order:
            orders = DictionaryAttr(
                {
                    t: ArrayAttr([StringAttr(r) for r in ranks])
                    for t, ranks in self.mapping.rank_order.items()
                }
            )
            cascade.attributes["teaal"] = DictionaryAttr({"rank_order": orders})
        return cascade

    def einsum(self, write: _Write, values: Mapping[str, SSAValue]) -> EinsumOp:
        """The Einsum op of one expression."""
        expression = write.expression
        accesses: list[tuple[SSAValue | None, Sequence[IndexExpr]]] = [
            (values[name], access.indices)
            for name, access in zip(write.reads, expression.accesses, strict=True)
        ]
        body = build_map_region(expression.expr, [f32] * len(accesses), f32)
        outputs = {v for ix in expression.output for v in ix.variables}
        reduced: list[str] = []
        for _, indices in accesses:
            for index in indices:
                reduced += [v for v in index.variables if v not in outputs and v not in reduced]
        op = EinsumOp(
            write.name,
            expression.output,
            accesses,
            body,
            TensorType(self.declared[expression.tensor], f32),
            [(v, "add") for v in reduced],
        )
        record_location(op, expression.at)
        return op


def _fresh(tensor: str, taken: set[str]) -> str:
    """`T_v1`, `T_v2`, ...: the first name not yet taken (then taken).

    Not `T_1`: xDSL drops a `_<digits>` suffix from value names, so `%T_1` would print as `%T`.
    """
    k = 1
    while f"{tensor}_v{k}" in taken:
        k += 1
    name = f"{tensor}_v{k}"
    taken.add(name)
    return name
