"""predict on tiny data: tables and columns against the model's own outputs, unlabeled groups,
multi-cohort groups, regression labels, reconstruction metrics and patch soft voting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from inference_bench import image_tensor, make_bench

from neuroexec.errors import InputError
from neuroexec.inference.predict import predict_group


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})


def images_of(cohorts, frame) -> torch.Tensor:
    by_name = dict(cohorts)
    return torch.stack([image_tensor(by_name[c], p, s)
                        for p, s, c in zip(frame.participant_id, frame.session_id, frame.cohort)])  # fmt: skip


def test_classification_tables_match_the_model(bench, cohort_a):
    result = predict_group(bench.task(), bench.ctx)
    maps = bench.maps
    pred = read(maps.prediction_tsv(0, "loss", "test", "image"))
    assert list(pred.columns) == ["participant_id", "session_id", "image_id", "true_label", "predicted_label",
                                  "proba0", "proba1"]  # fmt: skip
    order = pred.set_index(["participant_id", "session_id"])
    frame = bench.frame.set_index(["participant_id", "session_id"]).loc[order.index].reset_index()
    with torch.no_grad():
        logits = bench.model(images_of([("A", cohort_a)], frame)).double()
    probas = torch.softmax(logits, 1).numpy()
    np.testing.assert_allclose(pred[["proba0", "proba1"]].to_numpy(), probas, rtol=1e-5)
    np.testing.assert_array_equal(pred.predicted_label, probas.argmax(1))
    np.testing.assert_array_equal(pred.true_label, frame.diagnosis.map({"AD": 0, "CN": 1}))
    metrics = read(maps.metrics_tsv(0, "loss", "test", "image")).set_index("Metrics")
    accuracy = float((probas.argmax(1) == frame.diagnosis.map({"AD": 0, "CN": 1}).to_numpy()).mean())
    assert float(metrics.loc["Values", "accuracy"]) == pytest.approx(accuracy)
    expected_loss = torch.nn.functional.cross_entropy(
        logits, torch.tensor(frame.diagnosis.map({"AD": 0, "CN": 1}).to_numpy())
    ).item()
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    log = maps.description_log(0, "loss", "test").read_text()
    assert "split-0/best-loss/model.pth.tar" in log and "8 image(s)" in log and "diagnosis" in log


def test_unlabeled_group_has_no_metrics_and_no_true_label(bench):
    path = bench.maps.group_data_tsv("test")
    read(path).drop(columns=["diagnosis"]).to_csv(path, sep="\t", index=False)
    result = predict_group(bench.task(use_labels=False), bench.ctx)
    pred = read(bench.maps.prediction_tsv(0, "loss", "test", "image"))
    assert "true_label" not in pred.columns and len(pred) == len(bench.frame)
    assert not bench.maps.metrics_tsv(0, "loss", "test", "image").exists()
    assert result["loss"] is None
    assert "not used" in bench.maps.description_log(0, "loss", "test").read_text()


def test_labeled_group_without_the_label_column_is_refused(bench):
    path = bench.maps.group_data_tsv("test")
    read(path).drop(columns=["diagnosis"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError, match="diagnosis"):
        predict_group(bench.task(use_labels=True), bench.ctx)


def test_multi_cohort_group_predicts_every_session(tmp_path, cohort_a, cohort_b):
    cohorts = [("A", cohort_a), ("B", cohort_b)]
    bench = make_bench(tmp_path, cohorts)
    predict_group(bench.task(batch_size=5), bench.ctx)
    pred = read(bench.maps.prediction_tsv(0, "loss", "test", "image"))
    assert len(pred) == 12 and set(pred.participant_id) == set(bench.frame.participant_id)
    frame = bench.frame.set_index(["participant_id", "session_id"]).loc[
        pred.set_index(["participant_id", "session_id"]).index].reset_index()  # fmt: skip
    with torch.no_grad():
        probas = torch.softmax(bench.model(images_of(cohorts, frame)).double(), 1).numpy()
    np.testing.assert_allclose(pred[["proba0", "proba1"]].to_numpy(), probas, rtol=1e-5)


def test_regression_uses_the_models_label(tmp_path, cohort_a):
    bench = make_bench(tmp_path, [("A", cohort_a)], task="regression")
    predict_group(bench.task(), bench.ctx)
    pred = read(bench.maps.prediction_tsv(0, "loss", "test", "image"))
    assert list(pred.columns) == ["participant_id", "session_id", "image_id", "true_label", "predicted_label"]
    ages = bench.frame.set_index("participant_id").age
    np.testing.assert_allclose(pred.true_label, ages.loc[pred.participant_id].to_numpy())
    assert bench.maps.metrics_tsv(0, "loss", "test", "image").is_file()


def test_reconstruction_reports_per_image_errors(tmp_path, cohort_a):
    bench = make_bench(tmp_path, [("A", cohort_a)], task="reconstruction")
    predict_group(bench.task(use_labels=False), bench.ctx)
    pred = read(bench.maps.prediction_tsv(0, "loss", "test", "image"))
    assert list(pred.columns) == ["participant_id", "session_id", "image_id", "MAE", "RMSE", "PSNR", "SSIM"]
    for row in pred.itertuples():
        x = image_tensor(cohort_a, row.participant_id, row.session_id).double()
        with torch.no_grad():
            y = bench.model(x.float().unsqueeze(0))[0].double()
        assert row.MAE == pytest.approx((y - x).abs().mean().item(), rel=1e-4)
        assert row.RMSE == pytest.approx((y - x).pow(2).mean().sqrt().item(), rel=1e-4)
    assert bench.maps.metrics_tsv(0, "loss", "test", "image").is_file()


def test_patch_classifier_soft_votes_with_validation_weights(tmp_path, cohort_a):
    bench = make_bench(tmp_path, [("A", cohort_a)], mode="patch", patch=6)
    task = bench.task()
    with pytest.raises(InputError, match="validation"):
        predict_group(task, bench.ctx)
    # validation predictions: patch k right on k of 8 images -> weights proportional to k
    rows = [{"participant_id": f"sub-{i}", "session_id": "ses-M000", "patch_id": k, "true_label": 0,
             "predicted_label": 0 if i < k else 1, "proba0": 0.5, "proba1": 0.5}
            for k in range(8) for i in range(8)]  # fmt: skip
    validation = bench.maps.prediction_tsv(0, "loss", "validation", "patch")
    validation.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(validation, sep="\t", index=False)
    predict_group(task, bench.ctx)
    patches = read(bench.maps.prediction_tsv(0, "loss", "test", "patch"))
    images = read(bench.maps.prediction_tsv(0, "loss", "test", "image"))
    assert len(patches) == 8 * len(bench.frame) and len(images) == len(bench.frame)
    weights = np.arange(8) / np.arange(8).sum()
    for row in images.itertuples():
        own = patches[patches.participant_id == row.participant_id].sort_values("patch_id")
        assert row.proba1 == pytest.approx(float((own.proba1.to_numpy() * weights).sum()), rel=1e-6)
    assert bench.maps.metrics_tsv(0, "loss", "test", "patch").is_file()
    assert bench.maps.metrics_tsv(0, "loss", "test", "image").is_file()
