"""Plan rendering: one line per step (terraform-like) and a summary, or JSON for tools."""

from __future__ import annotations

import json

from neuroexec.plan.graph import CHANGED, NEW, REFUSED, UP_TO_DATE, Plan

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
    lines.append(summary(plan))
    return "\n".join(lines)


def summary(plan: Plan) -> str:
    counts = {a: len(plan.by_action(a)) for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)}
    parts = [f"{counts[a]} {WORDS[a]}" for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)]
    head = "Nothing to do." if counts[NEW] + counts[CHANGED] == 0 and not counts[REFUSED] else "Plan:"
    return f"{head} {', '.join(parts)} ({len(plan.steps)} steps)."


def render_json(plan: Plan) -> str:
    counts = {WORDS[a].replace(" ", "_"): len(plan.by_action(a)) for a in (NEW, CHANGED, UP_TO_DATE, REFUSED)}
    return json.dumps(
        {"spec": str(plan.spec.path), "steps": [p.as_json() for p in plan.steps], "summary": counts}, indent=2
    )
