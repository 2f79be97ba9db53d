"""`neuroexec` command line: argument parsing only; the work is done by spec/, plan/ and the executor.

Exit codes: 0 ok, 1 a step failed, 2 bad spec or input (or a refused plan), 3 a MAPS is locked,
130 interrupted (Ctrl-C, or SIGTERM as SLURM sends at a time limit). A closed stdout (`| head`) is not
an error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

from neuroexec import __version__
from neuroexec.errors import NeuroexecError, StepFailed

AddCommand = Callable[[argparse._SubParsersAction], None]


def commands() -> list[AddCommand]:
    """Every command, in the order `neuroexec --help` lists them: each function adds one sub-parser.
    (The older `interpret group|individual` form has its own parser, chosen by main before this one.)
    The command modules are imported here, when a parser is built: they import torch."""
    from neuroexec.cli import (
        apply_command,
        generate_command,
        init_command,
        plan_command,
        prepare_data_command,
        report_command,
        schema_command,
        status_command,
        train_command,
        unlock_command,
        validate_command,
    )
    from neuroexec.cli import clinicadl_commands as clinicadl

    return [
        init_command.add_init,
        validate_command.add_validate,
        plan_command.add_plan,
        apply_command.add_apply,
        status_command.add_status,
        report_command.add_report,
        unlock_command.add_unlock,
        schema_command.add_schema,
        generate_command.add_generate,
        prepare_data_command.add_prepare_data,
        train_command.add_train,
        clinicadl.add_predict,
        clinicadl.add_interpret,
        clinicadl.add_save_tensor,
        clinicadl.add_import_maps,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroexec",
        description="Declarative deep learning on 3D brain MRI: plan and apply a TOML experiment spec.",
    )
    parser.add_argument("--version", action="version", version=f"neuroexec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in commands():
        add(sub)
    return parser


_TERMINATED = threading.Event()  # set by SIGTERM: a step that fails meanwhile was stopped, not broken


def _terminated(signum: int, frame: object) -> None:
    _TERMINATED.set()
    raise KeyboardInterrupt  # SIGTERM (SLURM's time limit, `kill`) stops like Ctrl-C: locks released


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled as Ctrl-C for the command, then the previous handler comes back."""
    _TERMINATED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stdout_closed() -> int:
    """The reader of stdout went away (`neuroexec plan --json | head -1`): not an error. Later writes,
    including Python's flush at exit, go to /dev/null instead of raising again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with _sigterm_as_interrupt():
            from neuroexec.cli import legacy_interpret

            if legacy_interpret.wants(argv):
                return legacy_interpret.main([a for a in argv if a != "--debug"])
            args = build_parser().parse_args([a for a in argv if a != "--debug"])  # accepted anywhere
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
            return code
    except BrokenPipeError:
        return _stdout_closed()
    except StepFailed as exc:
        if _TERMINATED.is_set():  # e.g. DataLoader workers got SLURM's SIGTERM first
            return _interrupted()
        if debug:
            traceback.print_exception(exc.cause)
        print(f"error: {exc}", file=sys.stderr)
        if not isinstance(exc.cause, NeuroexecError) and not debug:
            print("(an unexpected error: run with --debug for the traceback)", file=sys.stderr)
        print(
            "Finished steps are kept; once the cause above is dealt with, apply continues from there.",
            file=sys.stderr,
        )
        return exc.exit_code
    except NeuroexecError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return _interrupted()


def _interrupted() -> int:
    print("interrupted: finished steps are kept; run apply again to continue.", file=sys.stderr)
    return 130
