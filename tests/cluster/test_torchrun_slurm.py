"""`srun torchrun` under a real SLURM (tests/cluster/conftest.py): the line of cluster/torchrun.command, in a
job script, trains in two CPU processes (gloo) that meet at the rendezvous taken from SLURM's environment,
and ends with the model of the same two-process training launched by torchrun outside SLURM."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from neuroexec.cluster.torchrun import command
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from tests.cluster.slurm import Slurm
from tests.training.training_specs import apply_with_torchrun, needs_torchrun, run_apply, write_spec

BODY = 'task = "classification"\ntrain = { epochs = 2, learning_rate = 1e-3, selection_metrics = ["loss"] }'


def job_script(folder: Path, line: str) -> Path:
    path = folder / "train.sh"
    path.write_text(
        "#!/bin/bash\n#SBATCH --nodes=1\n#SBATCH --cpus-per-task=2\n"
        f"cd {folder}\nexport OMP_NUM_THREADS=1\nexec {line}\n"
    )
    return path


def assert_same_model(a: MapsLayout, b: MapsLayout) -> None:
    state_a, state_b = (load_checkpoint(m.best_model(0, "loss")) for m in (a, b))
    assert state_a["epoch"] == state_b["epoch"] and state_a["model"].keys() == state_b["model"].keys()
    for key, value in state_a["model"].items():
        assert torch.equal(value, state_b["model"][key]), key
    logs = [pd.read_csv(m.training_tsv(0), sep="\t").drop(columns="time") for m in (a, b)]
    pd.testing.assert_frame_equal(*logs)


@needs_torchrun
def test_srun_torchrun_trains_as_torchrun_does_outside_slurm(slurm_clean: Slurm, tmp_path: Path) -> None:
    path = write_spec(tmp_path, {"slurm": BODY, "local": BODY}, subjects=8, batch_size=2)
    run_apply(path, target="dataset.*")  # the shared steps once, before the two trainings
    line = command(["apply", str(path), "--target", "model.slurm.train*"], 2)
    job = slurm_clean.sbatch(job_script(tmp_path, line), f"--output={tmp_path}/job.log")
    apply_with_torchrun(path, "model.local.train*")  # meanwhile, outside SLURM
    state = slurm_clean.wait(job, timeout=240)
    log = slurm_clean.log(tmp_path / "job.log")
    assert state == "COMPLETED", log[-3000:]
    assert "+ model.slurm.train[split-0] (new)" in log and "Applied 2 steps." in log  # split and train
    # two processes (one process, with batches of 2 instead of 2 x 2, would train another model)
    assert_same_model(MapsLayout(tmp_path / "maps/slurm"), MapsLayout(tmp_path / "maps/local"))
