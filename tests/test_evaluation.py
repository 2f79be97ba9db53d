"""Shared evaluation: prediction frames against direct forward passes, result files, soft voting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.context import StepSettings
from neuroexec.evaluation import ResultSet, patch_weights_from_validation, predict_frames, write_results
from neuroexec.maps.layout import MapsLayout


class Items(torch.utils.data.Dataset):
    """In-memory items shaped like neuroexec's datasets (image, label, ids, mode_id)."""

    def __init__(self, images, labels, mode_ids=None):
        self.images, self.labels = images, labels
        self.mode_ids = mode_ids if mode_ids is not None else [0] * len(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            "image": self.images[i],
            "label": self.labels[i],
            "participant_id": f"sub-{i // 2 if len(set(self.mode_ids)) > 1 else i:02d}",
            "session_id": "ses-M000",
            "mode_id": self.mode_ids[i],
        }


class Linear(torch.nn.Module):
    def __init__(self, n_out):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, n_out)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_classification_frame_matches_a_float64_forward_pass():
    torch.manual_seed(1)
    images = torch.randn(5, 1, 2, 2, 2)
    labels = torch.tensor([0, 1, 2, 1, 0])
    net = Linear(3)
    data = Items(list(images), list(labels))
    frame, loss = predict_frames(
        net,
        data,
        "classification",
        StepSettings(torch.device("cpu"), "auto", False, 0, 2),
        {"A": 0, "B": 1, "C": 2},
    )
    logits = net.double()(images.double()).detach().numpy()
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(frame[["proba0", "proba1", "proba2"]].to_numpy(), probabilities, atol=1e-6)
    assert list(frame["predicted_label"]) == list(logits.argmax(axis=1))
    expected_loss = -np.log(probabilities[np.arange(5), labels.numpy()]).mean()
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    unlabelled, none = predict_frames(
        Linear(3),
        data,
        "classification",
        StepSettings(torch.device("cpu"), "auto", False, 0, 2),
        {"A": 0, "B": 1, "C": 2},
        use_labels=False,
    )
    assert none is None and "true_label" not in unlabelled.columns and "predicted_label" in unlabelled.columns


def test_reconstruction_frame_matches_direct_errors():
    torch.manual_seed(2)
    images = torch.rand(3, 1, 4, 4, 4)

    class Half(torch.nn.Module):
        def forward(self, x):
            return x * 0.5

    data = Items(list(images), [torch.tensor(-1)] * 3)
    frame, loss = predict_frames(
        Half(), data, "reconstruction", StepSettings(torch.device("cpu"), "auto", False, 0, 2), None
    )
    error = (images * 0.5 - images).double().flatten(1)
    assert np.allclose(frame["MAE"], error.abs().mean(1).numpy(), atol=1e-6)
    assert np.allclose(frame["RMSE"], error.pow(2).mean(1).sqrt().numpy(), atol=1e-6)
    assert loss == pytest.approx(float(error.pow(2).mean()), rel=1e-5)
    assert frame["SSIM"].between(-1, 1).all()


def test_patch_results_soft_vote_with_validation_weights(tmp_path):
    maps = MapsLayout(tmp_path)
    # 2 images x 2 patches; patch 0 is right on both validation images, patch 1 on one.
    validation = pd.DataFrame({
        "participant_id": ["sub-00", "sub-00", "sub-01", "sub-01"],
        "session_id": ["ses-M000"] * 4,
        "patch_id": [0, 1, 0, 1],
        "true_label": [0, 0, 1, 1],
        "predicted_label": [0, 1, 1, 1],
        "proba0": [0.9, 0.4, 0.2, 0.3],
        "proba1": [0.1, 0.6, 0.8, 0.7],
    })  # fmt: skip
    write_results(ResultSet(maps, 0, "loss", "validation", "classification", "patch", 2), validation, 0.5)
    weights = patch_weights_from_validation(maps, 0, "loss")
    assert weights == pytest.approx({0: 1 / 1.5, 1: 0.5 / 1.5})
    image = pd.read_csv(maps.prediction_tsv(0, "loss", "validation", "image"), sep="\t")
    assert image["proba0"][0] == pytest.approx((0.9 * 1.0 + 0.4 * 0.5) / 1.5)
    assert list(image["predicted_label"]) == [0, 1]
    # The train group is weighted with the validation weights even without labels.
    train = validation.drop(columns="true_label").assign(
        proba0=[0.3, 0.9, 0.5, 0.5], proba1=[0.7, 0.1, 0.5, 0.5]
    )
    write_results(
        ResultSet(maps, 0, "loss", "train", "classification", "patch", 2, use_labels=False), train, None
    )
    voted = pd.read_csv(maps.prediction_tsv(0, "loss", "train", "image"), sep="\t")
    assert voted["proba0"][0] == pytest.approx((0.3 * 1.0 + 0.9 * 0.5) / 1.5)
    assert "true_label" not in voted.columns
    assert not maps.metrics_tsv(0, "loss", "train", "patch").exists()
    table = pd.read_csv(maps.metrics_tsv(0, "loss", "validation", "patch"), sep="\t")
    assert table["accuracy"][0] == pytest.approx(0.75) and table["loss"][0] == pytest.approx(0.5)
    assert maps.description_log(0, "loss", "train").is_file()


def test_psnr_and_ssim_take_clinicadls_data_range_of_one_for_images_without_their_maximum():
    # size_reduction's box may leave out an image's maximum: ClinicaDL (skimage's PSNR, its SSIM) still
    # takes the data range of a [0, 1] image as 1, not the box's maximum.
    from neuroexec.evaluation import Collector

    reference = torch.full((1, 1, 12, 12, 12), 0.25)
    reference[0, 0, 4:8, 4:8, 4:8] = 0.5
    outputs = reference + 0.01
    batch = {"participant_id": ["sub-1"], "session_id": ["ses-M000"], "mode_id": [0], "label": torch.zeros(1)}
    collector = Collector("reconstruction", "image", "torch")
    collector.add(batch, outputs, reference)
    frame = collector.frame()
    assert frame["PSNR"].iloc[0] == pytest.approx(10 * np.log10(1.0 / 0.01**2), rel=1e-5)
