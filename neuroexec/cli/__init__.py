"""`neuroexec` command line: argument parsing only; the work is done by spec/, plan/ and the executor.

Exit codes: 0 ok, 1 a step failed, 2 bad spec or input (or a refused plan, or no command: `neuroexec`
alone prints the help and exits 2, as git and terraform exit non-zero), 3 a MAPS is locked, 130
interrupted (Ctrl-C, or SIGTERM as SLURM sends at a time limit). A closed stdout (`| head`) is not an
error. `plan --detailed-exitcode` has Terraform's codes instead (plan_command.py).

Global flags, before or after the command: --debug (tracebacks), --no-color (as NO_COLOR=1), -q/--quiet
(errors, warnings and the final lines only), -v/--verbose (each step's reasons and fingerprint inputs).
A command that has its own --quiet (apply, the ClinicaDL-style commands) keeps its meaning after it: no
progress bars, the lines stay; `-q`, or `--quiet` before the command, is the global one.
`neuroexec --help` and `--version` answer from COMMANDS without importing the command modules, which
import torch.
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

from neuroexec import __version__, progress
from neuroexec.errors import NeuroexecError, StepFailed

AddCommand = Callable[[argparse._SubParsersAction], None]

# Every command and its help line, in the order `neuroexec --help` lists them: the top-level help is
# built from this table, without the command modules (tests/cli/test_command_line.py keeps it equal to
# the real parsers: change a command's help line in both places).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("init", "write an example project (spec, schema, README) into a new or empty folder"),
    ("validate", "check a spec (schema and references); exit 2 with every problem"),
    ("plan", "show what apply would run and why (writes nothing)"),
    ("apply", "run the steps that are not up to date (resumable)"),
    ("status", "the state of a spec's steps and of its cluster jobs"),
    ("report", "where the results of a spec are and what they say"),
    ("unlock", "show who holds the apply locks of a MAPS or CAPS folder and what is safe to do"),
    ("schema", "print the spec's JSON Schema (or its reference as Markdown)"),
    (
        "generate",
        "ClinicaDL-style: generate a synthetic CAPS (trivial, random, shepplogan, hypometabolic, artifacts)",
    ),
    ("prepare-data", "ClinicaDL-style: prepare-data image|patch|roi|slice CAPS_DIRECTORY MODALITY"),
    (
        "train",
        "ClinicaDL-style: train image|patch|roi|slice cnn|autoencoder CAPS PREPROCESSING TSV_DIR MAPS, or "
        "train classification|regression|reconstruction CAPS PREPROCESSING_JSON TSV_DIR MAPS",
    ),
    ("predict", "ClinicaDL-style: predict INPUT_MAPS_DIRECTORY DATA_GROUP"),
    (
        "interpret",
        "ClinicaDL-style: interpret INPUT_MAPS_DIRECTORY DATA_GROUP NAME (or the older: interpret "
        "group|individual MODEL_PATH NAME)",
    ),
    ("save-tensor", "ClinicaDL-style: save-tensor MAPS DATA_GROUP"),
    ("import-maps", "report what neuroexec recognises in a MAPS (either generation)"),
    ("completion", "print a shell completion script: bash, zsh or tcsh (README: Shell completion)"),
)

# The global flags: accepted anywhere on the line (taken out before the command's parser sees it).
GLOBAL_FLAGS = {
    "--debug": "debug",
    "--no-color": "no_color",
    "-q": "quiet",
    "--quiet": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
}


def commands() -> list[AddCommand]:
    """Every command, in the order `neuroexec --help` lists them: each function adds one sub-parser.
    (The older `interpret group|individual` form has its own parser, chosen by main before this one.)
    The command modules are imported here, when a parser is built: they import torch."""
    from neuroexec.cli import (
        apply_command,
        completion_command,
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
        completion_command.add_completion,
    ]


def build_parser(light: bool = False) -> argparse.ArgumentParser:
    """The command line's parser; `light`: the commands from COMMANDS, without their arguments (for
    --help, --version and no command: no command module imported)."""
    parser = argparse.ArgumentParser(
        prog="neuroexec",
        description="Declarative deep learning on 3D brain MRI: plan and apply a TOML experiment spec.",
        epilog="Global flags go before or after the command. `neuroexec COMMAND --help` shows a "
        "command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"neuroexec {__version__}")
    # For the help and the completion only: main takes these out of the line before parsing (dests
    # apart from the commands' own, e.g. apply's --quiet).
    for names, help_line in (
        (("--debug",), "show tracebacks of errors"),
        (("--no-color",), "no colour (as NO_COLOR=1; TERM=dumb too)"),
        (("-q", "--quiet"), "only errors, warnings and the final lines"),
        (("-v", "--verbose"), "each step's reasons and inputs"),
    ):
        parser.add_argument(*names, action="store_true", dest=f"global_{names[-1][2:]}", help=help_line)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if light:
        for name, help_line in COMMANDS:
            sub.add_parser(name, help=help_line, add_help=False)
    else:
        for add in commands():
            add(sub)
    return parser


def split_global_flags(argv: list[str]) -> tuple[dict[str, bool], list[str]]:
    """The global flags found anywhere in `argv` (not after `--`), and the rest. `--quiet` after the
    command is `quiet_after`: the command's own --quiet where it has one (`_run`).

    >>> flags, rest = split_global_flags(["plan", "spec.toml", "-v", "--no-color"])
    >>> rest, [name for name, given in flags.items() if given]
    (['plan', 'spec.toml'], ['no_color', 'verbose'])
    """
    flags = dict.fromkeys([*GLOBAL_FLAGS.values(), "quiet_after"], False)
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]
    command_seen = False
    for a in argv[:end]:
        command_seen = command_seen or not a.startswith("-")
        if a == "--quiet" and command_seen:
            flags["quiet_after"] = True
        elif a in GLOBAL_FLAGS:
            flags[GLOBAL_FLAGS[a]] = True
    return flags, rest


def _level(flags: dict[str, bool]) -> int | None:
    """-q wins over -v; neither: the environment's (NEUROEXEC_VERBOSITY) or normal."""
    if flags["quiet"]:
        return progress.QUIET
    return progress.VERBOSE if flags["verbose"] else None


def _run(argv: list[str], flags: dict[str, bool]) -> int:
    """Parse and run the command (the older `interpret group|individual` form has its own parser)."""
    from neuroexec.cli import legacy_interpret

    if legacy_interpret.wants(argv):
        return legacy_interpret.main(argv)
    if not [a for a in argv if not a.startswith("-")]:  # --help, --version or nothing: no command
        parser = build_parser(light=True)
        if not argv:
            parser.print_help()
            return 2
        parser.parse_args(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        if exit.code == 2 and "--detailed-exitcode" in argv:
            return 1  # a usage error is an error (1) there: 2 would read as "changes to apply"
        raise
    args.parser = parser  # the completion command makes its script from it
    own_quiet = hasattr(args, "quiet")  # apply's and the ClinicaDL-style commands': no progress bars
    if own_quiet:
        args.quiet = args.quiet or flags["quiet"] or flags["quiet_after"]
    quiet = flags["quiet"] or (flags["quiet_after"] and not own_quiet)
    with progress.output_options(level=progress.QUIET if quiet else None):
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
    return code


_TERMINATED = threading.Event()  # set by SIGTERM: a step that fails meanwhile was stopped, not broken


def _terminated(signum: int, frame: object) -> None:
    _TERMINATED.set()
    raise KeyboardInterrupt  # SIGTERM (SLURM's time limit, `kill`) stops like Ctrl-C: locks released


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is handled as Ctrl-C for the command, then the previous handler comes back. While the
    epochs of a training run, training/preemption.py holds it back until the next optimizer step and
    its checkpoint, then calls `_terminated`."""
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
    flags, argv = split_global_flags(list(sys.argv[1:] if argv is None else argv))
    with progress.output_options(no_color=flags["no_color"], level=_level(flags)):
        return _main(argv, flags)


def _main(argv: list[str], flags: dict[str, bool]) -> int:
    debug = flags["debug"]
    try:
        with _sigterm_as_interrupt():
            return _run(argv, flags)
    except BrokenPipeError:
        return _stdout_closed()
    except StepFailed as exc:
        if _TERMINATED.is_set():  # e.g. DataLoader workers got SLURM's SIGTERM first
            return _interrupted()
        progress.stop_live()
        if debug:
            traceback.print_exception(exc.cause)
        _error(str(exc))
        if not isinstance(exc.cause, NeuroexecError) and not debug:
            print("(an unexpected error: run with --debug for the traceback)", file=sys.stderr)
        print(
            "Finished steps are kept; once the cause above is dealt with, apply continues from there.",
            file=sys.stderr,
        )
        return exc.exit_code
    except NeuroexecError as exc:
        progress.stop_live()
        if debug:
            traceback.print_exc()
        _error(str(exc))
        return exc.exit_code
    except OSError as exc:  # a path the checks missed: the file and the reason, not a traceback
        progress.stop_live()
        if debug:
            traceback.print_exc()
        _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except Exception:
        if _TERMINATED.is_set():  # SIGTERM's interrupt landed in code that turned it into another error
            return _interrupted()  # (an import half done: ImportError) stopped, not broken; requeued
        raise


def _error(message: str) -> None:
    """`error: message` on stderr, its first word in red where colour is allowed."""
    progress.Reporter(sys.stderr, live=False, level=progress.NORMAL).error(message)


def _interrupted() -> int:
    progress.stop_live()
    print("interrupted: finished steps are kept; run apply again to continue.", file=sys.stderr)
    if _TERMINATED.is_set():  # SLURM's SIGTERM: a job that asks for it is requeued (its checkpoint written)
        from neuroexec.cluster.preempt import requeue_self

        requeue_self()
    return 130
