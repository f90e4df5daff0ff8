"""`einsum-run`: run a cascade on numpy arrays with the reference interpreter.

```
einsum-run FILE [--inputs in.npz] [--seed N] [--ranks M=512,P=256] [-o out.npz]
                [--cascade NAME] [--print] [-f mlir|einsum|yaml] [--backend numpy|mlir]
```

FILE is `.mlir`, `.einsum` or a TeAAL `.yaml` (`-f` says which when the extension does not,
else the content decides); `-` reads standard input. Inputs come from an `.npz` archive keyed
by input name; inputs it does not hold are drawn at random from `--seed` (standard normal
floats, small integers).
With `-o`, the outputs are written to an `.npz` archive keyed by output name (only once the
run succeeded, never half-written); otherwise, and with `--print`, one summary line per output
is printed (with `--print`, followed by the array as numpy prints it). An output that is an
iterative tensor holds one extra entry along its iterative rank (index 0 = initial value).
`--backend mlir` runs the cascade through upstream MLIR instead (`lower-to-linalg`,
`mlir-opt-22`, `mlir-runner-22`; `lowering.mlir_execution`) and writes the same archive.
Every failure prints one `error:` line on stderr and exits with status 1.
"""

from __future__ import annotations

import argparse
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from einsum_opt.support.atomic_write import check_writable, write_atomically
from einsum_opt.support.errors import UserError
from einsum_opt.tools.diagnostics import run_reporting_errors
from einsum_opt.transforms.set_ranks import RANKS_HELP, parse_rank_sizes

if TYPE_CHECKING:
    import numpy as np
    from xdsl.dialects.builtin import ModuleOp


class _ArgumentParser(argparse.ArgumentParser):
    """Reports usage errors as one `error:` line (via UserError) instead of usage + exit 2."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see einsum-run --help)")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of einsum-run."""
    from einsum_opt.frontends.loading import LOADERS

    parser = _ArgumentParser(
        prog="einsum-run",
        description="Run a cascade of Extended Einsums on numpy arrays (reference semantics).",
    )
    parser.add_argument(
        "file", metavar="FILE", help="cascade to run (.mlir, .einsum or .yaml; - for stdin)"
    )
    parser.add_argument(
        "-f",
        "--frontend",
        choices=sorted(LOADERS),
        help="input format, when the extension does not say it (default: from the content)",
    )
    parser.add_argument("--inputs", metavar="NPZ", help="input arrays keyed by input name")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for inputs not given in --inputs (default 0)"
    )
    parser.add_argument(
        "--ranks", metavar="NAME=SIZE,...", action="append", default=[], help=RANKS_HELP
    )
    parser.add_argument("-o", "--output", metavar="NPZ", help="write outputs to this .npz file")
    parser.add_argument("--cascade", metavar="NAME", help="cascade to run when FILE holds several")
    parser.add_argument(
        "--print", dest="print_arrays", action="store_true", help="print the output arrays"
    )
    parser.add_argument(
        "--backend",
        choices=("numpy", "mlir"),
        default="numpy",
        help="numpy: the reference interpreter (default); mlir: compile and run with "
        "mlir-opt-22 and mlir-runner-22",
    )
    return parser


def read_inputs(path: str) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` archive by name; UserError if it is not one."""
    import numpy as np

    try:
        with open(path, "rb") as file:
            is_archive = zipfile.is_zipfile(file)
        if not is_archive:
            raise UserError(f"cannot read inputs from '{path}': not an .npz archive")
        loaded = np.load(path, allow_pickle=False)
        assert isinstance(loaded, np.lib.npyio.NpzFile)
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (FileNotFoundError, IsADirectoryError):
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read inputs from '{path}': {e}") from e


def write_outputs(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an `.npz` archive atomically (`atomic_write`); UserError if it cannot be written."""
    import numpy as np

    def write(file: BinaryIO) -> None:
        with zipfile.ZipFile(file, "w") as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    write_atomically(path, write)


def summary(name: str, array: np.ndarray) -> str:
    """`AV shape=(64, 1024) dtype=float32 min=... max=... mean=... std=...`."""
    import numpy as np

    parts = [name, f"shape={array.shape}", f"dtype={array.dtype}"]
    finite = array[np.isfinite(array)] if array.dtype.kind == "f" else array.reshape(-1)
    if finite.size:
        if finite.dtype.kind == "f":  # f32 values near the largest finite square to inf
            finite = finite.astype(np.float64)
        stats = {
            "min": finite.min(),
            "max": finite.max(),
            "mean": finite.mean(),
            "std": finite.std(),
        }
        parts += [f"{k}={float(v):.6g}" for k, v in stats.items()]
    if finite.size != array.size:
        parts.append(f"nonfinite={array.size - finite.size}")
    return " ".join(parts)


def _only_cascade(module: ModuleOp, filename: str) -> str | None:
    """The name of the single cascade in `module`; UserError asking for --cascade if several."""
    from einsum_opt.dialects.einsum import cascades_in

    names = [op.cascade_name for op in cascades_in(module)]
    if len(names) > 1:
        listed = ", ".join(f"@{n}" for n in names)
        raise UserError(
            f"{filename} holds {len(names)} cascades ({listed}): choose one with --cascade NAME"
        )
    return names[0] if names else None


def run(args: argparse.Namespace) -> int:
    """Load, run and report, for parsed options."""
    from einsum_opt.frontends.loading import load_file
    from einsum_opt.interpreters.einsum import ExecutionError, find_cascade, run_cascade

    try:
        ranks = parse_rank_sizes(",".join(args.ranks)) if args.ranks else {}
    except ValueError as e:
        raise UserError(f"--ranks {e}") from None
    output = Path(args.output) if args.output else None
    if output is not None:
        check_writable(output)
    module = load_file(args.file, kind=args.frontend)
    inputs = read_inputs(args.inputs) if args.inputs else {}
    try:
        cascade = find_cascade(module, args.cascade or _only_cascade(module, args.file))
        names = [n for n, _ in cascade.inputs()]
        for key in inputs:
            if key not in names:
                raise UserError(
                    f"'{args.inputs}' holds '{key}', which is not an input of "
                    f"@{cascade.cascade_name} (inputs: {', '.join(names) or 'none'})"
                )
        if args.backend == "mlir":
            from einsum_opt.lowering.mlir_execution import run_cascade_with_mlir

            outputs = run_cascade_with_mlir(cascade, inputs, ranks=ranks, seed=args.seed)
        else:
            outputs = run_cascade(cascade, inputs, ranks=ranks, seed=args.seed)
    except ExecutionError as e:
        if e.op is not None:  # about an op of the input: printed at its place
            raise
        raise UserError(str(e)) from e
    if output is not None:
        write_outputs(output, outputs)
    if output is None or args.print_arrays:
        for name, array in outputs.items():
            print(summary(name, array))
            if args.print_arrays:
                print(array)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `einsum-run`; returns the exit status."""
    from einsum_opt.frontends.loading import STDIN, STDIN_NAME

    source = {"name": "<input>"}

    def body() -> int:
        args = build_parser().parse_args(argv)
        source["name"] = STDIN_NAME if args.file == STDIN else args.file
        return run(args)

    return run_reporting_errors(body, lambda: source["name"])
