"""`neuroexec status SPEC`: each step done or not (the plan's records decide), and for a step not done its
last SLURM job: queued, running, or failed (with its job id, its state when SLURM still knows it, its
log and the log's last line), or "not submitted" ("to do" for a spec that never used SLURM). A job SLURM no longer knows
(no accounting storage) whose step is not done ended without finishing it: failed, whatever its exit
status was. `report_lines`: the failed jobs, for `neuroexec report`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from neuroexec.cluster import ledger as ledger_mod
from neuroexec.cluster import slurm
from neuroexec.errors import NeuroexecError
from neuroexec.plan.graph import UP_TO_DATE, Plan, PlannedStep, make_plan
from neuroexec.spec import load_spec

TO_DO = "to do"  # a step not done, in a spec never submitted to SLURM


@dataclass
class StepStatus:
    step: str
    word: str  # done, queued, running, failed, not submitted (to do: the spec has no SLURM jobs)
    job: str = ""  # the SLURM id of its last job's task (`12_0`)
    state: str = ""  # what SLURM says of it (RUNNING, PENDING (Dependency), CANCELLED ...)
    log: Path | None = None
    last_line: str = ""


@dataclass
class Report:
    spec: Path
    steps: list[StepStatus]

    def failed(self) -> list[StepStatus]:
        return [s for s in self.steps if s.word == "failed"]


def status(spec_path: Path) -> Report:
    spec = load_spec(spec_path)
    plan = make_plan(spec)
    ledger = ledger_mod.load(spec.path)
    latest = ledger.latest()
    live = slurm.queued() if ledger.jobs and shutil.which("squeue") else {}
    gone = [j.id for j in ledger.jobs if not all(t in live for t in j.task_ids())]  # a task ended
    ended = slurm.ended(gone) if gone and shutil.which("scontrol") else {}
    steps = []
    for p in plan.steps:
        found = latest.get(p.step.id)
        if p.action == UP_TO_DATE:
            steps.append(StepStatus(p.step.id, "done", found[0].task_ids()[found[1]] if found else ""))
        elif found is None:
            steps.append(StepStatus(p.step.id, "not submitted" if ledger.jobs else TO_DO))
        else:
            steps.append(_of_job(p.step.id, *found, live, ended))
        steps += _networks_of(plan, p, latest, live, ended)
    return Report(spec.path, steps)


def _networks_of(plan: Plan, p: PlannedStep, latest: dict, live: dict, ended: dict) -> list[StepStatus]:
    """The network tasks submitted for a multi-network training step (recorded by their own targets,
    `model.M.train[split-0,network-1]`), each done (finished under the step's key), or its job's state."""
    prefix = f"{p.step.id[:-1]},"
    if p.part is not None or not any(t.startswith(prefix) for t in latest):
        return []
    try:
        parts = {q.target: q for q in plan.parts_of(p, "network-*")}
    except NeuroexecError:  # the count is not known before the images exist
        return []
    rows = []
    for target, q in parts.items():
        found = latest.get(target)
        if q.action == UP_TO_DATE:
            rows.append(StepStatus(target, "done", found[0].task_ids()[found[1]] if found else ""))
        elif found is not None:
            rows.append(_of_job(target, *found, live, ended))
    return rows


def _of_job(step: str, job: ledger_mod.JobRecord, task: int, live: dict, ended: dict) -> StepStatus:
    task_id = job.task_ids()[task]
    if task_id in live and slurm.will_run(*live[task_id]):
        state, reason = live[task_id]
        word = "running" if state in ("RUNNING", "COMPLETING") else "queued"
        return StepStatus(
            step, word, task_id, f"{state} ({reason})" if reason and reason != "None" else state
        )
    state, code = ended.get(task_id) or ended.get(job.id) or live.get(task_id) or ("", "")
    log = job.log_of(task)
    said = f"{state} (exit {code})" if state and code else state or "ended, no longer known to SLURM"
    return StepStatus(step, "failed", task_id, said, log, _last_line(log))


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:200] if lines else ""


def render(report: Report) -> str:
    lines = [f"Status of {report.spec}:"]
    width = max((len(s.step) for s in report.steps), default=0)
    for s in report.steps:
        job = f"  job {s.job} {s.state}".rstrip() if s.job else ""
        lines.append(f"  {s.word:<13} {s.step:<{width}}{job}".rstrip())
        if s.word == "failed":
            lines.append(f"                log: {s.log}")
            if s.last_line:
                lines.append(f"                last line: {s.last_line}")
    counts = {w: sum(s.word == w for s in report.steps) for w in ("done", "running", "queued", "failed")}
    missing = TO_DO if any(s.word == TO_DO for s in report.steps) else "not submitted"
    counts[missing] = sum(s.word == missing for s in report.steps)
    lines.append("Steps: " + ", ".join(f"{n} {w}" for w, n in counts.items()) + ".")
    if counts["failed"]:
        lines.append("Run `neuroexec apply SPEC --slurm` again to resubmit what is not done.")
    return "\n".join(lines)


def report_lines(spec_path: Path) -> list[str]:
    """`neuroexec report`'s lines on SLURM: one per failed job task (its steps, job id, state, log); none
    when the spec has no job records or no job failed."""
    if not ledger_mod.load(spec_path).jobs:
        return []
    try:
        failed = status(spec_path).failed()
    except slurm.SlurmError as exc:
        return [f"  SLURM jobs: not known ({str(exc).splitlines()[0]})"]
    tasks: dict[str, list[StepStatus]] = {}
    for s in failed:
        tasks.setdefault(s.job, []).append(s)
    if not tasks:
        return []
    lines = [f"  SLURM jobs failed: {len(tasks)} (`neuroexec status` says more; `apply --slurm` resubmits)"]
    for job, steps in tasks.items():
        names = ", ".join(s.step for s in steps)
        lines.append(f"    job {job} {steps[0].state}: {names}; log {steps[0].log}")
    return lines
