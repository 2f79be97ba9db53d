"""What a ClinicaDL-style command re-uses of what a spec (or another command) recorded in a MAPS or CAPS.

`neuroexec predict maps/cnn test`, re-using a group a spec defined, builds its own spec: the same group,
CAPS and model, but another graph (the MAPS is a pretrained model there, the CAPS is not generated),
so its steps' fingerprints cannot equal the spec's records. `adopt_recorded(plan)` makes the command's
plan judge those records by what the command can see: a step planned `+` or `~` is `=` when its
recorded run had the same settings (config), read the same files (identities) and was made from the
same upstream records; an input the record does not know is accepted only where the step's own data
check proves it: a group's sessions (the define step's check compares them, else it is `!`) and an
extraction's tensors (the CAPS's manifest records every one for the image as it is now). What the
spec alone depends on (its generate and train steps) the spec's own plan judges. Nothing is adopted
that would remove files, and a step whose model, data or settings changed runs as planned.

tests/compat/test_spec_and_command_share_a_group.py runs it: a spec, then `predict` twice, then the
spec again, nothing re-run after the first.
"""

from __future__ import annotations

import os

from neuroexec.data.tasks import ExtractTask
from neuroexec.errors import NeuroexecError
from neuroexec.plan.fingerprint import config_diff
from neuroexec.plan.graph import CHANGED, NEW, UP_TO_DATE, Plan, PlannedStep, input_identities
from neuroexec.plan.registry import kind
from neuroexec.plan.state import StateStores

ADOPTABLE = ("extract", "group", "predict", "save-tensors", "interpret")
PROVEN_BY_CHECK = ("group",)  # inputs a record may not know: the kind's plan-time check compares the data


def adopt_recorded(plan: Plan) -> None:
    """Mark `=` the steps of the plan that records of another spec or command show done as this
    plan would do them (in place; their fingerprint becomes the record's, for their dependents)."""
    index = {p.step.id: p for p in plan.steps}
    known: dict[str, set[str]] = {}  # step id -> the fingerprints its dependents' records may name
    for p in plan.steps:
        if p.action in (NEW, CHANGED) and p.step.kind in ADOPTABLE and not p.removals:
            adopted = _adopted(p, index, known, plan.stores)
            if adopted is not None:
                p.action, p.reasons, p.fingerprint = UP_TO_DATE, [], adopted
            elif p.action == CHANGED:
                p.reasons = _reasons(p, index, known, plan.stores) or p.reasons
        known[p.step.id] = {p.fingerprint or ""} if p.action == UP_TO_DATE else set()
        if p.action == UP_TO_DATE and p.step.kind == "extract":
            known[p.step.id] |= _extraction_records(p, plan.stores)


def _adopted(p: PlannedStep, index: dict, known: dict[str, set[str]], stores: StateStores) -> str | None:
    """The fingerprint of the record that does what `p` would do, or None."""
    step = p.step
    if any(index[d].action != UP_TO_DATE for d in step.deps):
        return None
    if step.kind == "extract":
        found = _extraction_records(p, stores)  # the spec's own record (under the bare id) first
        spec_made = (stores[step.home].record(step.id) or {}).get("fingerprint")
        return spec_made if spec_made in found else min(found, default=None)
    record = stores[step.home].record(step.record_key)
    if not _same_run(p, record, known, stores) or _outputs_missing(p):
        return None
    return record.get("fingerprint")


def _same_run(p: PlannedStep, record: dict | None, known: dict[str, set[str]], stores: StateStores) -> bool:
    """Whether `record` is a finished run of this step's kind, settings, upstream records and inputs."""
    step = p.step
    if not isinstance(record, dict) or record.get("status") != "done" or record.get("kind") != step.kind:
        return False
    if config_diff(record.get("config", {}), step.config):
        return False
    upstream = record.get("upstream") or {}
    if any(upstream.get(d) not in known.get(d, set()) for d in step.deps):
        return False
    recorded = record.get("inputs") or {}
    current, _ = input_identities(step, stores)
    for key, ident in current.items():
        then = recorded.get(key, recorded.get(os.path.normpath(step.home / key)))
        if then != ident and (then is not None or step.kind not in PROVEN_BY_CHECK):
            return False
    return True


def _reasons(p: PlannedStep, index: dict, known: dict[str, set[str]], stores: StateStores) -> list[str]:
    """Why a step that is not adopted runs, once its dependencies are judged: those still to run, else
    what differs from its record (settings, an upstream record, an input)."""
    step = p.step
    pending = [f"upstream {d} will run" for d in step.deps if index[d].action != UP_TO_DATE]
    record = stores[step.home].record(step.record_key)
    if pending or not isinstance(record, dict):
        return pending
    reasons = config_diff(record.get("config", {}), step.config)
    upstream = record.get("upstream") or {}
    reasons += [f"upstream {d} changed" for d in step.deps if upstream.get(d) not in known.get(d, set())]
    recorded = record.get("inputs") or {}
    current, _ = input_identities(step, stores)
    for key, ident in current.items():
        then = recorded.get(key, recorded.get(os.path.normpath(step.home / key)))
        if then is None and step.kind not in PROVEN_BY_CHECK:
            reasons.append(f"input {key} is new")
        elif then is not None and then != ident:
            reasons.append(f"input {key} {'is missing' if ident == 'missing' else 'changed'}")
    return reasons


def _outputs_missing(p: PlannedStep) -> bool:
    declared = kind(p.step.kind).outputs
    return declared is not None and not all(path.exists() for path in declared(p.step))


def _extraction_records(p: PlannedStep, stores: StateStores) -> set[str]:
    """The fingerprints of the CAPS's records of this extraction (its own, or the one a spec that
    generated the CAPS keeps under the bare step id) with the same settings, when its manifest shows
    every tensor of this dataset extracted from the image as it is now with these settings."""
    step = p.step
    task: ExtractTask = step.payload
    if not _tensors_current(task):
        return set()
    store = stores[step.home]
    return {
        r["fingerprint"]
        for r in (store.record(step.id), store.record(step.record_key))
        if isinstance(r, dict)
        and r.get("status") == "done"
        and "fingerprint" in r
        and not config_diff(r.get("config", {}), step.config)
    }


def _tensors_current(task: ExtractTask) -> bool:
    try:
        plan = task.extraction_plan()
    except NeuroexecError:
        return False
    return bool(plan.items) and not plan.todo
