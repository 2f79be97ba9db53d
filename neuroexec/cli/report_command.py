"""`neuroexec report SPEC`: where the results of a spec are and what they say."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.spec import load_spec


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="where the results of a spec are and what they say")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from neuroexec.report import report

    print(report(load_spec(args.spec)))
    return 0
