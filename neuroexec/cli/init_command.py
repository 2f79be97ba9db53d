"""`neuroexec init`: write an example project (spec, README) to start from. (Being written: the parser is registered so that the command list is stable.)"""

from __future__ import annotations

import argparse

from neuroexec.errors import InputError


def add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write an example project (spec, README) to start from")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    raise InputError(None, "neuroexec init is not available yet")
