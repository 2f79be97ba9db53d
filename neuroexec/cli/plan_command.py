"""`neuroexec plan SPEC`: what apply would run and why; writes nothing.

`--detailed-exitcode` gives Terraform's codes: 0 nothing to do, 2 changes to apply, 1 an error (a bad
spec, which is 2 without the flag, or a refused step). A script checks `$? -eq 2` to know apply has work,
and treats 1 as failure. Notes (a `cuda` device on a machine without a GPU) follow the summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuroexec.cli.flags import add_slurm, add_target
from neuroexec.errors import NeuroexecError
from neuroexec.plan.graph import CHANGED, NEW, REFUSED, Plan, make_plan
from neuroexec.plan.render import render_for, render_json
from neuroexec.spec import load_spec
from neuroexec.spec.training_checks import device_notes

# --detailed-exitcode (Terraform's): nothing to do, changes, an error
NO_CHANGES, ERROR, CHANGES = 0, 1, 2


def add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show what apply would run and why (writes nothing)")
    p.add_argument("spec", type=Path)
    p.add_argument(
        "--json", action="store_true", help="machine-readable plan (with format_version and change words)"
    )
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there is nothing to do, 2 when apply has changes to make, 1 on an error "
        "(Terraform's codes; a bad spec exits 1 instead of 2)",
    )
    add_target(p)
    add_slurm(p, "plan")
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        plan = make_plan(load_spec(args.spec))
        if args.target:  # a network target shows the split's step narrowed to that network
            plan.steps = plan.select(args.target)
    except NeuroexecError as exc:
        if args.detailed_exitcode:
            exc.exit_code = ERROR  # 2 means changes
        raise
    notes = device_notes(plan.spec)
    print(render_json(plan, notes) if args.json else render_for(plan, sys.stdout, notes))
    return _exit_code(plan) if args.detailed_exitcode else 0


def _exit_code(plan: Plan) -> int:
    """--detailed-exitcode: 1 when apply would refuse a step, 2 when it has steps to run, else 0."""
    if plan.by_action(REFUSED):
        return ERROR
    return CHANGES if plan.by_action(NEW) or plan.by_action(CHANGED) else NO_CHANGES
