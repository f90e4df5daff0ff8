"""Timeloop v0.4 inputs → `TimeloopSpec`: the processed `input.yaml` (architecture, problem,
mapping), an optional separate mapping file (such as the mapper's `.map.yaml`), and the ERT and
ART Accelergy made for it. Every error is one line naming the file and the field path."""

from __future__ import annotations

from pathlib import Path

from einsum_opt.frontends.timeloop_arch import read_architecture
from einsum_opt.frontends.timeloop_constraints import read_constraints
from einsum_opt.frontends.timeloop_fields import Field, TimeloopSpecError, load_yaml
from einsum_opt.frontends.timeloop_mapping import read_mapping
from einsum_opt.frontends.timeloop_problem import read_problem
from einsum_opt.frontends.timeloop_tables import read_art, read_ert
from einsum_opt.frontends.timeloop_types import (
    Architecture,
    ArithmeticLevel,
    Art,
    DataSpace,
    Ert,
    LevelMapping,
    MappedLoop,
    Problem,
    ProjectionTerm,
    StorageLevel,
    TimeloopMapping,
    TimeloopSpec,
)

__all__ = [
    "Architecture",
    "ArithmeticLevel",
    "Art",
    "DataSpace",
    "Ert",
    "LevelMapping",
    "MappedLoop",
    "Problem",
    "ProjectionTerm",
    "StorageLevel",
    "TimeloopMapping",
    "TimeloopSpec",
    "TimeloopSpecError",
    "load_timeloop_spec",
]


def load_timeloop_spec(
    input_path: Path | str,
    ert_path: Path | str | None = None,
    art_path: Path | str | None = None,
    mapping_path: Path | str | None = None,
) -> TimeloopSpec:
    """Read a Timeloop case. The mapping comes from `mapping_path` when given, else from the
    input's `mapping`; an input without one (a mapper's input: no `mapping`, or an empty
    list) has none, to be searched. The ERT and ART come from their files when given, else
    from `ERT`/`ART` entries of the input, else they are None."""
    document = load_yaml(input_path)
    document.mapping()
    architecture = read_architecture(document.need("architecture"))
    problem = read_problem(document.need("problem"))
    mapping_root = load_yaml(mapping_path) if mapping_path is not None else document.get("mapping")
    mapping = None
    if mapping_path is not None or not _unmapped(mapping_root):
        mapping = read_mapping(mapping_root, architecture, problem)
    constraints = read_constraints(document, architecture, problem)
    ert: Ert | None = None
    if ert_path is not None:
        ert = read_ert(load_yaml(ert_path))
    elif document.has("ERT"):
        ert = read_ert(document.get("ERT"))
    art: Art | None = None
    if art_path is not None:
        art = read_art(load_yaml(art_path))
    elif document.has("ART"):
        art = read_art(document.get("ART"))
    return TimeloopSpec(architecture, problem, mapping, ert, art, constraints)


def _unmapped(root: Field) -> bool:
    """Whether an input's `mapping` is absent or an empty list (a mapper's input)."""
    return root.is_null() or (isinstance(root.value, list) and not root.value)
