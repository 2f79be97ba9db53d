"""`neuroexec schema`: the spec's JSON Schema, or its reference as Markdown."""

from __future__ import annotations

import argparse
import json

from neuroexec.spec.docs import schema_markdown
from neuroexec.spec.load import schema


def add_schema(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the spec's JSON Schema (or its reference as Markdown)")
    p.add_argument("--markdown", action="store_true")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    # schema_markdown() ends its last line itself: the reference file has no blank line at its end
    print(
        schema_markdown() if args.markdown else json.dumps(schema(), indent=2),
        end="" if args.markdown else "\n",
    )
    return 0
