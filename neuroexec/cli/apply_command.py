"""`neuroexec apply SPEC`: run the steps that are not up to date, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.cli.flags import add_slurm, add_target
from neuroexec.run_spec import run_spec_file


def add_apply(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="run the steps that are not up to date (resumable)")
    p.add_argument("spec", type=Path)
    add_target(p)
    add_slurm(p, "apply")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--json",
        action="store_true",
        help="the plan and each step's events as JSON lines on stdout (one object a line)",
    )
    p.set_defaults(func=cmd_apply)


def cmd_apply(args: argparse.Namespace) -> int:
    return run_spec_file(args.spec, target=args.target, quiet=args.quiet, json_lines=args.json)
