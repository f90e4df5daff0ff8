"""`einsum-opt`: parse, verify, transform and print einsum IR (an `xdsl-opt` with our registry).

Every `xdsl-opt` flag keeps working. On top of them:
- `.einsum` files are read by the Extended Einsum notation frontend;
- `--ranks M=512,P=256` resizes ranks as the input is read (what `set-ranks` does);
- `--check-equivalence` runs each cascade before and after the pipeline on the same seeded
  random inputs and fails when the outputs differ beyond `--rtol`/`--atol`.
Bad input prints one `error:` line on stderr and exits 1; an output file is written only when
everything succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from io import StringIO
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.xdsl_opt_main import xDSLOptMain

from einsum_opt.frontends.loading import DIALECTS
from einsum_opt.support.errors import UserError
from einsum_opt.tools.diagnostics import run_reporting_errors
from einsum_opt.transforms.set_ranks import RANKS_HELP


class EinsumOptMain(xDSLOptMain):
    """The `xDSLOptMain` of einsum-opt: only our dialects, passes, frontends and targets."""

    version_format = "einsum-opt " + version("einsum-opt") + " (xdsl {xdsl_version})"

    def __init__(self, args: Sequence[str] | None = None):
        self.chunk_line_offset = 0
        self._buffer: StringIO | None = None
        super().__init__(description="einsum-opt: the Extended Einsum optimizer", args=args)

    # -- registry -----------------------------------------------------------------------

    def register_all_dialects(self) -> None:
        for name, factory in DIALECTS.items():
            self.ctx.register_dialect(name, factory)

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_notation(io: IO[bytes]) -> ModuleOp:
            from einsum_opt.frontends.notation import parse_einsum_notation

            return parse_einsum_notation(io.read().decode("utf-8"), self.get_input_name())

        self.available_frontends["einsum"] = parse_notation

        def parse_teaal(io: IO[bytes]) -> ModuleOp:
            from einsum_opt.frontends.teaal import parse_teaal

            return parse_teaal(io.read().decode("utf-8"), self.get_input_name())

        self.available_frontends["yaml"] = parse_teaal

    def register_all_passes(self) -> None:
        from einsum_opt.transforms import get_all_passes

        for name, factory in get_all_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        from xdsl.targets.mlir import MLIRTarget
        from xdsl.utils.target import Target

        self.available_targets["mlir"] = lambda: MLIRTarget

        def cost_report() -> type[Target]:
            from einsum_opt.costmodel.targets import CostReportTarget

            return CostReportTarget

        def cost_json() -> type[Target]:
            from einsum_opt.costmodel.targets import CostJsonTarget

            return CostJsonTarget

        self.available_targets["cost-report"] = cost_report
        self.available_targets["cost-json"] = cost_json

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--ranks",
            metavar="NAME=SIZE,...",
            help=RANKS_HELP,
        )
        arg_parser.add_argument(
            "--check-equivalence",
            action="store_true",
            help="execute each cascade before and after the pipeline on the same seeded random "
            "inputs; report the errors on stderr and fail if they exceed the tolerance",
        )
        arg_parser.add_argument(
            "--rtol",
            type=float,
            default=None,
            help="relative tolerance of --check-equivalence: max|after-before| / max|before| "
            "(default by the output's element type: f64 1e-9, f32 1e-5, f16 1e-2, bf16 5e-2; "
            "integers exact)",
        )
        arg_parser.add_argument(
            "--atol",
            type=float,
            default=None,
            help="absolute tolerance of --check-equivalence (default 0)",
        )
        arg_parser.add_argument(
            "--seed", type=int, default=0, help="seed of the inputs of --check-equivalence"
        )

    # -- pipeline -----------------------------------------------------------------------

    def setup_pipeline(self) -> None:
        try:
            super().setup_pipeline()
        except ValueError as e:
            if "Unrecognized passes" in str(e):
                known = ", ".join(sorted(self.available_passes))
                raise UserError(
                    f"unknown pass in '{self.args.passes}' (available: {known})"
                ) from None
            raise
        self.rank_sizes: dict[str, int] = {}
        if self.args.ranks:
            from einsum_opt.transforms.set_ranks import parse_rank_sizes

            try:
                self.rank_sizes = parse_rank_sizes(self.args.ranks)
            except ValueError as e:
                raise UserError(f"--ranks {e}") from None

    def apply_passes(self, prog: ModuleOp) -> None:
        if not self.args.check_equivalence:
            super().apply_passes(prog)
            return
        from einsum_opt.interpreters.equivalence import check_equivalence

        before = prog.clone()
        super().apply_passes(prog)
        check_equivalence(before, prog, self.args.seed, self.args.rtol, self.args.atol)

    # -- input and output ---------------------------------------------------------------

    def parse_chunk(
        self, chunk: IO[bytes], file_extension: str, start_offset: int = 0
    ) -> ModuleOp | None:
        self.chunk_line_offset = start_offset
        module = super().parse_chunk(chunk, file_extension, start_offset)
        if module is not None and not self.args.disable_verify:
            module.verify()
        if module is not None and self.rank_sizes:
            # Resized as read, so --check-equivalence compares at the sizes asked for.
            from einsum_opt.transforms.set_ranks import set_rank_sizes

            set_rank_sizes(module, self.rank_sizes)
            module.verify()
        return module

    def prepare_input(self) -> tuple[list[tuple[IO[bytes], int]], str]:
        try:
            return super().prepare_input()
        except ValueError as e:
            known = ", ".join(sorted(self.available_frontends))
            raise UserError(f"{e} (known: {known}; choose one with -f)") from None

    def prepare_output(self) -> IO[str]:
        # Buffer everything: the output file is written only once the whole run succeeded.
        if self._buffer is None:
            self._buffer = _OutputBuffer()
        return self._buffer

    def run(self) -> None:
        """Run the pipeline and print or write the result."""
        if self.args.output_file is None:
            # Diagnostics printed by --verify-diagnostics stay in order with the IR chunks.
            self._buffer = _OutputBuffer()
            with contextlib.redirect_stdout(self._buffer):
                super().run()
        else:
            super().run()
        assert self._buffer is not None
        text = self._buffer.getvalue()
        if self.args.output_file is None:
            sys.stdout.write(text)
        else:
            _write_atomically(self.args.output_file, text)


class _OutputBuffer(StringIO):
    """Collects the output; xDSLOptMain closes its output stream, which must not lose it."""

    def close(self) -> None:
        pass


def _write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".einsum-opt-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `einsum-opt` console script."""
    tool: EinsumOptMain | None = None
    input_name = "<stdin>"

    def go() -> None:
        nonlocal tool, input_name
        tool = EinsumOptMain(args=argv)
        input_name = tool.get_input_name()
        tool.run()

    def offset() -> int:
        return tool.chunk_line_offset if tool is not None else 0

    return run_reporting_errors(go, lambda: input_name, offset)


if __name__ == "__main__":
    sys.exit(main())
