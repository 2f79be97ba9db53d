from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.atomic import write_tsv
from neuroexec.errors import NeuroexecError
from neuroexec.maps.tables import (
    classification_frame,
    metrics_for_predictions,
    prediction_columns,
    reconstruction_frame,
    regression_frame,
    soft_vote,
    soft_vote_weights,
)
from neuroexec.metrics import classification_metrics


def test_classification_frame_has_clinicadl_columns_and_softmax_probabilities():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 0.5]])
    frame = classification_frame(
        ["sub-01", "sub-02"], ["ses-M000", "ses-M006"], [0, 0], [1, 2], logits, "image"
    )
    assert list(frame.columns) == prediction_columns("classification", "image", 3)
    assert list(frame.columns[:5]) == [
        "participant_id",
        "session_id",
        "image_id",
        "true_label",
        "predicted_label",
    ]
    assert frame.predicted_label.tolist() == [1, 0]
    for row, values in enumerate(logits.tolist()):
        denominator = sum(math.exp(v) for v in values)
        for k, v in enumerate(values):
            assert frame[f"proba{k}"][row] == pytest.approx(math.exp(v) / denominator)


def test_regression_and_reconstruction_frames():
    reg = regression_frame(["sub-01"], ["ses-M000"], [3], [70.0], torch.tensor([[71.5]]), "patch")
    assert list(reg.columns) == ["participant_id", "session_id", "patch_id", "true_label", "predicted_label"]
    assert reg.iloc[0].tolist() == ["sub-01", "ses-M000", 3, 70.0, 71.5]
    rec = reconstruction_frame(["sub-01"], ["ses-M000"], [0], [0.1], [0.2], [30.0], [0.9], "image")
    assert list(rec.columns) == ["participant_id", "session_id", "image_id", "MAE", "RMSE", "PSNR", "SSIM"]


def _patch_frame() -> pd.DataFrame:
    rows = []
    probas = {  # (participant, patch) -> proba of class 1
        ("sub-01", 0): 0.9, ("sub-01", 1): 0.4, ("sub-01", 2): 0.2,
        ("sub-02", 0): 0.3, ("sub-02", 1): 0.45, ("sub-02", 2): 0.9,
    }  # fmt: skip
    labels = {"sub-01": 1, "sub-02": 0}
    for (participant, patch), p1 in probas.items():
        rows.append([participant, "ses-M000", patch, labels[participant], int(p1 > 0.5), 1 - p1, p1])
    return pd.DataFrame(rows, columns=prediction_columns("classification", "patch", 2))


def test_soft_vote_is_the_weighted_average_of_probabilities():
    weights = {0: 0.5, 1: 0.3, 2: 0.2}
    image = soft_vote(_patch_frame(), weights, "patch")
    assert list(image.columns) == prediction_columns("classification", "patch", 2)
    # Hand computation: sub-01 -> 0.5*0.9 + 0.3*0.4 + 0.2*0.2 = 0.61; sub-02 -> 0.15 + 0.135 + 0.18 = 0.465
    assert image.participant_id.tolist() == ["sub-01", "sub-02"]
    assert image.proba1.tolist() == pytest.approx([0.61, 0.465])
    assert image.proba0.tolist() == pytest.approx([0.39, 0.535])
    assert image.predicted_label.tolist() == [1, 0]
    assert image.patch_id.tolist() == [0, 0] and image.true_label.tolist() == [1, 0]


def test_soft_vote_regression_uses_the_weighted_mean():
    frame = pd.DataFrame(
        [["sub-01", "ses-M000", 0, 70.0, 68.0], ["sub-01", "ses-M000", 1, 70.0, 74.0]],
        columns=prediction_columns("regression", "roi", 0),
    )
    image = soft_vote(frame, {0: 0.25, 1: 0.75}, "roi")
    assert image.predicted_label.tolist() == pytest.approx([0.25 * 68 + 0.75 * 74])
    assert list(image.columns) == prediction_columns("regression", "roi", 0)


def test_soft_vote_without_a_weight_for_a_patch_is_refused():
    with pytest.raises(NeuroexecError, match=r"patch_id \[2\]"):
        soft_vote(_patch_frame(), {0: 0.5, 1: 0.5}, "patch")


def test_soft_vote_weights_are_thresholded_normalised_validation_accuracies():
    # patch 0: 3/4 correct, patch 1: 2/4, patch 2: 1/4
    correct = {0: [1, 1, 1, 0], 1: [1, 1, 0, 0], 2: [1, 0, 0, 0]}
    rows = [
        [f"sub-{i}", "ses-M000", patch, 1, 1 if ok else 0]
        for patch, oks in correct.items()
        for i, ok in enumerate(oks)
    ]
    validation = pd.DataFrame(
        rows, columns=["participant_id", "session_id", "patch_id", "true_label", "predicted_label"]
    )
    plain = soft_vote_weights(validation, "patch")
    assert plain == pytest.approx({0: 0.75 / 1.5, 1: 0.5 / 1.5, 2: 0.25 / 1.5})
    thresholded = soft_vote_weights(validation, "patch", selection_threshold=0.4)
    assert thresholded == pytest.approx({0: 0.6, 1: 0.4, 2: 0.0})
    with pytest.raises(NeuroexecError, match="lower the threshold"):
        soft_vote_weights(validation, "patch", selection_threshold=0.9)


def test_metrics_table_values_and_file_layout(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    y, p = rng.integers(0, 2, n), rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "participant_id": [f"sub-{i}" for i in range(n)],
            "session_id": "ses-M000",
            "image_id": 0,
            "true_label": y,
            "predicted_label": p,
            "proba0": 0.5,
            "proba1": 0.5,
        }
    )
    table = metrics_for_predictions(frame, "classification", n_classes=2, loss=0.42, n_resamples=200)
    expected = classification_metrics(y, p, 2)
    assert list(table.columns) == ["Metrics", *expected, "loss", "AUC"]
    values = table.iloc[0]
    assert values["Metrics"] == "Values" and values["loss"] == 0.42
    assert values["AUC"] == 0.5  # every probability 0.5: a tie for each pair
    for name, value in expected.items():
        assert values[name] == pytest.approx(value)
    path = tmp_path / "test_image_level_metrics.tsv"
    write_tsv(path, table)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("Metrics\tBA\taccuracy\t")
    assert [line.split("\t")[0] for line in lines[1:]] == ["Values", "Lower bound CI", "Upper bound CI", "SE"]


def test_reconstruction_metrics_table():
    frame = reconstruction_frame(
        ["a", "b", "c"],
        ["s"] * 3,
        [0] * 3,
        [1.0, 2.0, 3.0],
        [2.0, 2.0, 2.0],
        [30.0, 31.0, 32.0],
        [0.5, 0.6, 0.7],
        "image",
    )
    table = metrics_for_predictions(frame, "reconstruction", n_resamples=100)
    assert list(table.columns) == ["Metrics", "MAE", "RMSE", "PSNR", "SSIM"]
    assert table.iloc[0][["MAE", "PSNR", "SSIM"]].tolist() == pytest.approx([2.0, 31.0, 0.6])
    assert table["RMSE"].iloc[1:3].tolist() == pytest.approx([2.0, 2.0])  # constant column: zero-width CI


def test_unknown_task_is_refused():
    with pytest.raises(NeuroexecError, match="segmentation"):
        prediction_columns("segmentation", "image")


def test_non_finite_logits_give_nan_probabilities_without_a_numpy_warning():
    import warnings

    import numpy as np

    from neuroexec.maps.tables import classification_frame

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would print a source line before the error
        frame = classification_frame(["s"], ["m"], [0], [1], np.array([[np.inf, 1.0]]), "image")
    assert np.isnan(frame["proba0"]).all()
