"""A VAE through plan/apply (VanillaDenseVAE on 2D slices of the tiny synthetic images): it trains
with its own loss, the validation `loss` is the VAE loss of each slice (ClinicaDL's, not the MSE of
the other autoencoders), predict writes its reconstructions; the latent's random draws leave the
model the same whatever compute.workers and after a resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn.registry import build_architecture
from neuroexec.progress import Reporter
from neuroexec.training.run import split_datasets
from tests.training.test_workers_determinism import EPOCHS, assert_same_training, interrupted
from tests.training.training_specs import run_apply, train_task

HEADER = """
version = 1
[compute]
device = "cpu"
batch_size = 4
seed = 0
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = { subjects = 6, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }
[groups.recon]
dataset = "other"
models = ["w0"]
"""
MODEL = """
[models.{name}]
maps = "maps/{name}"
dataset = "demo"
task = "reconstruction"
architecture = "VanillaDenseVAE"
architecture_options = {{ latent_space_size = 4, feature_size = 16, kl_weight = 0.5 }}
mode = "slice"
slice = {{ direction = 0, mode = "single", discarded = [8, 8] }}
compute = {{ workers = {workers} }}
split = {{ n_splits = 2, splits = [0] }}
train = {{ epochs = {epochs}, learning_rate = 1e-3, selection_metrics = ["loss"] }}
"""
OPTIONS = {"latent_space_size": 4, "feature_size": 16, "kl_weight": 0.5}


def write(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(HEADER + "".join(MODEL.format(name=f"w{w}", workers=w, epochs=EPOCHS) for w in (0, 2)))
    return path


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vae")
    run_apply(write(root), target="group.recon.*")  # trains w0 and predicts the group with it
    return root


def _hand_validation_loss(root: Path) -> float:
    """The mean over the validation slices of each slice's VAE loss (squared error summed + 0.5 KL,
    from the latent mean), recomputed from the best model's weights."""
    maps = MapsLayout(root / "maps/w0")
    net = build_architecture("VanillaDenseVAE", "reconstruction", (1, 26, 22), None, 0.5, OPTIONS)
    net.load_state_dict(load_checkpoint(maps.best_model(0, "loss"))["model"])
    net.eval()
    _train, valid = split_datasets(
        train_task(root / "spec.toml", "w0"), None, RunContext(reporter=Reporter(quiet=True))
    )
    losses = []
    with torch.no_grad():
        for i in range(len(valid)):
            x = valid[i]["image"][None]
            mu, logvar = net.encode(x)
            y = net.decode(mu)
            kl = 0.5 * (-1 - logvar + mu**2 + logvar.exp()).sum()
            losses.append(float((y - x).pow(2).sum() + 0.5 * kl))
    return float(np.mean(losses))


def test_the_validation_loss_of_a_vae_is_its_own_loss(applied):
    maps = MapsLayout(applied / "maps/w0")
    parameters = json.loads(maps.maps_json.read_text())
    assert parameters["architecture"] == "VanillaDenseVAE" and parameters["latent_space_size"] == 4
    assert parameters["loss"] == "VAEGaussianLoss"  # what it trained with (ClinicaDL's MSELoss cannot)
    metrics = pd.read_csv(maps.metrics_tsv(0, "loss", "validation", "slice"), sep="\t")
    expected = _hand_validation_loss(applied)
    assert expected > 1.0  # a sum over the 572 pixels of each slice: no mean squared error
    np.testing.assert_allclose(metrics["loss"].iloc[0], expected, rtol=1e-5)
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    best = log["loss_valid"].min()
    np.testing.assert_allclose(best, expected, rtol=1e-5)
    assert (log["loss_train"] > 1.0).all()  # the VAE loss of the training slices too, not their MSE


def test_predict_writes_the_reconstructions_of_a_vae(applied):
    maps = MapsLayout(applied / "maps/w0")
    frame = pd.read_csv(maps.prediction_tsv(0, "loss", "recon", "slice"), sep="\t")
    assert list(frame.columns[3:]) == ["MAE", "RMSE", "PSNR", "SSIM"]
    assert len(frame) == 4 * 5 and np.isfinite(frame[["MAE", "RMSE"]].to_numpy()).all()  # 5 slices kept
    loss = pd.read_csv(maps.metrics_tsv(0, "loss", "recon", "slice"), sep="\t")["loss"].iloc[0]
    assert loss > 1.0


def test_workers_and_a_resume_leave_the_vae_the_same(tmp_path):
    path = write(tmp_path)
    interrupted(path, "model.w0.train*", EPOCHS - 1)  # stopped after its last epoch: tmp/ holds it
    assert interrupted(path, "model.w2.train*", 0) == [False]  # 2 workers, stopped after epoch 1
    assert interrupted(path, "model.w2.train*", EPOCHS - 1) == [True]  # resumed
    assert_same_training(tmp_path, "w0", "w2")
