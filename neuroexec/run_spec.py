"""Plan and apply a spec file: what `neuroexec apply` does, and what the ClinicaDL-style commands do with
the spec they build (neuroexec/compat/runner.py). The command line only parses arguments around it.

>>> run_spec_file(Path("spec/examples/quickstart.toml"), target=["model.*.split"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from neuroexec import distributed
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec


def run_spec_file(path: Path, target: str | list[str] | None = None, quiet: bool = False) -> int:
    """Load the spec at `path`, print its plan (on the main process), then apply the steps matching
    `target` (all when None) and what they need."""
    spec = load_spec(path)
    distributed.init_from_env()
    ctx = RunContext.from_env(Reporter(quiet=quiet))
    try:
        plan = make_plan(spec)
        if ctx.is_main:
            _print_plan(render_text(plan, color=sys.stdout.isatty()))
        apply(plan, ctx, target=target)
    finally:
        distributed.shutdown()
    return 0


def _print_plan(text: str) -> None:
    """Print the plan before applying; a closed stdout (`apply spec | head`) must not stop the apply."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
