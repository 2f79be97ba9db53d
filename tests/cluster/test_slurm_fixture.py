"""The real-SLURM fixture works: a job runs, an array waits on its `afterok` dependency, a cancelled job
is seen cancelled, and the helpers read a job's state and log."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.slurm import Slurm


def _script(folder: Path, body: str) -> Path:
    path = folder / "job.sh"
    path.write_text("#!/bin/bash\n" + body + "\n")
    return path


def test_array_runs_after_its_dependency(slurm_clean: Slurm, tmp_path: Path) -> None:
    first = slurm_clean.sbatch(_script(tmp_path, "echo first $SLURM_JOB_ID"), f"--output={tmp_path}/%j.log")
    later = slurm_clean.sbatch(
        _script(tmp_path, "echo task $SLURM_ARRAY_TASK_ID"),
        "--array=0-1",
        f"--dependency=afterok:{first}",
        f"--output={tmp_path}/%A_%a.log",
    )
    assert slurm_clean.job(later).get("Dependency", "").startswith(f"afterok:{first}")
    assert slurm_clean.wait(later) == "COMPLETED"
    assert slurm_clean.log(tmp_path / f"{first}.log") == f"first {first}\n"
    assert slurm_clean.log(tmp_path / f"{later}_1.log") == "task 1\n"


def test_scancel_is_seen(slurm_clean: Slurm, tmp_path: Path) -> None:
    job = slurm_clean.sbatch(_script(tmp_path, "sleep 60"), f"--output={tmp_path}/%j.log")
    slurm_clean.wait(job, {"RUNNING"})
    slurm_clean.run("scancel", job)
    assert slurm_clean.wait(job) == "CANCELLED"
