"""`neuroexec` command line: argument parsing only; the work is done by spec/, plan/ and the executor.

Exit codes: 0 ok, 1 a step failed, 2 bad spec or input (or a refused plan), 3 a MAPS is locked.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from neuroexec import __version__
from neuroexec.errors import NeuroexecError, StepFailed


def build_parser() -> argparse.ArgumentParser:
    from neuroexec.cli import clinicadl_commands, spec_commands

    parser = argparse.ArgumentParser(
        prog="neuroexec",
        description="Declarative deep learning on 3D brain MRI: plan and apply a TOML experiment spec.",
    )
    parser.add_argument("--version", action="version", version=f"neuroexec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    spec_commands.add_commands(sub)
    clinicadl_commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        from neuroexec.cli import legacy_interpret

        if legacy_interpret.wants(argv):
            return legacy_interpret.main([a for a in argv if a != "--debug"])
        args = build_parser().parse_args([a for a in argv if a != "--debug"])  # accepted anywhere
        return int(args.func(args) or 0)
    except StepFailed as exc:
        if debug:
            traceback.print_exception(exc.cause)
        print(f"error: {exc}", file=sys.stderr)
        if not isinstance(exc.cause, NeuroexecError) and not debug:
            print("(an unexpected error: run with --debug for the traceback)", file=sys.stderr)
        print("Finished steps are kept; run apply again to continue.", file=sys.stderr)
        return exc.exit_code
    except NeuroexecError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished steps are kept; run apply again to continue.", file=sys.stderr)
        return 130
