"""`neuroexec plan SPEC`: what apply would run and why; writes nothing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from neuroexec.cli.flags import add_target
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_json, render_text
from neuroexec.spec import load_spec


def add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show what apply would run and why (writes nothing)")
    p.add_argument("spec", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    add_target(p)
    p.set_defaults(func=cmd_plan)


def cmd_plan(args: argparse.Namespace) -> int:
    plan = make_plan(load_spec(args.spec))
    if args.target:
        keep = {p.step.id for p in plan.select(args.target)}
        plan.steps = [p for p in plan.steps if p.step.id in keep]
    print(render_json(plan) if args.json else render_text(plan, color=sys.stdout.isatty()))
    return 0
