"""The SLURM commands neuroexec runs: `sbatch --parsable` to submit, `squeue` for the jobs queued or
running, `scontrol show job` (and `sacct` where the cluster keeps accounting) for those that ended.
No library between them and neuroexec: SLURM is the engine, and these are its stable interfaces."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

from neuroexec.errors import NeuroexecError

ALIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
         "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}  # fmt: skip
NEVER = "DependencyNeverSatisfied"  # a pending job whose dependency failed: it will never run


class SlurmError(NeuroexecError):
    """A SLURM command is missing or failed: the message names it and what it said."""


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    if shutil.which(argv[0]) is None:
        raise SlurmError(
            f"{argv[0]} not found: --slurm needs SLURM's commands on PATH (run it on a login node)"
        )
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def sbatch(script: Path) -> str:
    """Submit `script`; its job id."""
    done = _run(["sbatch", "--parsable", str(script)])
    if done.returncode != 0:
        raise SlurmError(f"sbatch {script} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def queued() -> dict[str, tuple[str, str]]:
    """The user's jobs SLURM still holds, by id (`12` or, for array tasks, `12_3`): (state, reason)."""
    done = _run(["squeue", "--noheader", "--array", "--user", getpass.getuser(), "--format=%i|%T|%r"])
    if done.returncode != 0:
        raise SlurmError(f"squeue failed: {done.stderr.strip()}")
    jobs = {}
    for line in done.stdout.splitlines():
        job_id, state, reason = (line.split("|") + ["", ""])[:3]
        jobs[job_id.strip()] = (state.strip(), reason.strip())
    return jobs


def will_run(state: str, reason: str) -> bool:
    """Whether a job in squeue will still run (a job whose dependency failed never will)."""
    return state in ALIVE and reason != NEVER


def ended(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Final states of jobs SLURM still knows (`scontrol`, then `sacct`): id -> (state, exit code)."""
    found: dict[str, tuple[str, str]] = {}
    for job_id in job_ids:
        done = _run(["scontrol", "--oneliner", "show", "job", job_id])
        for line in done.stdout.splitlines() if done.returncode == 0 else []:
            pairs = dict(w.partition("=")[::2] for w in line.split())
            key = pairs.get("JobId", job_id)
            if pairs.get("ArrayJobId") and pairs.get("ArrayTaskId", "").isdigit():
                key = f"{pairs['ArrayJobId']}_{pairs['ArrayTaskId']}"
            found[key] = (pairs.get("JobState", ""), pairs.get("ExitCode", ""))
    missing = [j for j in job_ids if not any(k == j or k.startswith(f"{j}_") for k in found)]
    return {**_accounting(missing), **found} if missing else found


def _accounting(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """sacct's states (empty without accounting storage)."""
    if shutil.which("sacct") is None:
        return {}
    done = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", ",".join(job_ids),
                 "--format=JobID,State,ExitCode"])  # fmt: skip
    found = {}
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        job_id, state, code = (line.split("|") + ["", ""])[:3]
        found[job_id] = (state.split()[0] if state else "", code)
    return found
