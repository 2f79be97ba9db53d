"""train.loss: every loss ClinicaDL allows per task, computed as its `nn.<Loss>()` criterion computes it
(on (logits, labels), (values [B, 1], targets [B, 1]) or (reconstruction, input)), in the training step
and in the validation loss that selection and early stopping read; a loss of another task is refused
at validate time; the default stays out of the fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec import losses
from neuroexec.context import RunContext
from neuroexec.errors import NeuroexecError, SpecError
from neuroexec.maps.layout import MapsLayout
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute, Model, Train
from neuroexec.training.loop import Trainer
from neuroexec.training.task import training_config
from tests.training.training_specs import run_apply, write_spec

ELEMENTWISE = ["L1Loss", "MSELoss", "KLDivLoss", "BCEWithLogitsLoss", "HuberLoss", "SmoothL1Loss"]


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(5, 3, generator=g) * 2
    classes = torch.tensor([0, 2, 1, 1, 0])
    values = torch.randn(5, 1, generator=g) * 3
    targets = torch.rand(5, generator=g)  # in [0, 1]: BCE and KL targets
    images = torch.rand(5, 1, 3, 4, 2, generator=g)
    recon = torch.randn(5, 1, 3, 4, 2, generator=g)
    return logits, classes, values, targets, images, recon


@pytest.mark.parametrize("name", losses.CLASSIFICATION_LOSSES)
def test_classification_losses_are_torchs_criteria(name):
    logits, classes, *_ = batch()
    expected = getattr(torch.nn, name)()(logits, classes)
    items = losses.item_losses("classification", name, logits, classes, logits)
    assert items.shape == (5,)
    torch.testing.assert_close(items.mean(), expected)
    torch.testing.assert_close(losses.batch_loss("classification", name, logits, classes, logits), expected)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_regression_losses_compare_the_value_with_the_target_as_clinicadl(name):
    _, _, values, targets, images, _ = batch()
    # ClinicaDL's regression labels are float32 arrays of one value: targets of shape [B, 1]
    expected = getattr(torch.nn, name)()(values, targets.reshape(-1, 1))
    items = losses.item_losses("regression", name, values, targets, images)
    torch.testing.assert_close(items.mean(), expected)
    torch.testing.assert_close(losses.batch_loss("regression", name, values, targets, images), expected)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_reconstruction_losses_compare_the_output_with_the_input(name):
    *_, images, recon = batch()
    expected = getattr(torch.nn, name)()(recon, images)
    labels = torch.full((5,), -1)
    items = losses.item_losses("reconstruction", name, recon, labels, images)
    torch.testing.assert_close(items.mean(), expected)
    torch.testing.assert_close(losses.batch_loss("reconstruction", name, recon, labels, images), expected)


def test_a_vae_loss_without_a_vae_is_an_error_not_a_silent_mse():
    *_, images, recon = batch()
    with pytest.raises(NeuroexecError, match="VAE architecture"):
        losses.batch_loss("reconstruction", "VAEGaussianLoss", recon, torch.zeros(5), images)


class Classes(torch.utils.data.Dataset):
    def __init__(self, n: int = 6):
        g = torch.Generator().manual_seed(1)
        self.images = torch.randn(n, 1, 3, 3, 3, generator=g)
        self.labels = [i % 2 for i in range(n)]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": torch.tensor(self.labels[i]),
                "participant_id": f"sub-{i:02d}", "session_id": "ses-M000", "mode_id": 0}  # fmt: skip


def test_the_validation_loss_is_the_chosen_criterion():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(27, 2))
    compute = Compute(device="cpu", workers=0, batch_size=4, seed=0)
    ctx = RunContext(reporter=Reporter(quiet=True))
    data = Classes()
    frames = {}
    for name in (None, "MultiMarginLoss"):
        t = Trainer(net, torch.optim.SGD(net.parameters()), "classification", "image", compute, 1, ctx, name)
        frames[name] = t.evaluate(data)
    logits = net(data.images).detach()
    labels = torch.tensor(data.labels)
    for name, frame in frames.items():
        criterion = getattr(torch.nn, name or "CrossEntropyLoss")(reduction="none")
        np.testing.assert_allclose(frame["_loss"], criterion(logits, labels).numpy(), rtol=1e-6)


def test_a_regression_trained_with_l1_logs_and_selects_on_the_mean_absolute_error(tmp_path):
    body = 'task = "regression"\nlabel = "age"\ntrain = { epochs = 1, learning_rate = 1e-2, loss = "L1Loss" }'
    path = write_spec(tmp_path, {"r": body})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/r")
    assert json.loads(maps.maps_json.read_text())["loss"] == "L1Loss"
    predictions = pd.read_csv(maps.prediction_tsv(0, "loss", "validation", "image"), sep="\t")
    mae = float((predictions.true_label - predictions.predicted_label).abs().mean())
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    assert log["loss_valid"].iloc[0] == pytest.approx(mae, rel=1e-5)
    metrics = pd.read_csv(maps.metrics_tsv(0, "loss", "validation", "image"), sep="\t")
    assert metrics["loss"].iloc[0] == pytest.approx(mae, rel=1e-5)
    # predict computes the loss with the one maps.json names, as ClinicaDL's predict
    other = '[datasets.other]\ncaps = "data/other"\ngenerate = { subjects = 4, resolution_mm = 8, seed = 2, subject_offset = 100 }\n'
    path.write_text(path.read_text() + other + '[groups.test]\ndataset = "other"\nmodels = ["r"]\n')
    run_apply(path)
    test = pd.read_csv(maps.prediction_tsv(0, "loss", "test", "image"), sep="\t")
    test_metrics = pd.read_csv(maps.metrics_tsv(0, "loss", "test", "image"), sep="\t")
    test_mae = float((test.true_label - test.predicted_label).abs().mean())
    assert test_metrics["loss"].iloc[0] == pytest.approx(test_mae, rel=1e-5)


def problems(tmp_path, body: str) -> list[str]:
    path = write_spec(tmp_path, {"m": body})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


def test_a_loss_of_another_task_is_refused_naming_the_key(tmp_path):
    found = problems(tmp_path, 'task = "classification"\ntrain = { loss = "MSELoss" }')
    assert found == [
        "models.m.train.loss: 'MSELoss' is not a classification loss; expected one of CrossEntropyLoss, "
        "MultiMarginLoss"
    ]
    found = problems(tmp_path, 'task = "regression"\nlabel = "age"\ntrain = { loss = "VAEGaussianLoss" }')
    assert [p.split(":")[0] for p in found] == ["models.m.train.loss"]


def test_the_default_loss_stays_out_of_the_fingerprint():
    model = Model("m", Path("maps"), "d")
    assert "loss" not in training_config(model)["train"]
    chosen = Model("m", model.maps, "d", train=Train(loss="MultiMarginLoss"))
    assert training_config(chosen)["train"]["loss"] == "MultiMarginLoss"
