"""The cluster side of the command line: `plan --slurm`, `apply --slurm` and `neuroexec status` (the
flags are in neuroexec/cli/flags.py, `add_slurm`)."""

from __future__ import annotations

import argparse

from neuroexec.cluster import render, status, submit


def cmd_plan_slurm(args: argparse.Namespace) -> int:
    """`neuroexec plan SPEC --slurm`: the jobs that would be submitted (writes nothing); `--json` too."""
    sub = submit.prepare(args.spec, args.target, args.slurm_opt, preview=True)
    print(render.render_plan_json(sub) if getattr(args, "json", False) else render.render_plan(sub))
    return 0


def cmd_apply_slurm(args: argparse.Namespace) -> int:
    """`neuroexec apply SPEC --slurm`: submit them."""
    print(render.render_submitted(submit.submit(args.spec, args.target, args.slurm_opt)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """`neuroexec status SPEC`: each step done or pending, each job's state; 1 when a job failed."""
    report = status.status(args.spec)
    print(status.render(report))
    return 1 if report.failed() else 0
