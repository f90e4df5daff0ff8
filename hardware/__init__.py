"""Hardware descriptions, the bottom layer above the dialects: architectures (storage levels,
compute units, energies, area) as data, loaded from YAML or built in."""

from einsum_opt.hardware.architecture import (
    OP_KINDS,
    STORAGE_LEVELS,
    Architecture,
    ArchitectureError,
    StorageLevel,
    Unit,
    builtin_architectures,
    load_architecture,
)

__all__ = [
    "OP_KINDS",
    "STORAGE_LEVELS",
    "Architecture",
    "ArchitectureError",
    "StorageLevel",
    "Unit",
    "builtin_architectures",
    "load_architecture",
]
