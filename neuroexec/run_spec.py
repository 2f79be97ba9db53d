"""Plan and apply a spec file: what `neuroexec apply` does, and what the ClinicaDL-style commands do with
the spec they build (neuroexec/compat/runner.py). The command line only parses arguments around it.

`neuroexec apply spec.toml --target 'model.*.split'` is `run_spec_file(Path("spec.toml"),
target=["model.*.split"])`, and exits with what it returns (0 when every step succeeded); it prints the
plan and the steps' progress, so the command line (tests/cli/) is where it is tried.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from neuroexec import distributed
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.html_report import default_page
from neuroexec.plan.graph import Plan, make_plan
from neuroexec.plan.render import plan_data, render_for
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.spec.model import Spec
from neuroexec.spec.training_checks import device_notes
from neuroexec.views import HumanView, JsonView, PlanShown


def run_spec_file(
    path: Path,
    target: str | list[str] | None = None,
    quiet: bool = False,
    json_lines: bool = False,
    adjust: Callable[[Plan], None] | None = None,
) -> int:
    """Load the spec at `path`, show its plan (on the main process), then apply the steps matching
    `target` (all when None) and what they need. `json_lines`: the plan and apply's events as JSON
    lines on stdout (`apply --json`) instead of the lines people read; progress stays on stderr.
    `adjust` amends the plan before it is shown and applied (the ClinicaDL-style commands: what another
    spec recorded, compat/runner.py)."""
    spec = load_spec(path)
    distributed.init_from_env()
    reporter = Reporter(quiet=quiet)  # on stderr
    view = JsonView() if json_lines else HumanView(reporter)
    ctx = replace(RunContext.from_env(reporter), view=view)
    try:
        plan = make_plan(spec)
        if adjust is not None:
            adjust(plan)
        selected = plan.select(target)  # what `plan --target` shows: a network's part, not its split
        if ctx.is_main:
            shown = replace(plan, steps=selected) if target else plan
            text = render_for(shown, sys.stdout, device_notes(spec))  # colour, -q, -v as plan's
            view.emit(PlanShown(text=text, plan=plan_data(shown)))  # a closed stdout does not stop apply
        apply(plan, ctx, target=target, selected=selected)
        if ctx.is_main and not json_lines:
            for line in results_lines(spec):
                reporter.summary(line)  # -q keeps them
    finally:
        distributed.shutdown()
    return 0


def results_lines(spec: Spec) -> list[str]:
    """Where the results of the spec are, and the commands that read them (the end of apply)."""
    lines = [f"Results of {spec.path.name}:"]
    lines += [f"  model {name}: MAPS {model.maps}" for name, model in spec.models.items()]
    if not spec.models:  # datasets only (`neuroexec generate`): no results to summarise
        lines += [f"  dataset {name}: CAPS {dataset.caps}" for name, dataset in spec.datasets.items()]
        return lines
    lines.append(f"  summary: neuroexec report {spec.path}")
    lines.append(f"  results page: neuroexec report {spec.path} --html  (writes {default_page(spec.path)})")
    return lines
