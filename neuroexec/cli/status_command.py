"""`neuroexec status SPEC`: each step of the spec done or not, and the SLURM jobs `apply --slurm`
submitted for it (queued, running, failed: job id and log); the logic is in neuroexec/cluster/status.py."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="the state of a spec's steps and of its cluster jobs")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from neuroexec.cluster import cli

    return cli.cmd_status(args)
