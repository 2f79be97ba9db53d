"""`srun torchrun` under a real SLURM (tests/cluster/conftest.py): the line of cluster/torchrun.command, in a
job script, trains in two CPU processes (gloo) that meet at the rendezvous taken from SLURM's environment;
SLURM's SIGTERM to the job (to srun, which passes it to torchrun, which passes it to both processes)
stops them at the same batch with a checkpoint, rank 0 requeues the job, and the job's next start ends
with the model of the same two-process training launched by torchrun outside SLURM, uninterrupted."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch

from neuroexec.cluster.torchrun import command
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from tests.cluster.slurm import Slurm
from tests.training.training_specs import apply_with_torchrun, needs_torchrun, run_apply, write_spec

BODY = 'task = "classification"\ntrain = { epochs = 4, learning_rate = 1e-3, selection_metrics = ["loss"] }'


def job_script(folder: Path, line: str) -> Path:
    """A job as `apply --slurm` writes one (requeueable, NEUROEXEC_SLURM_REQUEUE=1, `exec`), running `line`."""
    path = folder / "train.sh"
    path.write_text(
        "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --cpus-per-task=2\n#SBATCH --requeue\n#SBATCH --open-mode=append\n"
        f"cd {folder}\nexport OMP_NUM_THREADS=1 NEUROEXEC_SLURM_REQUEUE=1\n"
        'echo "start $SLURM_RESTART_COUNT"\n'
        f"exec {line}\n"
    )
    return path


def assert_same_model(a: MapsLayout, b: MapsLayout) -> None:
    state_a, state_b = (load_checkpoint(m.best_model(0, "loss")) for m in (a, b))
    assert state_a["epoch"] == state_b["epoch"] and state_a["model"].keys() == state_b["model"].keys()
    for key, value in state_a["model"].items():
        assert torch.equal(value, state_b["model"][key]), key
    logs = [pd.read_csv(m.training_tsv(0), sep="\t").drop(columns="time") for m in (a, b)]
    pd.testing.assert_frame_equal(*logs)


def wait_for(ready, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


@needs_torchrun
def test_srun_torchrun_trains_as_torchrun_does_outside_slurm(slurm_clean: Slurm, tmp_path: Path) -> None:
    # 16 subjects: 8 training images, 4 a process, 2 batches a process an epoch
    path = write_spec(tmp_path, {"slurm": BODY, "local": BODY}, subjects=16, batch_size=2)
    run_apply(path, target="dataset.*")  # the shared steps once, before the two trainings
    run_apply(path, target="model.*.split")
    line = command(["apply", str(path), "--target", "model.slurm.train*"], 2)
    maps, log = MapsLayout(tmp_path / "maps/slurm"), tmp_path / "job.log"
    job = slurm_clean.sbatch(job_script(tmp_path, line), f"--output={log}")
    wait_for(maps.resume_state(0).is_file, f"the first epoch\n{slurm_clean.log(log)}")
    slurm_clean.run("scancel", "--signal=TERM", "--batch", job)  # to srun: what --signal=B:TERM sends
    apply_with_torchrun(path, "model.local.train*")  # meanwhile, outside SLURM
    requeued = lambda: slurm_clean.job(job).get("Reason") == "BeginTime" or "start 1" in slurm_clean.log(log)  # noqa: E731
    wait_for(requeued, f"the requeue\n{slurm_clean.log(log)}")
    # SLURM holds a requeued job for two minutes (its BeginTime); the test lets it start at once
    slurm_clean.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
    state = slurm_clean.wait(job, timeout=240)
    text = slurm_clean.log(log)
    assert state == "COMPLETED", text[-3000:]
    assert f"requeue: scontrol requeue {job}" in text and "split-0: resuming" in text.split("start 1")[1]
    # two processes (one process, with batches of 2 instead of 2 x 2, would train another model)
    assert_same_model(maps, MapsLayout(tmp_path / "maps/local"))
