"""`neuroexec validate SPEC`: check a spec (schema, references) and say what it holds."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec import progress
from neuroexec.spec import load_spec
from neuroexec.spec.training_checks import device_notes


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
    if progress.verbosity() >= progress.VERBOSE:
        for what, names in (("datasets", spec.datasets), ("models", spec.models), ("groups", spec.groups)):
            print(f"  {what}: {', '.join(names) or 'none'}")
    for note in device_notes(spec):  # not problems: validate only reads
        print(f"Note: {note}")
    return 0
