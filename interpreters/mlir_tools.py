"""Finding and running the MLIR tools: `mlir-opt-22`, `mlir-runner-22` and the runtime
libraries the printing functions live in.

The tools are `mlir-opt-22` and `mlir-runner-22` on PATH (Debian's `mlir-22-tools`), or the
programs named by `EINSUM_MLIR_OPT` and `EINSUM_MLIR_RUNNER`. The runtime libraries
(`libmlir_runner_utils`, `libmlir_c_runner_utils`, from `libmlir-22`) are looked for in
`EINSUM_MLIR_LIBDIR`, then beside the runner (`../lib` of the resolved program), then in the
usual library folders.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from einsum_opt.support.errors import UserError

VERSION = "22"
"""The MLIR release whose tools and syntax the export targets."""

LIBRARIES = ("mlir_runner_utils", "mlir_c_runner_utils")
"""The runtime libraries the printing functions live in."""


class MlirToolError(UserError):
    """The MLIR tools are missing or failed (the message says which and why)."""


@dataclass(frozen=True)
class MlirTools:
    """Where `mlir-opt`, `mlir-runner` and the runtime libraries are."""

    opt: str
    runner: str
    libraries: tuple[str, ...]


def _program(variable: str, name: str) -> tuple[str, str | None]:
    """The program's name (from the environment variable, else `name`) and its path."""
    wanted = os.environ.get(variable) or name
    return wanted, shutil.which(wanted)


def find_tools() -> MlirTools:
    """The tools and runtime libraries; MlirToolError naming what is missing."""
    opt_name, opt = _program("EINSUM_MLIR_OPT", f"mlir-opt-{VERSION}")
    runner_name, runner = _program("EINSUM_MLIR_RUNNER", f"mlir-runner-{VERSION}")
    missing = [name for name, path in ((opt_name, opt), (runner_name, runner)) if path is None]
    if opt is None or runner is None:
        raise MlirToolError(
            f"the MLIR backend needs {' and '.join(missing)}, not found on PATH (Debian: "
            f"apt-get install mlir-{VERSION}-tools; or name the programs in EINSUM_MLIR_OPT "
            "and EINSUM_MLIR_RUNNER)"
        )
    libraries = []
    for library in LIBRARIES:
        path = _find_library(library, runner)
        if path is None:
            raise MlirToolError(
                f"cannot find lib{library}.so (from libmlir-{VERSION}; set EINSUM_MLIR_LIBDIR "
                "to the folder that holds it)"
            )
        libraries.append(path)
    return MlirTools(opt, runner, tuple(libraries))


def tools_available() -> bool:
    """Whether `find_tools()` succeeds."""
    try:
        find_tools()
    except MlirToolError:
        return False
    return True


def _library_folders(runner: str) -> list[Path]:
    folders = []
    if os.environ.get("EINSUM_MLIR_LIBDIR"):
        folders.append(Path(os.environ["EINSUM_MLIR_LIBDIR"]))
    folders.append(Path(os.path.realpath(runner)).parent.parent / "lib")
    folders.append(Path(f"/usr/lib/llvm-{VERSION}/lib"))
    folders += [Path(p) for p in sorted(glob.glob("/usr/lib/llvm-*/lib"), reverse=True)]
    folders += [Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/local/lib"), Path("/usr/lib")]
    return folders


def _find_library(library: str, runner: str) -> str | None:
    for folder in _library_folders(runner):
        for pattern in (f"lib{library}.so", f"lib{library}.so.{VERSION}*", f"lib{library}.so.*"):
            found = sorted(glob.glob(str(folder / pattern)))
            if found:
                return found[0]
    return None


def run_tool(command: list[str], program: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as e:
        raise MlirToolError(f"cannot run {program}: {e.strerror or e}") from e
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise MlirToolError(
            f"{Path(program).name} was killed by {name} (e.g. an integer division by zero)"
        )
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln), lines[0] if lines else "no message")
        raise MlirToolError(f"{Path(program).name} failed (exit status {done.returncode}): {first}")
    return done.stdout
