"""`neuroexec validate | plan | apply | report | schema` on a spec file, and `unlock` on a folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from neuroexec.cli.flags import add_target
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_json, render_text
from neuroexec.run_spec import run_spec_file
from neuroexec.spec import load_spec
from neuroexec.spec.docs import schema_markdown
from neuroexec.spec.load import schema


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a spec (schema and references); exit 2 with every problem")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_validate)


def add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="show what apply would run and why (writes nothing)")
    p.add_argument("spec", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable plan")
    add_target(p)
    p.set_defaults(func=cmd_plan)


def add_apply(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="run the steps that are not up to date (resumable)")
    p.add_argument("spec", type=Path)
    add_target(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--json",
        action="store_true",
        help="the plan and each step's events as JSON lines on stdout (one object a line)",
    )
    p.set_defaults(func=cmd_apply)


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="where the results of a spec are and what they say")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_report)


def add_unlock(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "unlock",
        help="show who holds the apply locks of a MAPS or CAPS folder and what is safe to do",
        description="Show each lock of FOLDER (the whole folder, each split) and its holder (pid, host, "
        "start). Locks vanish with their process, kill -9 included; a lock held for a host that crashed "
        "is freed by the file server (NFS) later. --force removes the held lock files, unless their "
        "holder runs on this host: only when you are sure nothing writes FOLDER.",
    )
    p.add_argument("folder", type=Path, metavar="FOLDER")
    p.add_argument("--force", action="store_true", help="remove lock files held from another host")
    p.set_defaults(func=cmd_unlock)


def add_schema(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the spec's JSON Schema (or its reference as Markdown)")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_schema)


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(
        f"{args.spec}: valid ({len(spec.datasets)} datasets, {len(spec.models)} models, "
        f"{len(spec.groups)} groups)"
    )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    plan = make_plan(load_spec(args.spec))
    if args.target:
        keep = {p.step.id for p in plan.select(args.target)}
        plan.steps = [p for p in plan.steps if p.step.id in keep]
    print(render_json(plan) if args.json else render_text(plan, color=sys.stdout.isatty()))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    return run_spec_file(args.spec, target=args.target, quiet=args.quiet, json_lines=args.json)


def cmd_unlock(args: argparse.Namespace) -> int:
    from neuroexec.lock import unlock

    print(unlock(args.folder, force=args.force))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from neuroexec.report import report

    print(report(load_spec(args.spec)))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(schema_markdown() if args.markdown else json.dumps(schema(), indent=2))
    return 0
