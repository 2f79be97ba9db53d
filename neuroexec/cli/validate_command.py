"""`neuroexec validate SPEC`: check a spec (schema, references) and say what it holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.spec import load_spec


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a spec (schema and references); exit 2 with every problem")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    print(
        f"{args.spec}: valid ({len(spec.datasets)} datasets, {len(spec.models)} models, "
        f"{len(spec.groups)} groups)"
    )
    return 0
