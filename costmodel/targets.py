"""`einsum-opt` targets printing the cost of a module's dataflow programs.

`-t cost-report` prints a table, `-t cost-json` the JSON report. Both take the architecture
(`-t 'cost-json{arch=flat}'`: a built-in name or the path of a YAML file) and the energy
accounting (`accounting=artifact`: storage charged for one instance per level, as the FuseMax
artifact does; `physical` by default). Without `arch`, the architecture the programs were
lowered for: the module's attached one when it has that name, else the built-in of that name.
A program lowered for one architecture and costed against another is costed with a warning
naming both when the other has every level and unit the program uses, and is an error
otherwise.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from einsum_opt.costmodel.report import CostReport


def _report(module: ModuleOp, arch: str | None, accounting: str) -> CostReport:
    """The report on `arch`, or on the architecture the programs were lowered for."""
    from einsum_opt.costmodel.model import CostModelError, evaluate_module, level_of
    from einsum_opt.dialects.dataflow import AccessOp, ComputeOp, programs_in
    from einsum_opt.hardware import Architecture, ArchitectureError, load_architecture
    from einsum_opt.hardware.attached import attached_architecture
    from einsum_opt.support.errors import UserError

    programs = programs_in(module)
    named = sorted({p.arch_name for p in programs})
    try:
        attached = attached_architecture(module)
        lowered: Architecture | None = None
        if len(named) == 1:
            if attached is not None and attached.name == named[0]:
                lowered = attached
            else:
                lowered = load_architecture(named[0])
        if len(named) > 1:
            raise UserError(
                f"the module's programs were lowered for different architectures "
                f"({', '.join(named)}): cost them separately"
            )
        chosen = load_architecture(arch) if arch else lowered or attached
        if chosen is None:
            chosen = load_architecture("fusemax")
        if named and arch and (lowered is None or chosen.name != lowered.name):
            for program in programs:
                for op in program.walk():
                    if isinstance(op, AccessOp):
                        try:
                            level_of(chosen, op.level_name)
                        except CostModelError:
                            raise UserError(
                                f"program @{program.program_name} was lowered for architecture "
                                f"'{named[0]}' and cannot be costed against '{chosen.name}' "
                                f"(it has no level {op.level_name}): lower it again with "
                                f"lower-to-dataflow{{arch={arch}}}"
                            ) from None
                    if isinstance(op, ComputeOp) and op.unit_name not in chosen.units:
                        raise UserError(
                            f"program @{program.program_name} was lowered for architecture "
                            f"'{named[0]}' and cannot be costed against '{chosen.name}' (it "
                            f"has no unit {op.unit_name})"
                        )
            print(
                f"warning: the programs were lowered for architecture '{named[0]}' and are "
                f"costed against '{chosen.name}'",
                file=sys.stderr,
            )
        return evaluate_module(module, chosen, accounting)
    except (CostModelError, ArchitectureError) as error:
        raise UserError(str(error)) from None


@dataclass(frozen=True)
class CostReportTarget(Target):
    """`-t cost-report{arch=NAME accounting=physical}`: the cost of the module's dataflow
    programs as a table."""

    name: ClassVar[str] = "cost-report"
    arch: str | None = None
    accounting: str = "physical"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(_report(module, self.arch, self.accounting).to_table())


@dataclass(frozen=True)
class CostJsonTarget(Target):
    """`-t cost-json{arch=NAME accounting=physical}`: the cost of the module's dataflow
    programs as JSON."""

    name: ClassVar[str] = "cost-json"
    arch: str | None = None
    accounting: str = "physical"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(_report(module, self.arch, self.accounting).to_json() + "\n")
