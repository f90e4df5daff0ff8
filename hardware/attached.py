"""An architecture carried by a module (a Timeloop import attaches the spec's), and how passes
and targets choose theirs: the option they are given, else the module's, else `fusemax`."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.ir import Operation

from einsum_opt.hardware.architecture import Architecture
from einsum_opt.hardware.loading import load_architecture

ARCH_ATTR = "einsum.architecture"
"""The module attribute holding an attached architecture, as YAML text (our schema)."""

DEFAULT_ARCHITECTURE = "fusemax"
"""The architecture of passes and targets given none, on a module that carries none."""


def attach_architecture(module: ModuleOp, arch: Architecture) -> None:
    """Make `arch` the module's architecture."""
    module.attributes[ARCH_ATTR] = StringAttr(arch.to_yaml())


def attached_architecture(op: Operation) -> Architecture | None:
    """The architecture attached to the module containing `op` (None if there is none)."""
    text = module_text_attribute(op, ARCH_ATTR)
    if text is None:
        return None
    return Architecture.from_yaml(text, source=f"the module's {ARCH_ATTR}")


def module_text_attribute(op: Operation, name: str) -> str | None:
    """The string attribute `name` of the module containing `op` (None if it has none)."""
    node: Operation | None = op
    while node is not None and not isinstance(node, ModuleOp):
        node = node.parent_op()
    if node is None:
        return None
    attr = node.attributes.get(name)
    return attr.data if isinstance(attr, StringAttr) else None


def choose_architecture(option: str | None, op: Operation) -> tuple[Architecture, str]:
    """The architecture a pass or target uses, and the name programs record: the option (a
    built-in name or a YAML path), else the module's attached one, else `fusemax`."""
    if option:
        return load_architecture(option), option
    attached = attached_architecture(op)
    if attached is not None:
        return attached, attached.name
    return load_architecture(DEFAULT_ARCHITECTURE), DEFAULT_ARCHITECTURE
