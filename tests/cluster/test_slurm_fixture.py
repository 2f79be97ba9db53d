"""The real-SLURM fixture works: a job runs, an array waits on its `afterok` dependency, a cancelled job
is seen cancelled, the helpers read a job's state and log, and stopping a cluster leaves none of its
processes (daemons, job steps) behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.slurm import Slurm, SlurmUnavailable, processes_with, start


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


def test_stop_leaves_no_process_of_the_cluster_even_when_the_cancel_cannot_answer(
    tmp_path: Path, monkeypatch
) -> None:
    cluster = _own_cluster(tmp_path / "own")
    job = cluster.sbatch(_script(tmp_path, "sleep 300"), f"--output={tmp_path}/%j.log")
    cluster.wait(job, {"RUNNING"})
    marker = f"SLURM_CONF={cluster.env['SLURM_CONF']}"
    assert processes_with(marker)  # the daemons and the job's step
    monkeypatch.setattr(Slurm, "cancel_all", lambda self, timeout=60: None)  # as if scancel timed out
    cluster.stop()
    assert processes_with(marker) == []


def _own_cluster(root: Path) -> Slurm:
    try:
        return start(root)
    except SlurmUnavailable as why:
        pytest.skip(str(why))
