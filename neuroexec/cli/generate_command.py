"""`neuroexec generate`: generate a synthetic CAPS (ClinicaDL's generate kinds). (Being written: the parser is registered so that the command list is stable.)"""

from __future__ import annotations

import argparse

from neuroexec.errors import InputError


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate a synthetic CAPS (ClinicaDL's generate kinds)")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    raise InputError(None, "neuroexec generate is not available yet")
