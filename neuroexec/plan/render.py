"""Plan rendering: one line per step (terraform-like) and a summary, or JSON for tools.

Colours come from rich styles (green new, yellow changed, dim up to date, red refused and removals),
written only when the caller allows them (neuroexec.progress.color_allowed: a terminal, no NO_COLOR,
not TERM=dumb). `verbose` (-v) adds what each step's fingerprint is made of.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from neuroexec import progress
from neuroexec.plan.graph import CHANGED, NEW, REFUSED, UP_TO_DATE, Plan, PlannedStep

WORDS = {NEW: "new", CHANGED: "changed", UP_TO_DATE: "up to date", REFUSED: "refused"}
STYLES = {NEW: "green", CHANGED: "yellow", UP_TO_DATE: "dim", REFUSED: "red"}
REMOVAL_STYLE = "red"

# `plan --json`: its format (a tool checks the major number) and each action as Terraform's word.
JSON_FORMAT_VERSION = "1.0"
CHANGE_WORDS = {NEW: "create", CHANGED: "update", UP_TO_DATE: "no-op", REFUSED: "refuse"}


def render_text(plan: Plan, color: bool = False, verbose: bool = False, notes: Sequence[str] = ()) -> str:
    """The plan as `neuroexec plan` prints it; `notes` (e.g. "no CUDA GPU here") after the summary."""
    lines: list[Text] = [Text(f"Plan for {plan.spec.path}:")]
    for p in plan.steps:
        lines.append(Text(f"  {p.action} {p.target}", style=STYLES[p.action]))  # a part: its own target
        lines.extend(Text(f"      {reason}") for reason in p.reasons)
        if verbose:
            lines.extend(Text(f"      {line}", style="dim") for line in fingerprint_lines(p))
        lines.extend(Text(line, style=REMOVAL_STYLE) for line in removal_lines(p))
    lines.append(Text(summary(plan)))
    lines.extend(Text(f"Note: {note}", style="cyan") for note in notes)
    return "\n".join(painted(line, color) for line in lines)


def render_for(plan: Plan, stream: TextIO, notes: Sequence[str] = ()) -> str:
    """The plan as a command prints it on `stream`, at the command's verbosity: colours where allowed
    (progress.color_allowed), -v's fingerprint lines, -q's summary and notes only."""
    level = progress.verbosity()
    if level <= progress.QUIET:
        return "\n".join([summary(plan), *(f"Note: {n}" for n in notes)])
    color = progress.color_allowed(stream)
    return render_text(plan, color=color, verbose=level >= progress.VERBOSE, notes=notes)


def painted(text: Text, color: bool) -> str:
    """`text` with its styles as terminal codes when `color`, else plain."""
    if not color:
        return text.plain
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="standard", width=10_000, soft_wrap=True).print(
        text, end=""
    )
    return out.getvalue()


def removal_lines(p: PlannedStep, color: bool = False, shown: int = 4) -> list[str]:
    """One `-` line per removal of a step: what, the paths (relative to the step's home) and the file count."""
    lines = []
    for r in p.removals:
        names = [_relative(path, p.step.home) for path in r.paths]
        if len(names) > shown:
            names = [*names[: shown - 1], f"and {len(names) - shown + 1} more"]
        n = r.files()
        line = f"    - {r.what}: {', '.join(names)} ({n} file{'s' if n != 1 else ''})"
        lines.append(painted(Text(line, style=REMOVAL_STYLE), color))
    return lines


def fingerprint_lines(p: PlannedStep, shown: int = 3) -> list[str]:
    """What the step's fingerprint is made of (-v): its settings, the steps it needs, the files it reads."""
    s = p.step
    inputs = [_relative(path, s.home) for path in s.inputs]
    more = f" and {len(inputs) - shown} more" if len(inputs) > shown else ""
    return [
        f"fingerprint: {p.fingerprint[:12] if p.fingerprint else 'none recorded'} (kind {s.kind}, "
        f"{len(s.config)} settings)",
        f"needs: {', '.join(s.deps) or 'nothing'}",
        f"reads: {', '.join(inputs[:shown]) + more if inputs else 'no file outside the steps'}",
    ]


def _relative(path: Path, home: Path) -> str:
    try:
        return str(path.relative_to(home)) or "."
    except ValueError:
        return str(path)


def summary(plan: Plan) -> str:
    counts = {a: len(plan.by_action(a)) for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)}
    parts = [f"{counts[a]} {WORDS[a]}" for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)]
    head = "Nothing to do." if counts[NEW] + counts[CHANGED] == 0 and not counts[REFUSED] else "Plan:"
    removed = sum(r.files() for p in plan.steps for r in p.removals)
    removing = (
        f"; {removed} file{'s' if removed != 1 else ''} to remove"
        if any(p.removals for p in plan.steps)
        else ""
    )
    return f"{head} {', '.join(parts)} ({_step_count(plan)}){removing}."


def _step_count(plan: Plan) -> str:
    """`5 steps`, or, with steps narrowed to parts (`--target 'model.M.train[split-0,network-*]'`),
    `3 steps and 3 parts of 1 step`: each step counted once, its parts apart.

    >>> from types import SimpleNamespace as S
    >>> _step_count(S(steps=[S(part=None, step=S(id="a")), S(part="network-0", step=S(id="b")),
    ...                     S(part="network-1", step=S(id="b"))]))
    '1 step and 2 parts of 1 step'
    """
    whole = sum(p.part is None for p in plan.steps)
    narrowed = {p.step.id for p in plan.steps if p.part is not None}
    if not narrowed:
        return progress.counted(whole, "step")
    parts = len(plan.steps) - whole
    counts = (
        progress.counted(whole, "step"),
        progress.counted(parts, "part"),
        progress.counted(len(narrowed), "step"),
    )
    return "{} and {} of {}".format(*counts)


def render_json(plan: Plan, notes: Sequence[str] = ()) -> str:
    return json.dumps({**plan_data(plan), "notes": list(notes)}, indent=2)


def change_word(p: PlannedStep) -> str:
    """Terraform's word for the step's action: create, update, replace (a changed step that removes
    earlier results first), no-op, or refuse (neuroexec's: apply would not run it)."""
    return "replace" if p.action == CHANGED and p.removals else CHANGE_WORDS[p.action]


def plan_data(plan: Plan) -> dict[str, Any]:
    """What `plan --json` prints (and `apply --json`'s plan event carries): format_version, spec, steps
    (each with its `action` symbol and its `change` word), summary."""
    counts = {WORDS[a].replace(" ", "_"): len(plan.by_action(a)) for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)}
    counts["files_to_remove"] = sum(r.files() for p in plan.steps for r in p.removals)
    counts["parts"] = sum(p.part is not None for p in plan.steps)
    steps = [{**p.as_json(), "change": change_word(p)} for p in plan.steps]
    return {
        "format_version": JSON_FORMAT_VERSION,
        "spec": str(plan.spec.path),
        "steps": steps,
        "summary": counts,
    }
