"""DistributedDataParallel on 2 CPU processes (gloo, launched by torchrun) vs one process.

Both runs see the same global batch: batch size 1 with gradient accumulation, one optimizer step per
epoch over all 6 training images (1 process: 6 accumulated batches; 2 processes: 3 each, averaged
by DDP). Per-image batches make batch-norm statistics identical in both runs, SGD keeps the update
proportional to the gradient, and no dropout: the trained parameters must agree to float rounding.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import build_network
from neuroexec.training.resume import seed_everything
from tests.training.training_specs import needs_torchrun


@needs_torchrun
@pytest.mark.same_worker("dev-shm")  # /dev/shm after the launch is compared with before it
def test_two_cpu_processes_match_one_process(ddp_project):
    # tests/training/conftest.py: models ddp_one (6 accumulated batches of 1) and ddp_two (3 a process,
    # compute.cache = true: the 2 processes share one in-memory copy of the images through /dev/shm)
    output, tmp_path = ddp_project.output, ddp_project.root
    if Path("/dev/shm").is_dir():
        assert "shared by the 2 processes on this machine" in output
        assert (
            set(Path("/dev/shm").glob("neuroexec-cache-*")) == ddp_project.shm_before
        )  # unlinked once mapped

    one, two = MapsLayout(tmp_path / "maps/ddp_one"), MapsLayout(tmp_path / "maps/ddp_two")
    log_one = pd.read_csv(one.training_tsv(0), sep="\t")
    log_two = pd.read_csv(two.training_tsv(0), sep="\t")
    assert len(log_two) == 1  # one row per epoch: written once, by rank 0
    # The running train loss (gathered from both ranks) is computed with the initial weights in both runs.
    assert log_two["loss_train"][0] == pytest.approx(log_one["loss_train"][0], rel=1e-5)

    # One epoch: best-loss is the weights after the single optimizer step in both runs.
    state_one, epoch_one, _ = load_model_state(one.best_model(0, "loss"))
    state_two, epoch_two, _ = load_model_state(two.best_model(0, "loss"))
    assert epoch_one == epoch_two == 0
    assert not any(key.startswith("module.") for key in state_two)
    seed_everything(0)  # training seeds then builds: these are the initial weights
    initial = build_network("TinyCNN", (1, 21, 26, 22), 2, dropout=0.0)
    moved = 0
    for name, start in initial.named_parameters():
        step = float((state_one[name] - start.detach()).abs().max())
        moved += step > 1e-4  # conv biases before batch norm get no gradient
        assert torch.allclose(state_two[name], state_one[name], rtol=0, atol=1e-3 * step + 1e-7), name
    assert moved >= 10
    assert not two.tmp_dir(0).exists()
