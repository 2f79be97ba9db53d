"""Pre-emption in a SLURM job: after SIGTERM (SLURM's warning before the time limit, `sbatch
--signal=B:TERM@<grace>`), the training has written its mid-epoch checkpoint (training/preemption.py)
and the command is stopping; in a job submitted with `--requeue` and NEUROEXEC_SLURM_REQUEUE=1 (part of
every job `apply --slurm` submits), `requeue_self` puts the job back in the queue, and its next start
runs the same `neuroexec apply --target STEP`, which resumes from the checkpoint.

Only a job that SLURM warns before its time limit is requeued: a user's `scancel` sends SIGTERM too (and
`scancel --signal=KILL` goes through SIGTERM first), but by then `scontrol show job` says the job is
COMPLETING or CANCELLED, not RUNNING, and the cancel wins (`apply --slurm` submits the step again later).

A requeue that fails is a warning only: the step is not done, so the next `neuroexec apply --slurm`
submits it again, and it resumes from the same checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping

REQUEUE_ENV = "NEUROEXEC_SLURM_REQUEUE"


def requeue_command(environ: Mapping[str, str]) -> list[str] | None:
    """`scontrol requeue <SLURM_JOB_ID>` when the job asks for it (NEUROEXEC_SLURM_REQUEUE=1 in a SLURM
    job), on rank 0 only (torchrun's other ranks share the job); None otherwise.

    >>> requeue_command({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "42"})
    ['scontrol', 'requeue', '42']
    >>> requeue_command({"SLURM_JOB_ID": "42"}) is None  # a job that does not ask for it
    True
    >>> requeue_command({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "42", "RANK": "1"}) is None
    True
    """
    job = environ.get("SLURM_JOB_ID", "").strip()
    if environ.get(REQUEUE_ENV, "").strip() != "1" or not job or environ.get("RANK", "0") != "0":
        return None
    return ["scontrol", "requeue", job]


def requeue_self(environ: Mapping[str, str] | None = None) -> bool:
    """Requeue this SLURM job when it asks for it (`requeue_command`); True when SLURM took it. The line
    run goes to stderr (the job's log); a failure is a warning there, never an error. SIGTERM is
    ignored from here on: SLURM stops the job it requeues, and the command's exit (130) comes first."""
    argv = requeue_command(os.environ if environ is None else environ)
    if argv is None:
        return False
    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    state = job_state(argv[-1])
    if state not in (None, "RUNNING"):
        print(f"not requeued: the job was cancelled (JobState={state})", file=sys.stderr, flush=True)
        return False
    print(f"requeue: {' '.join(argv)}", file=sys.stderr, flush=True)
    failure = _failure(argv)
    if failure is not None:
        print(
            f"warning: {' '.join(argv)} failed ({failure.splitlines()[0]}); the step is not done: the next "
            "`neuroexec apply --slurm` submits it again and it resumes from its checkpoint",
            file=sys.stderr,
        )
        return False
    return True


def job_state(job: str) -> str | None:
    """SLURM's JobState of `job` (`scontrol -o show job`), None when scontrol does not say."""
    try:
        done = subprocess.run(
            ["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_job_state(done.stdout)


def parse_job_state(text: str) -> str | None:
    """The JobState field of `scontrol -o show job`'s line.

    >>> parse_job_state("JobId=7 JobName=train JobState=COMPLETING Reason=None Dependency=(null)")
    'COMPLETING'
    >>> parse_job_state("slurm_load_jobs error: Invalid job id specified") is None
    True
    """
    for field in text.split():
        if field.startswith("JobState="):
            return field.partition("=")[2] or None
    return None


def _failure(argv: list[str]) -> str | None:
    """Run `argv`; why it failed (its message), or None."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
