"""`neuroexec report SPEC [--html [OUT]]`: where the results of a spec are and what they say; with
`--html`, the results page (one self-contained HTML file, `<spec stem>.report.html` beside the spec by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.spec import load_spec

DEFAULT_PAGE = ""  # --html without a path: <spec stem>.report.html beside the spec


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="where the results of a spec are and what they say")
    p.add_argument("spec", type=Path)
    p.add_argument(
        "--html",
        nargs="?",
        const=DEFAULT_PAGE,
        default=None,
        metavar="OUT",
        help="write the results page (one self-contained HTML file) at OUT, a file or a folder; default: SPEC_STEM.report.html beside the spec",
    )
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.html is None:
        from neuroexec.report import report

        print(report(spec))
        return 0
    from neuroexec.html_report.page import write_page

    out = Path(args.html) if args.html else None
    print(f"Results page written: {write_page(spec, out)}")
    return 0
