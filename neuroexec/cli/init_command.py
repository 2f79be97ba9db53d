"""`neuroexec init [--example NAME] DIR`: write an example project (spec, schema, README) to start from."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_init(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write an example project (spec, schema, README) into a new or empty folder",
        description="Write an example project into DIR (a new or empty folder): the spec, its JSON Schema "
        "for TOML editors, a .taplo.toml and a README.txt with the next commands.",
    )
    import shtab

    folder = p.add_argument(
        "dir", type=Path, nargs="?", metavar="DIR", help="the folder to write (new or empty)"
    )
    folder.complete = shtab.DIRECTORY  # type: ignore[attr-defined]  # the shell completes folder names
    p.add_argument(
        "--example",
        metavar="NAME",
        default=None,
        help="the example to start from (default: quickstart); --list shows them",
    )
    p.add_argument("--list", action="store_true", help="list the examples and exit")
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    from neuroexec import init_project
    from neuroexec.errors import InputError

    if args.list:
        for name in init_project.example_names():
            print(name)
        return 0
    if args.dir is None:
        raise InputError(None, "give the folder to write: neuroexec init [--example NAME] DIR")
    written = init_project.init_project(args.dir, args.example or init_project.DEFAULT_EXAMPLE)
    spec = written[0]
    print(f"{args.dir}: wrote {', '.join(p.name for p in written)} (example '{spec.stem}')")
    print(f"next: neuroexec validate {spec}, then neuroexec plan {spec} and neuroexec apply {spec}")
    return 0
