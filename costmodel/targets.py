"""`einsum-opt` targets printing the cost of a module's dataflow programs.

`-t cost-report` prints a table, `-t cost-json` the JSON report; both take the architecture as
an option: `-t 'cost-json{arch=flat}'` (a built-in name or the path of a YAML file); without
it, the architecture the program was lowered for (`lower-to-dataflow{arch=...}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from einsum_opt.costmodel.report import CostReport


def _report(module: ModuleOp, arch: str | None) -> CostReport:
    """The report on `arch`, or on the architecture the programs were lowered for."""
    from einsum_opt.costmodel.model import CostModelError, evaluate_module
    from einsum_opt.dialects.dataflow import programs_in
    from einsum_opt.hardware.architecture import ArchitectureError
    from einsum_opt.support.errors import UserError

    if arch is None:
        named = {p.arch_name for p in programs_in(module)}
        arch = named.pop() if len(named) == 1 else "fusemax"
    try:
        return evaluate_module(module, arch)
    except (CostModelError, ArchitectureError) as error:
        raise UserError(str(error)) from None


@dataclass(frozen=True)
class CostReportTarget(Target):
    """`-t cost-report{arch=NAME}`: the cost of the module's dataflow programs as a table."""

    name: ClassVar[str] = "cost-report"
    arch: str | None = None

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(_report(module, self.arch).to_table())


@dataclass(frozen=True)
class CostJsonTarget(Target):
    """`-t cost-json{arch=NAME}`: the cost of the module's dataflow programs as JSON."""

    name: ClassVar[str] = "cost-json"
    arch: str | None = None

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        output.write(_report(module, self.arch).to_json() + "\n")
