"""`neuroexec completion bash|zsh|tcsh`: a completion script for the shell, made by shtab from the command
line's own parser (so it completes every command and flag there is, and paths where a path goes).

Install it once, e.g. `neuroexec completion bash > ~/.local/share/bash-completion/completions/neuroexec`
(README: Shell completion).
"""

from __future__ import annotations

import argparse
from pathlib import Path

SHELLS = ("bash", "zsh", "tcsh")


def add_completion(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script: bash, zsh or tcsh (README: Shell completion)",
        description="Print a completion script for SHELL on stdout; e.g. for bash: neuroexec completion "
        "bash > ~/.local/share/bash-completion/completions/neuroexec",
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or tcsh")
    p.set_defaults(func=cmd_completion)


def cmd_completion(args: argparse.Namespace) -> int:
    print(completion_script(args.parser, args.shell))  # args.parser: the command line's (cli/__init__.py)
    return 0


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The script for `shell` from `parser`; arguments that take a path complete file names."""
    import shtab

    for action in _actions(parser):
        if action.type is Path and not hasattr(action, "complete"):
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell, root_prefix="neuroexec")


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every action of `parser` and of its sub-parsers."""
    found = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found.extend(_actions(child))
    return found
