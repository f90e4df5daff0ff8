"""`einsum-opt`: parse, verify, transform and print einsum IR (an `xdsl-opt` with our registry).

Every `xdsl-opt` flag keeps working. On top of them:
- `.einsum` files are read by the Extended Einsum notation frontend, `.yaml` by the TeAAL one;
  standard input (no file, or `-`) and other extensions are recognised from their content
  unless `-f` names the format;
- `--ranks M=512,P=256` resizes ranks as the input is read (what `set-ranks` does);
- `--check-equivalence` runs each cascade before and after the pipeline on the same seeded
  random inputs and fails when the outputs differ beyond `--rtol`/`--atol`;
- `--list-passes` lists every pass with its options;
- `--time-passes` prints mlir-opt's execution time report on stderr;
- `--verify-diagnostics` checks the diagnostics against `expected-*` annotations, as mlir-opt.
Bad input or options print one `error:` line on stderr and exit 1; an output file is written
only when everything succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from io import BytesIO
from pathlib import Path
from typing import IO, NoReturn

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.xdsl_opt_main import xDSLOptMain

from einsum_opt.frontends.loading import DIALECTS, STDIN, STDIN_NAME
from einsum_opt.support.errors import UserError
from einsum_opt.tools.diagnostics import run_reporting_errors
from einsum_opt.tools.pass_timing import PassTimer
from einsum_opt.transforms.set_ranks import RANKS_HELP


class DiagnosticsMismatch(UserError):
    """`--verify-diagnostics` found diagnostics that were not expected or not produced (the
    mismatches have been printed)."""


def _usage_error(message: str) -> NoReturn:
    raise UserError(f"{message} (see einsum-opt --help)")


class EinsumOptMain(xDSLOptMain):
    """The `xDSLOptMain` of einsum-opt: only our dialects, passes, frontends and targets."""

    version_format = "einsum-opt " + version("einsum-opt") + " (xdsl {xdsl_version})"

    def __init__(self, args: Sequence[str] | None = None):
        self.chunk_line_offset = 0
        self.timer = PassTimer()
        self._pass_started = 0.0
        super().__init__(description="einsum-opt: the Extended Einsum optimizer", args=args)

    # -- registry -----------------------------------------------------------------------

    def register_all_dialects(self) -> None:
        for name, factory in DIALECTS.items():
            self.ctx.register_dialect(name, factory)

    def register_all_frontends(self) -> None:
        from einsum_opt.frontends.loading import LOADERS

        for kind in LOADERS:
            self.available_frontends[kind] = self._frontend(kind)

    def _frontend(self, kind: str) -> Callable[[IO[bytes]], ModuleOp]:
        """The frontend reading `kind` (a `LOADERS` key) from a byte stream."""

        def parse(io: IO[bytes]) -> ModuleOp:
            from einsum_opt.frontends.loading import LOADERS, decode_source, parse_mlir
            from einsum_opt.frontends.timeloop import is_timeloop_input, parse_timeloop

            name = self.get_input_name()
            text = decode_source(io.read(), name)
            if kind == "mlir":
                return parse_mlir(text, name, self.ctx, not self.args.no_implicit_module)
            if kind == "yaml" and is_timeloop_input(text):
                if name in (STDIN, STDIN_NAME):
                    raise UserError(
                        "a Timeloop input is read from its file (give its path, with --ert)"
                    )
                return parse_timeloop(name, self.args.ert, self.args.art, self.args.mapping)
            return LOADERS[kind](text, name, self.ctx)

        return parse

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
        # Usage errors are one `error:` line with exit status 1, as in einsum-run and
        # einsum-eval, not argparse's usage text and exit status 2.
        arg_parser.error = _usage_error  # type: ignore[method-assign]
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--list-passes",
            action="store_true",
            help="list every pass with a one-line summary and its options, then exit",
        )
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
        arg_parser.add_argument(
            "--ert", metavar="FILE", help="the energy reference table of a Timeloop input"
        )
        arg_parser.add_argument(
            "--art", metavar="FILE", help="the area reference table of a Timeloop input"
        )
        arg_parser.add_argument(
            "--mapping",
            metavar="FILE",
            help="the mapping of a Timeloop input, when not in the input itself (e.g. a "
            "timeloop-mapper .map.yaml)",
        )

    # -- pipeline -----------------------------------------------------------------------

    def setup_pipeline(self) -> None:
        from einsum_opt.transforms.pass_options import parse_passes

        passes = parse_passes(self.args.passes, self.available_passes) if self.args.passes else ()
        self.pipeline = PassPipeline(passes, self._between_passes)
        self._pass_rows = _row_names(passes)
        self._pass_index = 0
        self.rank_sizes: dict[str, int] = {}
        if self.args.ranks:
            from einsum_opt.transforms.set_ranks import parse_rank_sizes

            try:
                self.rank_sizes = parse_rank_sizes(self.args.ranks)
            except ValueError as e:
                raise UserError(f"--ranks {e}") from None
        if self.args.output_file is not None:
            from einsum_opt.support.atomic_write import check_writable

            check_writable(Path(self.args.output_file))

    def _between_passes(
        self, previous: ModulePass | None, module: ModuleOp, following: ModulePass | None
    ) -> None:
        """Verify after each pass (and before the first), print between passes if asked, and
        time each pass apart from its verification."""
        import time

        now = time.perf_counter()
        if previous is not None:
            self.timer.add(self._pass_rows[self._pass_index], now - self._pass_started)
            self._pass_index += 1
        with self.timer.timing("Verifier"):
            if not self.args.disable_verify:
                module.verify()
        if previous is not None and following is not None and self.args.print_between_passes:
            from xdsl.printer import Printer

            print(f"IR after {previous.name}:")
            Printer(stream=sys.stdout).print_op(module)
            print("\n\n\n")
        self._pass_started = time.perf_counter()

    def apply_passes(self, prog: ModuleOp) -> None:
        self._pass_index = 0
        if not self.args.check_equivalence:
            super().apply_passes(prog)
            return
        from einsum_opt.interpreters.equivalence import check_equivalence

        before = prog.clone()
        super().apply_passes(prog)
        with self.timer.timing("check-equivalence"):
            check_equivalence(before, prog, self.args.seed, self.args.rtol, self.args.atol)

    # -- input and output ---------------------------------------------------------------

    def get_input_name(self) -> str:
        name = self.args.input_file
        return STDIN_NAME if name in (None, STDIN) else str(name)

    def get_input_stream(self) -> tuple[IO[bytes], str]:
        """The input and its format: `-f`, else a known extension, else from the content."""
        from einsum_opt.frontends.loading import detect_kind

        if self.args.input_file in (None, STDIN):
            stream: IO[bytes] = sys.stdin.buffer
            extension = ""
        else:
            stream, extension = super().get_input_stream()
        if self.args.frontend or extension in self.available_frontends:
            return stream, extension
        data = stream.read()
        stream.close()
        return BytesIO(data), detect_kind(data.decode("utf-8", errors="replace"))

    def parse_chunk(
        self, chunk: IO[bytes], file_extension: str, start_offset: int = 0
    ) -> ModuleOp | None:
        self.chunk_line_offset = start_offset
        with self.timer.timing("Parser"):
            module = super().parse_chunk(chunk, file_extension, start_offset)
        with self.timer.timing("Verifier"):
            if module is not None and not self.args.disable_verify:
                module.verify()
        if module is not None and self.rank_sizes:
            # Resized as read, so --check-equivalence compares at the sizes asked for.
            from einsum_opt.transforms.set_ranks import set_rank_sizes

            set_rank_sizes(module, self.rank_sizes)
            module.verify()
        return module

    def output_resulting_program(self, prog: ModuleOp) -> str:
        with self.timer.timing("Output"):
            return super().output_resulting_program(prog)

    def process_chunk(self, chunk: IO[bytes], kind: str, offset: int) -> str:
        """Parse, transform and print one chunk of the input."""
        from xdsl.utils.exceptions import ParseError

        try:
            module = self.parse_chunk(chunk, kind, offset)
        except ParseError as e:
            e.span = dataclasses.replace(e.span, line_offset=offset)  # file lines, not chunk's
            raise
        finally:
            chunk.close()
        if module is None:
            return ""
        self.apply_passes(module)
        return self.output_resulting_program(module)

    def run(self) -> None:
        """Run the pipeline and print or write the result (everything is buffered: the output
        file is written only once the whole run succeeded)."""
        if self.args.list_passes:
            from einsum_opt.transforms.pass_options import list_passes

            sys.stdout.write(list_passes(self.available_passes))
            return
        chunks, kind = self.prepare_input()
        if self.args.verify_diagnostics:
            text = self._run_verifying(chunks, kind)
        else:
            text = "// -----\n".join(self.process_chunk(c, kind, offset) for c, offset in chunks)
        if self.args.output_file is None:
            sys.stdout.write(text)
        else:
            from einsum_opt.support.atomic_write import write_text_atomically

            write_text_atomically(Path(self.args.output_file), text)
        if self.args.time_passes:
            sys.stderr.write(self.timer.report())

    def _run_verifying(self, chunks: list[tuple[IO[bytes], int]], kind: str) -> str:
        """Each chunk's output (empty for a chunk that failed), after checking its diagnostics
        against its `expected-*` annotations; DiagnosticsMismatch if they differ."""
        from einsum_opt.support.diagnostics import collecting
        from einsum_opt.tools.diagnostics import diagnostic_of
        from einsum_opt.tools.verify_diagnostics import expectations_in, verify

        name = self.get_input_name()
        outputs: list[str] = []
        problems: list[str] = []
        for chunk, offset in chunks:
            data = chunk.read()
            try:
                expected = expectations_in(data.decode("utf-8", errors="replace"), offset + 1)
            except ValueError as e:
                raise UserError(f"{name}: {e}") from None
            with collecting() as produced:
                try:
                    outputs.append(self.process_chunk(BytesIO(data), kind, offset))
                except Exception as e:  # noqa: BLE001 - every failure is a diagnostic here
                    outputs.append("")
                    produced.append(diagnostic_of(e, name, offset))
            problems += verify(expected, produced, name)
        for line in problems:
            print(line, file=sys.stderr)
        if problems:
            raise DiagnosticsMismatch(f"{len(problems)} diagnostic(s) did not match")
        return "// -----\n".join(outputs)


def _row_names(passes: Sequence[ModulePass]) -> list[str]:
    """Report rows of the passes: their names, numbered when a name repeats."""
    counts = {p.name: 0 for p in passes}
    totals = {name: sum(1 for p in passes if p.name == name) for name in counts}
    rows = []
    for p in passes:
        counts[p.name] += 1
        rows.append(f"{p.name} #{counts[p.name]}" if totals[p.name] > 1 else p.name)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `einsum-opt` console script."""
    tool: EinsumOptMain | None = None
    input_name = STDIN_NAME

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
