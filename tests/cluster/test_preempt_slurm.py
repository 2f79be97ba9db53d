"""Pre-emption under a real SLURM (tests/cluster/conftest.py): a training job submitted with a real time
limit (`--time=2`) gets SLURM's warning a minute before it (`--signal=B:TERM@60`) mid-training,
checkpoints, requeues itself (cluster/preempt.requeue_self), continues from its checkpoint on its next
start and ends with the model of an uninterrupted local run. Without SLURM: requeue_self's rules and its
failure, a warning.

SLURM looks at time limits every 30 s (slurmctld's periodic timer, not configurable), so a job of two
minutes gets its warning 60 to 90 s after its start: long after the command has started and installed
its SIGTERM handling (a warning within a second of a start, as a one-minute limit can give, may find
the interpreter still starting, where nothing can checkpoint or requeue). Until the training has a
checkpoint to resume from, the job's batches are slowed (training/preemption.py's test hook, which
changes nothing else) so that the training outlasts those 90 s on any machine: the warning cannot miss
it. Once it has resumed, the training runs at full speed and ends well before the next warning."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd
import torch

from neuroexec.cluster import preempt
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from tests.cluster.slurm import FINISHED, Slurm
from tests.training.test_preempt import body
from tests.training.training_specs import run_apply, write_spec

EPOCHS = 6
MIN_BATCH_SECONDS = 6  # 3 batches an epoch: 108 s at least, until there is a checkpoint


def job_script(folder: Path, spec: Path, checkpoint: Path) -> Path:
    """The job `apply --slurm` submits for a training step, as its contract says: requeueable, SIGTERM
    before the time limit to the batch shell, NEUROEXEC_SLURM_REQUEUE=1, `exec neuroexec apply`; with
    a time limit of two minutes, and slow batches while `checkpoint` does not exist."""
    path = folder / "train.sh"
    path.write_text(
        "#!/bin/bash\n#SBATCH --requeue\n#SBATCH --time=2\n#SBATCH --signal=B:TERM@60\n"
        "#SBATCH --open-mode=append\n"
        # the thread count of this process, which trains the uninterrupted reference: CPU kernels may sum
        # in another order with another count, and the comparison is bit for bit
        f"cd {folder}\nexport OMP_NUM_THREADS={torch.get_num_threads()} NEUROEXEC_SLURM_REQUEUE=1\n"
        f"[ -e {checkpoint} ] || export NEUROEXEC_MIN_BATCH_SECONDS={MIN_BATCH_SECONDS}\n"
        'echo "--- start ${SLURM_RESTART_COUNT:-0}"\n'
        f"exec {sys.executable} -m neuroexec apply {spec} --target 'model.slurm.train*'\n"
    )
    return path


def run_requeued_at_once(slurm: Slurm, job: str, timeout: float = 300) -> str:
    """Wait until the job finishes; each time it was requeued, let it start again at once (SLURM holds a
    requeued job for two minutes, its BeginTime). Its final state."""
    deadline = time.monotonic() + timeout
    while (state := (info := slurm.job(job)).get("JobState", "")) not in FINISHED:
        assert time.monotonic() < deadline, f"job {job} still {state} after {timeout} s\n{slurm.logs()}"
        if state == "PENDING" and info.get("Reason") == "BeginTime":
            slurm.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
        time.sleep(0.1)
    return state


def test_a_job_at_its_time_limit_is_requeued_and_resumes_to_the_uninterrupted_model(
    slurm_clean: Slurm, tmp_path: Path
) -> None:
    path = write_spec(tmp_path, {"slurm": body(epochs=EPOCHS), "ref": body(epochs=EPOCHS)}, batch_size=2)
    run_apply(path, target="dataset.*")
    run_apply(path, target="model.*.split")
    maps, log = MapsLayout(tmp_path / "maps/slurm"), tmp_path / "job.log"
    job = slurm_clean.sbatch(job_script(tmp_path, path, maps.resume_state(0)), f"--output={log}")
    run_apply(path, target="model.ref.train*")  # meanwhile, the uninterrupted run
    assert run_requeued_at_once(slurm_clean, job) == "COMPLETED", slurm_clean.log(log)[-3000:]
    info, text = slurm_clean.job(job), slurm_clean.log(log)
    assert info["TimeLimit"] == "00:02:00" and int(info["Restarts"]) >= 1, info
    # every start but the last was stopped by SLURM's warning and requeued itself (nothing else signals
    # the job here), and at least one of them had checkpointed mid-training: a later start resumed
    runs = text.split("--- start ")[1:]
    assert len(runs) == int(info["Restarts"]) + 1, text[-3000:]
    assert all(f"requeue: scontrol requeue {job}" in run for run in runs[:-1]), text[-3000:]
    assert "warning" not in text and "requeue:" not in runs[-1], text[-3000:]
    assert any("split-0: resuming after epoch" in run for run in runs[1:]), text[-3000:]
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
