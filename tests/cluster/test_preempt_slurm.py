"""Pre-emption under a real SLURM (tests/cluster/conftest.py): a training job gets SIGTERM as at its time
limit (`scancel --signal=TERM --batch`, what `--signal=B:TERM@<grace>` sends), checkpoints, requeues
itself (cluster/preempt.requeue_self), continues from its checkpoint on its next start and ends with the
model of an uninterrupted local run. Without SLURM: requeue_self's rules and its failure, a warning."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from neuroexec.cluster import preempt
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from tests.cluster.slurm import Slurm
from tests.training.test_preempt import body
from tests.training.training_specs import run_apply, write_spec

EPOCHS = 6


def job_script(folder: Path, spec: Path) -> Path:
    """The job `apply --slurm` submits for a training step, as its contract says: requeueable, SIGTERM
    before the time limit to the batch shell, NEUROEXEC_SLURM_REQUEUE=1, `exec neuroexec apply`."""
    path = folder / "train.sh"
    path.write_text(
        "#!/bin/bash\n#SBATCH --requeue\n#SBATCH --signal=B:TERM@60\n#SBATCH --open-mode=append\n"
        # the thread count of this process, which trains the uninterrupted reference: CPU kernels may sum
        # in another order with another count, and the comparison is bit for bit
        f"cd {folder}\nexport OMP_NUM_THREADS={torch.get_num_threads()} NEUROEXEC_SLURM_REQUEUE=1\n"
        'echo "start $SLURM_RESTART_COUNT"\n'
        f"exec {sys.executable} -m neuroexec apply {spec} --target 'model.slurm.train*'\n"
    )
    return path


def wait_for(ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def test_a_job_stopped_by_sigterm_is_requeued_and_resumes_to_the_uninterrupted_model(
    slurm_clean: Slurm, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, {"slurm": body(epochs=EPOCHS), "ref": body(epochs=EPOCHS)}, batch_size=2)
    run_apply(path, target="dataset.*")
    run_apply(path, target="model.*.split")
    maps, log = MapsLayout(tmp_path / "maps/slurm"), tmp_path / "job.log"
    job = slurm_clean.sbatch(job_script(tmp_path, path), f"--output={log}")
    wait_for(maps.resume_state(0).is_file, "the job's first epoch")  # then SIGTERM, in training
    slurm_clean.run("scancel", "--signal=TERM", "--batch", job)
    run_apply(path, target="model.ref.train*")  # meanwhile, the uninterrupted run
    requeued = lambda: slurm_clean.job(job).get("Reason") == "BeginTime" or "start 1" in slurm_clean.log(log)  # noqa: E731
    wait_for(requeued, f"the requeue\n{slurm_clean.log(log)}")
    # SLURM holds a requeued job for two minutes (its BeginTime); the test lets it start at once
    slurm_clean.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
    assert slurm_clean.wait(job, timeout=180) == "COMPLETED", slurm_clean.log(log)[-3000:]
    text = slurm_clean.log(log)
    assert f"requeue: scontrol requeue {job}" in text and "warning" not in text, text[-3000:]
    assert "split-0: resuming" in text.split("start 1")[1]
    ref = MapsLayout(tmp_path / "maps/ref")
    state, expected = (load_checkpoint(m.best_model(0, "loss")) for m in (maps, ref))
    assert state["epoch"] == expected["epoch"]
    for key, value in expected["model"].items():
        assert torch.equal(value, state["model"][key]), key
    logs = [pd.read_csv(m.training_tsv(0), sep="\t").drop(columns="time") for m in (maps, ref)]
    pd.testing.assert_frame_equal(*logs)


def test_requeue_self_asks_slurm_only_in_a_job_that_wants_it(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(preempt, "_failure", lambda argv: calls.append(argv))
    monkeypatch.setattr(preempt, "job_state", lambda job: "RUNNING")  # SLURM's warning at the time limit
    assert not preempt.requeue_self({"SLURM_JOB_ID": "7"})  # submitted without NEUROEXEC_SLURM_REQUEUE
    assert not preempt.requeue_self({"NEUROEXEC_SLURM_REQUEUE": "1"})  # not in a SLURM job
    assert calls == []
    with monkeypatch.context() as mp:
        mp.setattr(preempt.signal, "signal", lambda *args: None)  # leave this process's SIGTERM alone
        assert preempt.requeue_self({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "7"})
    assert calls == [["scontrol", "requeue", "7"]]
    assert capsys.readouterr().err == "requeue: scontrol requeue 7\n"


def test_a_job_the_user_cancelled_is_not_requeued(monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(preempt, "_failure", lambda argv: calls.append(argv))
    monkeypatch.setattr(preempt.signal, "signal", lambda *args: None)
    for state in ("COMPLETING", "CANCELLED"):  # what `scontrol show job` says once scancel has run
        monkeypatch.setattr(preempt, "job_state", lambda job, state=state: state)
        assert not preempt.requeue_self({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "7"})
        assert f"not requeued: the job was cancelled (JobState={state})" in capsys.readouterr().err
    assert calls == []


def test_a_failed_requeue_is_a_warning(tmp_path, monkeypatch, capsys) -> None:
    fake = tmp_path / "scontrol"
    fake.write_text('#!/bin/sh\necho "scontrol: error: Invalid job id specified" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setattr(preempt.signal, "signal", lambda *args: None)
    assert not preempt.requeue_self({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "99"})
    err = capsys.readouterr().err
    assert "warning: scontrol requeue 99 failed (scontrol: error: Invalid job id specified)" in err
    assert "the next `neuroexec apply --slurm` submits it again" in err
    monkeypatch.setenv("PATH", str(tmp_path / "none"))  # no scontrol at all
    assert not preempt.requeue_self({"NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "99"})
    assert "warning: scontrol requeue 99 failed" in capsys.readouterr().err
