"""The cost model: architecture descriptions (`architecture`) and, later, the dataflow
interpreter that reports cycles, utilisation, traffic and energy."""

from einsum_opt.costmodel.architecture import (
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
