"""Spec -> step graph -> plan. For each step: `+` new, `~` changed (with reasons), `=` up to date,
`!` refused. Planning reads state and stats files; it never writes anything."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroexec.errors import NeuroexecError, NoParts, UnknownTarget
from neuroexec.globs import target_pattern
from neuroexec.plan.fingerprint import config_diff, file_identity, fingerprint, input_key, recorded_keys
from neuroexec.plan.registry import Removal, Step, kind, kinds
from neuroexec.plan.state import StateStores
from neuroexec.spec.model import Spec

NEW, CHANGED, UP_TO_DATE, REFUSED = "+", "~", "=", "!"


@dataclass
class PlannedStep:
    step: Step
    action: str
    reasons: list[str] = field(default_factory=list)
    fingerprint: str | None = None  # known when the step has a record to compare with
    removals: list[Removal] = field(default_factory=list)  # what apply deletes right before it runs
    # The step's record as the plan saw it (record_stamp; None: no record): apply, once it holds its
    # locks, stops if another apply has recorded the step since.
    seen: str | None = None
    # The part a step is narrowed to by `--target 'ID,PART'` (`network-2` of a multi-network training):
    # apply runs it without recording the step, which a later apply of ID finishes. None: the whole step.
    part: str | None = None

    @property
    def records(self) -> bool:
        """Whether apply records the step when it has run (not for a part of it)."""
        return self.part is None

    @property
    def target(self) -> str:
        """The `--target` that runs this (`model.M.train[split-0,network-2]` for a part)."""
        return self.step.id if self.part is None else f"{self.step.id[:-1]},{self.part}]"

    def as_json(self) -> dict[str, Any]:
        s = self.step
        return {
            "id": s.id,
            "part": self.part,  # `network-2` of a step narrowed by `--target 'ID,PART]'`, else None
            "target": self.target,
            "kind": s.kind,
            "action": self.action,
            "reasons": self.reasons,
            "home": str(s.home),
            "deps": list(s.deps),
            "fingerprint": self.fingerprint,
            "removals": [
                {"what": r.what, "paths": [str(p) for p in r.paths], "files": r.files()}
                for r in self.removals
            ],
        }


@dataclass
class Plan:
    spec: Spec
    steps: list[PlannedStep]
    stores: StateStores

    def by_action(self, action: str) -> list[PlannedStep]:
        return [p for p in self.steps if p.action == action]

    def select(self, target: str | Sequence[str] | None) -> list[PlannedStep]:
        """Steps matching the glob, or any of the globs (`--target` given several times), plus
        everything they depend on (in order). Each glob must match a step. A glob `ID,PART]` (
        `model.M.train[split-0,network-*]`) narrows the steps matching `ID]` to the parts PART names
        (the kind's `parts` hook), each planned as a step of its own that apply does not record."""
        globs = [target] if isinstance(target, str) else list(target or ())
        if not globs:
            return list(self.steps)
        index = {p.step.id: p for p in self.steps}
        wanted: set[str] = set()
        narrowed: dict[str, list[PlannedStep]] = {}
        for glob in globs:
            whole, part = split_target(glob)
            pattern = target_pattern(whole)
            found = {p.step.id for p in self.steps if pattern.fullmatch(p.step.id)}
            if part is not None:
                found = {i for i in found if kind(index[i].step.kind).parts is not None}
            if not found:
                raise UnknownTarget(glob, [p.step.id for p in self.steps])
            if part is None:
                wanted |= found
            if part is not None:
                self._narrow(glob, sorted(found), part, narrowed)
        stack = [*wanted, *narrowed]
        seen = set(stack)
        while stack:
            for dep in index[stack.pop()].step.deps:
                if dep not in seen:
                    wanted.add(dep)
                    seen.add(dep)
                    stack.append(dep)
        out = []
        for p in self.steps:  # a step selected whole needs none of its parts
            out += [p] if p.step.id in wanted else _unique(narrowed.get(p.step.id, []))
        return out

    def _narrow(self, glob: str, found: list[str], part: str, narrowed: dict[str, list[PlannedStep]]) -> None:
        """Add the parts `part` names of each step in `found` to `narrowed`. A step without parts (a
        model of one network) is refused, or skipped when the glob has wildcards and another step has
        parts: `model.*.train[split-0,network-*]` narrows the multi-network models only."""
        index = {p.step.id: p for p in self.steps}
        skipped: list[NoParts] = []
        for step_id in found:
            try:
                parts = self.parts_of(index[step_id], part)
            except NoParts as err:
                if len(found) == 1 or not any(c in split_target(glob)[0] for c in "*?"):
                    raise
                skipped.append(err)
                continue
            narrowed.setdefault(step_id, []).extend(parts)
        if len(skipped) == len(found):
            raise skipped[0]

    def parts_of(self, p: PlannedStep, part: str) -> list[PlannedStep]:
        """`p` narrowed to the parts the glob `part` names (the kind's `parts` hook: each part's step has
        the lock scope `<p's scope>/<part>`): up to date when `p` is, or when the part is done."""
        index = {q.step.id: q for q in self.steps}
        deps = [index[d] for d in p.step.deps]
        upstream = (
            None
            if any(d.action in (NEW, CHANGED) for d in deps)
            else {d.step.id: d.fingerprint or "" for d in deps}
        )
        # a part's own reason and the split's config diff: not the split's notes on what its apply
        # resumes, trains, publishes or replaces (the part does none of that)
        split_only = {*_resumes(p.step, upstream), *_notes(p)}
        own = [r for r in p.reasons if r not in split_only]
        out = []
        for step, reason, done in kind(p.step.kind).parts(p.step, part, upstream):
            if p.action == REFUSED:
                action, reasons = REFUSED, p.reasons
            elif p.action == UP_TO_DATE or done:
                action, reasons = UP_TO_DATE, [] if p.action == UP_TO_DATE else [reason]
            else:
                action, reasons = p.action, [reason, *own]
            name = step.lock_scope.rpartition("/")[2]
            out.append(PlannedStep(step, action, reasons, p.fingerprint, [], p.seen, part=name))
        return out


def _unique(steps: list[PlannedStep]) -> list[PlannedStep]:
    """One of each narrowed step (two globs may name the same part)."""
    found: dict[tuple[str, str], PlannedStep] = {}
    for p in steps:
        found.setdefault((p.step.id, p.step.lock_scope), p)
    return list(found.values())


def split_target(glob: str) -> tuple[str, str | None]:
    """(the step glob, the part glob) of a `--target`: `model.M.train[split-0,network-1]` is
    (`model.M.train[split-0]`, `network-1`); a glob without a part gives None.

    >>> split_target("model.cnn.train[split-0,network-*]")
    ('model.cnn.train[split-0]', 'network-*')
    >>> split_target("model.cnn.train[split-0]")
    ('model.cnn.train[split-0]', None)
    """
    if not glob.endswith("]") or "," not in glob[glob.rfind("[") + 1 :]:
        return glob, None
    head, _, part = glob[:-1].rpartition(",")
    return f"{head}]", part


def build_steps(spec: Spec) -> list[Step]:
    """All steps of the spec, dependencies before dependents (stable order)."""
    steps: list[Step] = []
    for k in kinds():
        steps.extend(k.expand(spec))
    index = {s.id: s for s in steps}
    if len(index) != len(steps):
        dup = sorted({s.id for s in steps if sum(t.id == s.id for t in steps) > 1})
        raise NeuroexecError(f"duplicate step ids: {dup}")
    for s in steps:
        for d in s.deps:
            if d not in index:
                raise NeuroexecError(f"step {s.id} depends on unknown step {d}")
    return _topological(steps, index)


def _topological(steps: list[Step], index: dict[str, Step]) -> list[Step]:
    out: list[Step] = []
    state: dict[str, int] = {}

    def visit(s: Step, chain: tuple[str, ...]) -> None:
        if state.get(s.id) == 2:
            return
        if state.get(s.id) == 1:
            raise NeuroexecError(f"dependency cycle: {' -> '.join([*chain, s.id])}")
        state[s.id] = 1
        for d in s.deps:
            visit(index[d], (*chain, s.id))
        state[s.id] = 2
        out.append(s)

    for s in steps:
        visit(s, ())
    return out


def input_identities(step: Step, stores: StateStores) -> tuple[dict[str, str], dict[str, Any]]:
    """Identities of the step's input files, keyed by their paths relative to the step's home (so a
    moved project keeps its records), and new cache entries (by absolute path) for those hashed."""
    cache = stores[step.home].file_cache()
    ids, fresh = {}, {}
    for path in step.inputs:
        ident, entry = file_identity(Path(path), cache)
        ids[input_key(path, step.home)] = ident
        if entry is not None:
            fresh[str(path)] = entry
    return ids, fresh


def step_fingerprint(step: Step, upstream: dict[str, str], stores: StateStores) -> tuple[str, dict, dict]:
    inputs, fresh = input_identities(step, stores)
    return fingerprint(step.kind, step.config, upstream, inputs), inputs, fresh


def record_stamp(record: dict[str, Any] | None) -> str | None:
    """What tells one record of a step from another: its fingerprint and when that run started."""
    if record is None:
        return None
    return f"{record.get('fingerprint')} {record.get('started')} {record.get('duration_s')}"


def make_plan(spec: Spec, stores: StateStores | None = None) -> Plan:
    stores = stores or StateStores()
    planned: dict[str, PlannedStep] = {}
    for step in build_steps(spec):
        planned[step.id] = _plan_step(step, planned, stores)
        if planned[step.id].action != REFUSED:
            planned[step.id].seen = record_stamp(stores[step.home].record(step.record_key))
        planned[step.id].removals = _removals(planned[step.id])
        planned[step.id].reasons += _notes(planned[step.id])
    return Plan(spec, list(planned.values()), stores)


def _plan_step(step: Step, planned: dict[str, PlannedStep], stores: StateStores) -> PlannedStep:
    check = kind(step.kind).check
    refusal = check(step) if check else None
    if refusal:
        return PlannedStep(step, REFUSED, [refusal])
    blocked = [d for d in step.deps if planned[d].action == REFUSED]
    if blocked:
        return PlannedStep(step, REFUSED, [f"needs {d}, which is refused" for d in blocked])
    record = stores[step.home].record(step.record_key)
    pending = [d for d in step.deps if planned[d].action in (NEW, CHANGED)]
    if pending:
        reasons = [f"upstream {d} will run" for d in pending]
        waiting = _resumes(step, None)  # the upstream fingerprints are not known before they run
        return PlannedStep(step, CHANGED, reasons + waiting) if record else PlannedStep(step, NEW, waiting)
    upstream = {d: planned[d].fingerprint or "" for d in step.deps}
    if record is None:
        return PlannedStep(step, NEW, _resumes(step, upstream))
    fp, inputs, _ = step_fingerprint(step, upstream, stores)
    if fp != record.get("fingerprint") and _recorded_the_old_way(step, record, upstream, inputs):
        fp = record["fingerprint"]  # what downstream records were made with
    if fp == record.get("fingerprint"):
        gone = _missing_outputs(step)
        if gone:
            return PlannedStep(
                step, CHANGED, [f"output {_short_path(str(p), step.home)} is missing" for p in gone], fp
            )
        return PlannedStep(step, UP_TO_DATE, [], fp)
    reasons = _reasons(step, record, upstream, inputs) or ["format version changed"]
    return PlannedStep(step, CHANGED, reasons + _resumes(step, upstream), fp)


def _recorded_the_old_way(step: Step, record: dict, upstream: dict[str, str], inputs: dict[str, str]) -> bool:
    """Whether the record, written when input keys were absolute paths, holds these same inputs (found
    where the step's home was then: here, or before the project moved) with these identities."""
    old = record.get("inputs") or {}
    keys = recorded_keys(old, step.home, inputs)
    if sorted(keys.values()) != sorted(inputs) or keys == {k: k for k in old}:
        return False  # other inputs, or a record with relative keys (the new fingerprint decided)
    then = {key: inputs[now] for key, now in keys.items()}
    return fingerprint(step.kind, step.config, upstream, then) == record.get("fingerprint")


def _removals(p: PlannedStep) -> list[Removal]:
    """What running a `+` or `~` step deletes: the kind's `removes` hook, kept to paths that exist."""
    hook = kind(p.step.kind).removes
    if hook is None or p.action not in (NEW, CHANGED):
        return []
    found = []
    for r in hook(p.step):
        paths = tuple(path for path in r.paths if path.exists() or path.is_symlink())
        if paths:
            found.append(Removal(r.what, paths))
    return found


def _notes(p: PlannedStep) -> list[str]:
    """The kind's notes on what a `+` or `~` step leaves in place."""
    hook = kind(p.step.kind).notes
    return hook(p.step) if hook is not None and p.action in (NEW, CHANGED) else []


def _resumes(step: Step, upstream: dict[str, str] | None) -> list[str]:
    """The step kind's note on partial work this run would continue, if any."""
    note = kind(step.kind).resumes
    found = note(step, upstream) if note else None
    return [found] if found else []


def _missing_outputs(step: Step, limit: int = 3) -> list[Path]:
    """The first few declared outputs of a recorded step that no longer exist."""
    declared = kind(step.kind).outputs
    if declared is None:
        return []
    gone = []
    for path in declared(step):
        if not path.exists():
            gone.append(path)
            if len(gone) == limit:
                break
    return gone


def _reasons(step: Step, record: dict, upstream: dict[str, str], inputs: dict[str, str]) -> list[str]:
    reasons = config_diff(record.get("config", {}), step.config)
    old_up = record.get("upstream", {})
    reasons += [f"upstream {d} changed" for d in upstream if d in old_up and old_up[d] != upstream[d]]
    unknown = [d for d in upstream if d not in old_up]  # not "changed": its record never named them
    if unknown:
        reasons.append(
            f"recorded by a run that did not depend on {', '.join(unknown)} (another spec or a "
            "ClinicaDL-style command, or before this spec used them)"
        )
    recorded = record.get("inputs") or {}
    old_in = {now: recorded[key] for key, now in recorded_keys(recorded, step.home, inputs).items()}
    for path, ident in inputs.items():
        if old_in.get(path) != ident:
            how = "is missing" if ident == "missing" else "is new" if path not in old_in else "changed"
            reasons.append(f"input {_input_name(path, step.home)} {how}")
    reasons += [f"input {_input_name(p, step.home)} no longer used" for p in old_in if p not in inputs]
    return reasons


def _input_name(key: str, home: Path) -> str:
    """An input as the plan names it: its path inside the step's home, or outside it, its absolute path
    (its name alone when that is long)."""
    return _short_path(os.path.normpath(os.path.join(home, key)), home)


def _short_path(path: str, home: Path) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(home))
    except ValueError:
        return p.name if len(str(p)) > 60 else str(p)
