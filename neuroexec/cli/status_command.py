"""`neuroexec status`: the state of a spec's steps and of its cluster jobs. (Being written: the parser is registered so that the command list is stable.)"""

from __future__ import annotations

import argparse

from neuroexec.errors import InputError


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the state of a spec's steps and of its cluster jobs")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    raise InputError(None, "neuroexec status is not available yet")
