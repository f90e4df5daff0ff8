"""Cost a module's dataflow programs on the architecture they were lowered for, or on another.

Without an architecture, the one the programs name (`dataflow.program ... on NAME`): the
module's attached architecture when it has that name, else the built-in or YAML file of that
name; a module without programs' names takes its attached one, else `fusemax`. Given another
architecture (different in any field, not only by name), the programs are costed against it
with a warning naming both when it has every level and unit they use, and it is an error
otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from xdsl.dialects.builtin import ModuleOp

from einsum_opt.costmodel.report import CostReport
from einsum_opt.hardware import Architecture


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def lowered_architecture(module: ModuleOp) -> tuple[Architecture | None, str | None]:
    """The architecture the module's programs were lowered for and its name as they record
    it ((None, None) without programs); UserError when they name several."""
    from einsum_opt.dialects.dataflow import programs_in
    from einsum_opt.hardware import load_architecture
    from einsum_opt.hardware.attached import attached_architecture
    from einsum_opt.support.errors import UserError

    named = sorted({p.arch_name for p in programs_in(module)})
    if len(named) > 1:
        raise UserError(
            f"the module's programs were lowered for different architectures "
            f"({', '.join(named)}): cost them separately"
        )
    if not named:
        return None, None
    attached = attached_architecture(module)
    if attached is not None and attached.name == named[0]:
        return attached, named[0]
    return load_architecture(named[0]), named[0]


def _check_costable(
    module: ModuleOp, lowered: str, chosen: Architecture, option: str | None
) -> None:
    """UserError unless `chosen` (given as `option`) has every level and unit the programs
    use."""
    from einsum_opt.costmodel.model import CostModelError, level_of
    from einsum_opt.dialects.dataflow import AccessOp, ComputeOp, programs_in
    from einsum_opt.support.errors import UserError

    for program in programs_in(module):
        start = (
            f"program @{program.program_name} was lowered for architecture '{lowered}' and "
            f"cannot be costed against '{chosen.name}'"
        )
        for op in program.walk():
            if isinstance(op, AccessOp):
                try:
                    level_of(chosen, op.level_name)
                except CostModelError:
                    raise UserError(
                        f"{start} (it has no level {op.level_name}): lower it again with "
                        f"lower-to-dataflow{{arch={option or chosen.name}}}"
                    ) from None
            if isinstance(op, ComputeOp) and op.unit_name not in chosen.units:
                raise UserError(f"{start} (it has no unit {op.unit_name})")


def cost_programs(
    module: ModuleOp,
    arch: str | Architecture | None = None,
    accounting: str = "physical",
    warn: Callable[[str], None] = _warn_on_stderr,
) -> CostReport:
    """The cost report of the module's programs on `arch` (a built-in name, a YAML path or
    an `Architecture`; None: the one they were lowered for; see the module docstring).
    UserError for an unusable architecture or accounting, or programs it cannot cost."""
    from einsum_opt.costmodel.model import CostModelError, evaluate_module
    from einsum_opt.hardware import ArchitectureError, load_architecture
    from einsum_opt.hardware.attached import attached_architecture
    from einsum_opt.support.errors import UserError

    try:
        lowered, lowered_name = lowered_architecture(module)
        if arch is None:
            chosen = lowered or attached_architecture(module) or load_architecture("fusemax")
        else:
            chosen = arch if isinstance(arch, Architecture) else load_architecture(arch)
        if lowered is not None and lowered_name is not None and chosen != lowered:
            option = arch if isinstance(arch, str) else None
            _check_costable(module, lowered_name, chosen, option)
            other = (
                f"another architecture named '{chosen.name}'"
                + (f" ({option})" if option and option != chosen.name else "")
                if chosen.name == lowered.name
                else f"'{chosen.name}'"
            )
            warn(
                f"the programs were lowered for architecture '{lowered_name}' and are costed "
                f"against {other}"
            )
        return evaluate_module(module, chosen, accounting)
    except (CostModelError, ArchitectureError) as error:
        raise UserError(str(error)) from None
