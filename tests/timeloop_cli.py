"""Running a Timeloop case through the command line the issue states:

einsum-opt INPUT --ert ERT [--art ART] [extra options]
    -p lower-to-loopnest,lower-to-dataflow -t cost-json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def einsum_opt() -> list[str]:
    """The `einsum-opt` of this environment (the console script users run)."""
    script = Path(sys.executable).parent / "einsum-opt"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "einsum_opt.tools.einsum_opt"]


def cost_json(input_yaml: Path, ert: Path, art: Path | None, *extra: str) -> dict[str, Any]:
    """The cost JSON of a case; the run must succeed and print nothing on stderr."""
    tables = ["--ert", str(ert), *(["--art", str(art)] if art is not None else [])]
    command = [
        *einsum_opt(),
        str(input_yaml),
        *tables,
        *extra,
        "-p",
        "lower-to-loopnest,lower-to-dataflow",
        "-t",
        "cost-json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]
