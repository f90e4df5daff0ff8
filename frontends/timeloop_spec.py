"""Timeloop v0.4 inputs → `TimeloopSpec`: an `input.yaml` with architecture, problem and mapping
(as users write it for the front end, the architecture a list of `nodes`, or as the front end
hands it to timeloop-model, a tree of `subtree`/`local` levels), an optional separate mapping
file (such as the mapper's `.map.yaml`), and the ERT and ART Accelergy made for it. Every error
is one line naming the file, the line and column where known, and the field path."""

from __future__ import annotations

from pathlib import Path

from einsum_opt.frontends.timeloop_arch import read_architecture
from einsum_opt.frontends.timeloop_constraints import read_constraints
from einsum_opt.frontends.timeloop_fields import TimeloopSpecError, load_yaml
from einsum_opt.frontends.timeloop_mapping import Directive, read_mapping
from einsum_opt.frontends.timeloop_nodes import (
    is_node_form,
    read_constraint_targets,
    read_node_architecture,
)
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
from einsum_opt.hardware.mapspace import MapspaceConstraints

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
    input's `mapping`; an input without one (a mapper's input, no `mapping` key) has none, to
    be searched within its constraints. The ERT and ART come from their files when given, else
    from `ERT`/`ART` entries of the input, else they are None."""
    document = load_yaml(input_path)
    document.mapping()
    architecture_field = document.need("architecture")
    implied: list[Directive] = []
    if is_node_form(architecture_field):
        architecture, implied = read_node_architecture(architecture_field)
        implied += read_constraint_targets(document.get("constraints"))
    else:
        architecture = read_architecture(architecture_field)
    problem = read_problem(document.need("problem"))
    constraints = MapspaceConstraints()
    mapping: TimeloopMapping | None = None
    if mapping_path is not None:
        # A mapping file is read as timeloop-model reads one (a mapper's `.map.yaml`): it is
        # the whole mapping, so the architecture's constraints, the mapper's, do not apply.
        mapping = read_mapping(load_yaml(mapping_path), architecture, problem)
    elif not document.has("mapping"):
        # A mapper's input: the constraints bound the mapping map-search looks for.
        constraints = read_constraints(document, architecture, problem, implied)
    else:
        combine = architecture.node_form
        mapping = read_mapping(document.get("mapping"), architecture, problem, implied, combine)
    ert: Ert | None = None
    ert_file: str | None = None
    if ert_path is not None:
        ert, ert_file = read_ert(load_yaml(ert_path)), str(ert_path)
    elif document.has("ERT"):
        ert, ert_file = read_ert(document.get("ERT")), str(input_path)
    art: Art | None = None
    if art_path is not None:
        art = read_art(load_yaml(art_path))
    elif document.has("ART"):
        art = read_art(document.get("ART"))
    return TimeloopSpec(
        architecture,
        problem,
        mapping,
        ert,
        art,
        ert_file,
        input_file=str(input_path),
        constraints=constraints,
    )

