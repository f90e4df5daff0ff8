"""A parsed Timeloop case (`frontends.timeloop_spec`) as the cost model's inputs: the nest the
analysis takes and the per-level hardware facts the level costs take.

Energies come from the ERT as Timeloop looks them up: a read costs the component's `read`
(or `random_read`), a fill its `write`/`fill`, an update its `update`/`write`; `leak` is per
cycle per instance. An action the ERT lacks is left unspecified (Timeloop would fall back to
its built-in PAT estimate, which this model does not have): costing a level that needs it is
an error. Areas come from the ART."""

from __future__ import annotations

from einsum_opt.costmodel.level_costs import ComputeHardware, LevelHardware
from einsum_opt.costmodel.nest_spec import (
    LevelSpec,
    Loop,
    NestSpec,
    NestSpecError,
    TensorSpec,
    Term,
)
from einsum_opt.frontends.timeloop_energy import compute_action, storage_actions
from einsum_opt.frontends.timeloop_types import StorageLevel, TimeloopSpec


def to_nest_spec(spec: TimeloopSpec) -> NestSpec:
    """The mapped nest of a Timeloop case."""
    if spec.mapping is None:
        raise NestSpecError("the Timeloop case has no mapping (a mapper's input)")
    problem = spec.problem
    tensors = tuple(
        TensorSpec(
            space.name,
            tuple(
                tuple(Term(problem.coefficient_value(t), t.dim) for t in rank)
                for rank in space.projection
            ),
            space.read_write,
        )
        for space in problem.data_spaces
    )
    levels = []
    for storage, mapped in zip(spec.architecture.storage, spec.mapping.levels, strict=True):
        loops = tuple(Loop(m.dim, m.factor, m.axis) for m in mapped.temporal + mapped.spatial)
        levels.append(LevelSpec(storage.name, storage.mesh_x, storage.mesh_y, mapped.keep, loops))
    arithmetic = spec.architecture.arithmetic
    return NestSpec(
        dims=dict(problem.bounds),
        tensors=tensors,
        levels=tuple(levels),
        compute_mesh_x=arithmetic.mesh_x,
        compute_mesh_y=arithmetic.mesh_y,
    )


def _storage_hardware(spec: TimeloopSpec, level: StorageLevel) -> LevelHardware:
    actions = storage_actions(spec, level)
    return LevelHardware(
        name=level.name,
        instances=level.instances,
        block_size=level.block_size,
        cluster_size=level.cluster_size,
        read_pj=actions.read,
        write_pj=actions.fill,
        update_pj=actions.update,
        leak_pj_per_cycle=actions.leak,
        read_bandwidth=level.read_bandwidth,
        write_bandwidth=level.write_bandwidth,
        shared_bandwidth=level.shared_bandwidth,
        area_um2=actions.area,
        multiple_buffering=level.multiple_buffering,
        size_words=level.size,
    )


def to_level_hardware(spec: TimeloopSpec) -> tuple[tuple[LevelHardware, ...], ComputeHardware]:
    """Per storage level (outermost first) and for the arithmetic units: energies per action,
    leakage, bandwidths, capacity and area, as Timeloop takes them from the spec, ERT and ART."""
    ert = spec.ert or {}
    for wire in ("wire", "Wire"):
        if any(v for v in ert.get(wire, {}).values()):
            raise NestSpecError(
                f"{spec.ert_file or 'ERT'}: wire energy (network energy) is not supported"
            )
    levels = tuple(_storage_hardware(spec, level) for level in spec.architecture.storage)
    arithmetic = spec.architecture.arithmetic
    compute_pj, area = compute_action(spec)
    compute = ComputeHardware(
        name=arithmetic.name,
        compute_pj=compute_pj,
        leak_pj_per_cycle=0.0,  # timeloop-model adds no arithmetic leakage
        area_um2=area,
        instances=arithmetic.instances,
    )
    return levels, compute
