"""`apply-mapping{file=mapping.yaml}`: attach `#einsum.mapping` from a TeAAL-style mapping file.

The file holds TeAAL's `mapping:` (`partitioning`, `loop-order`, `spacetime`) and `bindings:`
sections, keyed by the Einsums they map, and our extension `storage: {EINSUM: {TENSOR: LEVEL}}`:

```yaml
mapping:
  partitioning: {QK: {P: [uniform_shape(256)]}}
  loop-order: {QK: [M1, P1, E, P0, M0]}
  spacetime: {QK: {space: [P0, M0], time: [M1, P1, E]}}
bindings: {QK: pe2d}
storage: {QK: {Q: GLB, BK: GLB, QK: PE}}
```

It is read by the same code as the TeAAL frontend (`frontends/teaal_mapping.py`), so the same
forms are accepted and the same warnings given (`mapping.rank-order` is ignored here). Each
Einsum the file names gets a new mapping, replacing any it had; Einsums it does not name keep
theirs. An Einsum name no cascade has, a rank an Einsum does not have, a loop order that is not
a permutation of the loop ranks, a spatial iterative rank or a partition shape that does not
divide its rank fails the pass with the file, line and column, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from einsum_opt.dialects.einsum import CascadeOp, EinsumOp, cascades_in
from einsum_opt.dialects.einsum_mapping import MAPPING_ATTR, MappingAttr
from einsum_opt.frontends.errors import NotationError
from einsum_opt.frontends.teaal_mapping import (
    check_einsum_names,
    read_mapping_sections,
    resolve_mapping,
)
from einsum_opt.frontends.teaal_yaml import SpecFileError, SpecReader, Warn

SECTIONS = ("mapping", "bindings", "storage")
"""The sections of a mapping file."""


def apply_mapping_file(
    target: ModuleOp | CascadeOp, path: str | Path, warn: Warn | None = None
) -> None:
    """Read the mapping file at `path` and apply it (see `apply_mapping_text`)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise PassFailedException(f"apply-mapping: cannot read '{path}': no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise PassFailedException(f"apply-mapping: cannot read '{path}': {reason}") from None
    apply_mapping_text(target, text, str(path), warn)


def apply_mapping_text(
    target: ModuleOp | CascadeOp, text: str, filename: str, warn: Warn | None = None
) -> None:
    """Attach the mappings a mapping file's text gives to the Einsums it names.

    Raises `PassFailedException` (`apply-mapping: file:line:col: message`), leaving `target`
    unchanged, when the file is malformed or a mapping does not fit its Einsum.
    """
    try:
        changes = _mappings(target, text, SpecReader(filename, warn))
    except SpecFileError as e:
        raise PassFailedException(f"apply-mapping: {e.filename}: {e.message}") from None
    except NotationError as e:
        raise PassFailedException(
            f"apply-mapping: {e.filename}:{e.line}:{e.column}: {e.message}"
        ) from None
    for op, mapping in changes:
        op.attributes[MAPPING_ATTR] = mapping


def _mappings(
    target: ModuleOp | CascadeOp, text: str, reader: SpecReader
) -> Sequence[tuple[EinsumOp, MappingAttr]]:
    """Every (Einsum, new mapping) pair, all checked before any is applied."""
    root = reader.compose(text)
    sections: dict[str, yaml.Node] = {}
    for key, key_node, value in reader.entries(root, "a mapping file") if root else []:
        if key in SECTIONS:
            sections[key] = value
        else:
            reader.warn(
                key_node,
                f"section '{key}' is not read by apply-mapping (it reads "
                f"{', '.join(SECTIONS)}); ignored",
            )
    if not sections:
        reader.fail(None, f"no {', '.join(SECTIONS)} section: nothing to apply")
    read = read_mapping_sections(
        reader, sections.get("mapping"), sections.get("bindings"), sections.get("storage")
    )
    if read.rank_order_node is not None:
        reader.warn(
            read.rank_order_node, "mapping.rank-order is not part of #einsum.mapping; ignored"
        )
    einsums: dict[str, list[tuple[CascadeOp, EinsumOp]]] = {}
    for cascade in cascades_in(target):
        for op in cascade.einsums():
            einsums.setdefault(op.tensor_name, []).append((cascade, op))
    check_einsum_names(reader, read, einsums)
    return [
        (op, resolve_mapping(reader, spec, op, cascade.rank_sizes()))
        for name, spec in read.einsums.items()
        for cascade, op in einsums[name]
    ]


@dataclass(frozen=True)
class ApplyMappingPass(ModulePass):
    """Attach `#einsum.mapping` to the Einsums a TeAAL-style mapping file names:
    `apply-mapping{file="examples/attention/fusemax_mapping.yaml"}`."""

    name = "apply-mapping"
    file: str

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        apply_mapping_file(op, self.file)
