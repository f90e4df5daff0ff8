"""Hardware descriptions, the bottom layer above the dialects: architectures (a tree of storage
levels, compute units, energies, area) as data, loaded from YAML or built in."""

from einsum_opt.hardware.architecture import (
    REGISTERS,
    Architecture,
    ChainLevel,
    StorageLevel,
    Unit,
)
from einsum_opt.hardware.errors import ArchitectureError
from einsum_opt.hardware.loading import builtin_architectures, load_architecture
from einsum_opt.hardware.operations import OP_KINDS

__all__ = [
    "OP_KINDS",
    "REGISTERS",
    "Architecture",
    "ArchitectureError",
    "ChainLevel",
    "StorageLevel",
    "Unit",
    "builtin_architectures",
    "load_architecture",
]
