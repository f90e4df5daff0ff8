"""`einsum-opt` targets printing the cost of a module's dataflow programs.

`-t cost-report` prints a table, `-t cost-json` the JSON report. Both take the architecture
(`-t 'cost-json{arch=flat}'`: a built-in name or the path of a YAML file) and the energy
accounting (`accounting=artifact`: storage charged for one instance per level, as the FuseMax
artifact does; `physical` by default). Without `arch`, the architecture the programs were
lowered for (`costmodel/costing.py`): a program lowered for one architecture and costed
against another is costed with a warning naming both when the other has every level and unit
the program uses, and is an error otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from einsum_opt.costmodel.report import CostReport


def _report(module: ModuleOp, arch: str | None, accounting: str) -> CostReport:
    """The report on `arch`, or on the architecture the programs were lowered for."""
    import sys

    from einsum_opt.costmodel.costing import cost_programs

    report = cost_programs(module, arch, accounting)
    for overflow in report.overflows:
        print(f"warning: {overflow.describe()}", file=sys.stderr)
    return report


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
