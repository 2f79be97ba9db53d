"""The text of `plan --slurm` (the jobs that would be submitted) and `apply --slurm` (those submitted,
with their ids and how to watch them).

>>> from neuroexec.cluster.jobs import Job
>>> job = Job("train-cnn", "train", tasks=[["model.cnn.train[split-0]"]], after=["data"])
>>> print("\\n".join(job_lines(job)))
  train-cnn: array of 1, after data, --cpus-per-task=1
      0: model.cnn.train[split-0]
"""

from __future__ import annotations

import json

from neuroexec.cluster.jobs import Job
from neuroexec.cluster.submit import Submission
from neuroexec.plan.render import JSON_FORMAT_VERSION


def job_lines(job: Job, job_id: str | None = None, after: list[str] | None = None) -> list[str]:
    """A job: name (and id), array size, dependencies, resources, then its steps per task."""
    shape = f"array of {len(job.tasks)}" if job.array else "one job"
    names = [f"{n} (task by task)" if n in job.corr else n for n in job.after]
    needs = after if after is not None else names + job.after_ids
    parts = [f"job {job_id}" if job_id else "", shape, f"after {', '.join(needs)}" if needs else ""]
    parts.append(" ".join(job.resources.sbatch_lines()))
    head = f"  {job.name}: " + ", ".join(p for p in parts if p)
    if not job.array:
        return [head, *(f"      {step}" for step in job.tasks[0])]
    return [head, *(f"      {i}: {', '.join(task)}" for i, task in enumerate(job.tasks))]


def render_plan(sub: Submission) -> str:
    """What `apply --slurm` would submit now."""
    lines = [f"SLURM jobs for {sub.spec}:"]
    for job in sub.jobs:
        lines += job_lines(job)
    lines += _queued_lines(sub)
    steps = sum(len(job.steps()) for job in sub.jobs)
    lines.append(
        f"Jobs: {len(sub.jobs)} to submit ({steps} steps), {len(set(sub.queued.values()))} still queued."
    )
    if sub.note:
        lines.append(f"Note: {sub.note}")
    return "\n".join(lines)


def render_plan_json(sub: Submission) -> str:
    """`plan --slurm --json`: the jobs (name, kind, array or not, steps per task, the jobs of this
    submission they run after, those of them waited for task by task, the ids of jobs queued earlier,
    sbatch options), the steps already queued (step -> job id) and the note, with plan --json's
    format_version."""
    jobs = [
        {
            "name": job.name,
            "kind": job.kind,
            "array": job.array,
            "tasks": job.tasks,
            "after": job.after,
            "after_task_by_task": job.corr,
            "after_ids": job.after_ids,
            "sbatch": job.resources.sbatch_lines(),
        }
        for job in sub.jobs
    ]
    data = {"format_version": JSON_FORMAT_VERSION, "spec": str(sub.spec), "jobs": jobs}
    return json.dumps({**data, "queued": sub.queued, "note": sub.note}, indent=2)


def render_submitted(sub: Submission) -> str:
    """What `apply --slurm` submitted, and where to watch it."""
    if not sub.records:
        lines = ["Nothing to submit: every selected step is up to date or in a job still queued or running."]
        return "\n".join([*lines, *_queued_lines(sub), *_watch(sub)])
    lines = [f"Submitted to SLURM for {sub.spec}:"]
    for job, record in zip(sub.jobs, sub.records):
        lines += job_lines(job, record.id, record.after)
    return "\n".join([*lines, *_queued_lines(sub), *_watch(sub)])


def _queued_lines(sub: Submission) -> list[str]:
    if not sub.queued:
        return []
    lines = ["  already queued or running (not submitted again):"]
    return lines + [f"      {step} (job {job_id})" for step, job_id in sub.queued.items()]


def _watch(sub: Submission) -> list[str]:
    return [
        f"Watch: neuroexec status {sub.spec}  (or squeue --me); logs in {sub.folder / 'logs'}",
    ]
