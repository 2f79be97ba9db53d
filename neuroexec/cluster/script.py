"""A job's sbatch script: its resources, requeue and signal options, its dependencies, and the line that
runs its steps, `exec neuroexec apply SPEC --target STEP ...` (exec: SLURM's SIGTERM reaches neuroexec,
which checkpoints a training and requeues the job: neuroexec/cluster/preempt.py).

>>> from neuroexec.cluster.jobs import Job
>>> job = Job("train-cnn", "train", tasks=[["model.cnn.train[split-0]"], ["model.cnn.train[split-1]"]])
>>> text = script_text(job, Path("/p/spec.toml"), Path("/p/logs/train-cnn-%A_%a.log"), ["41"], "/venv/python")
>>> print(text, end="")
#!/bin/bash
#SBATCH --job-name=neuroexec-spec-train-cnn
#SBATCH --output=/p/logs/train-cnn-%A_%a.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
#SBATCH --dependency=afterok:41
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --array=0-1
#SBATCH --cpus-per-task=1
# Written by `neuroexec apply --slurm` for /p/spec.toml: model.cnn.train[split-0], model.cnn.train[split-1].
export NEUROEXEC_SLURM_REQUEUE=1  # a training stopped by SIGTERM checkpoints and requeues the job
cd /p
case "$SLURM_ARRAY_TASK_ID" in
  0) set -- --target 'model.cnn.train[split-0]' ;;
  1) set -- --target 'model.cnn.train[split-1]' ;;
  *) echo "no steps for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
esac
exec /venv/python -m neuroexec apply /p/spec.toml --quiet "$@"
"""

from __future__ import annotations

import shlex
from pathlib import Path

from neuroexec.cluster.jobs import Job


def script_text(job: Job, spec: Path, log: Path, after: list[str], python: str) -> str:
    """The sbatch script of `job`, running after the jobs whose ids are `after`."""
    r = job.resources
    head = [
        f"--job-name={sbatch_quote(f'neuroexec-{spec.stem}-{job.name}')}",
        f"--output={sbatch_quote(str(log))}",
        "--open-mode=append",  # a requeued job continues its log
        "--requeue",
        f"--signal=B:TERM@{r.grace_s}",
    ]
    if after:
        head += [f"--dependency={dependency(job, after)}", "--kill-on-invalid-dep=yes"]
    if job.array:
        head.append(f"--array=0-{len(job.tasks) - 1}")
    head += r.sbatch_lines()
    lines = ["#!/bin/bash", *(f"#SBATCH {h}" for h in head)]
    lines += [
        f"# Written by `neuroexec apply --slurm` for {spec}: {', '.join(job.steps())}.",
        "export NEUROEXEC_SLURM_REQUEUE=1  # a training stopped by SIGTERM checkpoints and requeues the job",
        f"cd {shlex.quote(str(spec.parent))}",
    ]
    command = _command(job, spec, python)
    if not job.array:
        return "\n".join([*lines, f"exec {command} {_targets(job.tasks[0])}", ""])
    lines.append('case "$SLURM_ARRAY_TASK_ID" in')
    lines += [f"  {i}) set -- {_targets(task)} ;;" for i, task in enumerate(job.tasks)]
    lines.append('  *) echo "no steps for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;')
    lines.append("esac")
    return "\n".join([*lines, f'exec {command} "$@"', ""])


def dependency(job: Job, after: list[str]) -> str:
    """sbatch's --dependency: `aftercorr` on the arrays `job` waits for task by task (`job.corr`; the first
    ids of `after` are those of `job.after`), `afterok` on the others.

    >>> job = Job("evaluate", "evaluate", after=["data", "train-cnn"], corr=["train-cnn"])
    >>> dependency(job, ["40", "41", "7"])
    'afterok:40:7,aftercorr:41'
    """
    corr = [job_id for name, job_id in zip(job.after, after) if name in job.corr]
    ok = [job_id for job_id in after if job_id not in corr]
    return ",".join([*([f"afterok:{':'.join(ok)}"] if ok else []), *(f"aftercorr:{c}" for c in corr)])


def sbatch_quote(value: str) -> str:
    """A value of an `#SBATCH` line, in double quotes when it has more than plain characters (sbatch
    splits such a line at spaces, takes `#` for a comment, reads `"` and `\\` as quoting).

    >>> sbatch_quote("/p/logs/train-%A_%a.log")
    '/p/logs/train-%A_%a.log'
    >>> print(sbatch_quote('/my data/#1 "x"/a.log'))
    "/my data/\\#1 \\"x\\"/a.log"
    """
    if all(c.isalnum() or c in "/._-%+,:=@" for c in value):
        return value
    return '"' + "".join(f"\\{c}" if c in '\\"#' else c for c in value) + '"'


def _targets(steps: list[str]) -> str:
    return " ".join(f"--target {shlex.quote(step)}" for step in steps)


def _command(job: Job, spec: Path, python: str) -> str:
    """`python -m neuroexec apply SPEC --quiet`; a training on several GPUs under `srun torchrun`."""
    argv = ["apply", str(spec), "--quiet"]
    if job.kind == "train" and job.resources.gpus > 1:
        from neuroexec.cluster import torchrun  # part of the pre-emption and torchrun work

        return torchrun.command(argv, job.resources.gpus)
    return " ".join(shlex.quote(a) for a in [python, "-m", "neuroexec", *argv])
