"""Plan rendering: one line per step (terraform-like) and a summary, or JSON for tools."""

from __future__ import annotations

import json
from pathlib import Path

from neuroexec.plan.graph import CHANGED, NEW, REFUSED, UP_TO_DATE, Plan, PlannedStep

WORDS = {NEW: "new", CHANGED: "changed", UP_TO_DATE: "up to date", REFUSED: "refused"}


def render_text(plan: Plan, color: bool = False) -> str:
    colors = {NEW: "\x1b[32m", CHANGED: "\x1b[33m", UP_TO_DATE: "\x1b[2m", REFUSED: "\x1b[31m"}
    lines = [f"Plan for {plan.spec.path}:"]
    for p in plan.steps:
        head = f"  {p.action} {p.step.id}"
        if color:
            head = f"{colors[p.action]}{head}\x1b[0m"
        lines.append(head)
        for reason in p.reasons:
            lines.append(f"      {reason}")
        lines.extend(removal_lines(p, color))
    lines.append(summary(plan))
    return "\n".join(lines)


def removal_lines(p: PlannedStep, color: bool = False, shown: int = 4) -> list[str]:
    """One `-` line per removal of a step: what, the paths (relative to the step's home) and the file count."""
    lines = []
    for r in p.removals:
        names = [_relative(path, p.step.home) for path in r.paths]
        if len(names) > shown:
            names = [*names[: shown - 1], f"and {len(names) - shown + 1} more"]
        n = r.files()
        line = f"    - {r.what}: {', '.join(names)} ({n} file{'s' if n != 1 else ''})"
        lines.append(f"\x1b[31m{line}\x1b[0m" if color else line)
    return lines


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
    return f"{head} {', '.join(parts)} ({len(plan.steps)} steps){removing}."


def render_json(plan: Plan) -> str:
    return json.dumps(plan_data(plan), indent=2)


def plan_data(plan: Plan) -> dict:
    """What `plan --json` prints (and `apply --json`'s plan event carries): spec, steps, summary."""
    counts = {WORDS[a].replace(" ", "_"): len(plan.by_action(a)) for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)}
    counts["files_to_remove"] = sum(r.files() for p in plan.steps for r in p.removals)
    return {"spec": str(plan.spec.path), "steps": [p.as_json() for p in plan.steps], "summary": counts}
