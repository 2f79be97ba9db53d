"""What produced a page: the spec's text, the versions of neuroexec and of the libraries it ran with,
and each step of the spec's plan with its fingerprint, its plan action and its record in the state
(`.neuroexec/state.json` of the folder that owns it: when it ran, how long it took)."""

from __future__ import annotations

import platform
from importlib import metadata

from neuroexec import __version__, records
from neuroexec.errors import NeuroexecError
from neuroexec.html_report.elements import esc, note, section, table
from neuroexec.plan.graph import PlannedStep, make_plan
from neuroexec.plan.state import read_state
from neuroexec.spec.model import Spec

LIBRARIES = ("torch", "nilearn", "nibabel", "numpy", "scikit-learn", "matplotlib", "pandas")
ACTIONS = {"+": "to create", "~": "to update", "=": "up to date", "!": "refused"}


def versions() -> list[tuple[str, str]]:
    """(name, version) of Python, neuroexec and the libraries (`not installed` when absent)."""
    found = [("python", platform.python_version()), ("neuroexec", __version__)]
    for name in LIBRARIES:
        try:
            found.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    return found


def planned_steps(spec: Spec) -> list[PlannedStep] | str:
    """The spec's plan (planning writes nothing), or why it cannot be made."""
    try:
        return list(make_plan(spec).steps)
    except NeuroexecError as err:
        return str(err)


def fingerprint_rows(steps: list[PlannedStep]) -> list[list[str]]:
    """Per step: id, plan action, fingerprint (the recorded one), when it ran and how long it took."""
    rows, states = [], {}
    for planned in steps:
        step = planned.step
        if step.home not in states:
            states[step.home] = read_state(records.state_file(step.home))[0]
        record = states[step.home].get("steps", {}).get(step.record_key) or {}
        duration = record.get("duration_s")
        rows.append(
            [
                step.id,
                f"{planned.action} {ACTIONS.get(planned.action, '')}",
                record.get("fingerprint") or planned.fingerprint or "",
                record.get("started", "never"),
                f"{duration:.1f} s" if isinstance(duration, (int, float)) else "",
            ]
        )
    return rows


def provenance_section(spec: Spec) -> str:
    """The spec text, the versions and the step fingerprints."""
    try:
        text = spec.path.read_text()
    except OSError as err:
        text = f"(cannot read {spec.path}: {err.strerror})"
    steps = planned_steps(spec)
    if isinstance(steps, str):
        fingerprints = note(f"The plan cannot be made: {steps}")
    else:
        headers = ["step", "plan", "fingerprint", "ran at", "took"]
        fingerprints = table(headers, fingerprint_rows(steps), css="steps")
    body = (
        f"<h3>Spec {esc(spec.path)}</h3><pre>{esc(text)}</pre>"
        f"<h3>Versions</h3>{table(['package', 'version'], versions())}"
        f"<h3>Steps and fingerprints</h3>{fingerprints}"
    )
    return section("What produced this page", body, 2, "provenance")
