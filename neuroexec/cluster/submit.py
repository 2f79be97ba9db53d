"""`apply --slurm`: the plan's jobs (neuroexec/cluster/jobs.py) written as sbatch scripts and submitted in
order, each after the jobs it needs, their records kept (neuroexec/cluster/ledger.py). Steps up to date
are not submitted, nor those of a job still queued or running (a new job that needs one runs after it):
running it again after a job failed or was cancelled submits what is left."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from neuroexec import atomic, records
from neuroexec.cluster import ledger as ledger_mod
from neuroexec.cluster import slurm
from neuroexec.cluster.jobs import Job, make_jobs
from neuroexec.cluster.ledger import JobRecord, Ledger
from neuroexec.cluster.resources import check, parse_options
from neuroexec.cluster.script import script_text
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec


@dataclass
class Submission:
    """What `apply --slurm` (or `plan --slurm`: nothing submitted, `records` empty) found and did."""

    spec: Path
    jobs: list[Job]
    queued: dict[str, str]  # step id -> id of the queued or running job that does it
    records: list[JobRecord]
    folder: Path  # where the records, scripts and logs are
    note: str = ""  # why the jobs still queued are not known (plan --slurm where squeue fails)


def prepare(
    spec_path: Path, target: list[str] | None, options: list[str] | None, preview: bool = False
) -> Submission:
    """The jobs a submission would make now (writes nothing). `preview` (plan --slurm): a failing squeue
    is a note, not an error."""
    spec = load_spec(spec_path)
    flags = parse_options(options)
    check(spec.cluster, flags, spec.path)  # a bad time or mem now, not at sbatch after other jobs
    plan = make_plan(spec)
    ledger = ledger_mod.load(spec.path)
    queued, note = {}, ""
    if ledger.jobs and shutil.which("squeue"):
        try:
            queued = still_queued(ledger)
        except slurm.SlurmError as exc:
            if not preview:
                raise
            note = f"jobs still queued are not known ({str(exc).splitlines()[0]}): shown as if none were"
    jobs = make_jobs(plan, target, (spec.cluster, flags), queued)
    folder = records.slurm_dir(spec.path.parent, spec.path.stem)
    return Submission(spec.path, jobs, queued, [], folder, note)


def still_queued(ledger: Ledger) -> dict[str, str]:
    """Step id -> job id, for the steps whose last job SLURM will still run."""
    live = slurm.queued()
    found = {}
    for step, (job, task) in ledger.latest().items():
        state = live.get(job.task_ids()[task])
        if state is not None and slurm.will_run(*state):
            found[step] = job.id
    return found


def submit(spec_path: Path, target: list[str] | None, options: list[str] | None) -> Submission:
    """Submit the jobs (in order: each job's dependencies have ids when it is written)."""
    sub = prepare(spec_path, target, options)
    ledger = ledger_mod.load(sub.spec)
    number = ledger.submissions() + 1
    ids: dict[str, str] = {}
    for job in sub.jobs:
        after = [ids[name] for name in job.after] + job.after_ids
        log = records.slurm_log(sub.spec.parent, sub.spec.stem, job.name, job.array)
        log.parent.mkdir(parents=True, exist_ok=True)
        script = records.slurm_script(sub.spec.parent, sub.spec.stem, number, job.name)
        atomic.write_text(script, script_text(job, sub.spec, log, after, sys.executable))
        ids[job.name] = slurm.sbatch(script)
        record = JobRecord(
            ids[job.name],
            job.name,
            job.kind,
            job.tasks,
            after,
            str(script),
            str(log),
            _now(),
            job.array,
            number,
        )
        ledger.jobs.append(record)
        sub.records.append(record)
        ledger.save()  # after each job: a failed sbatch keeps the records of those submitted
    return sub


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
