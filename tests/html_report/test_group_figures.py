"""The group figures' numbers: the ROC curves' AUC of a binary classifier and the one-vs-rest macro AUC
of three classes, as scikit-learn computes them from the probabilities; a class no session has is
left out rather than drawn as an undefined curve; multi-network logs are one curve per network."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from neuroexec import metrics
from neuroexec.html_report.curves import training_logs
from neuroexec.html_report.group_figures import classification_figure, macro_auc, roc_curves
from neuroexec.maps.layout import MapsLayout


def predictions(n_classes: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = np.arange(24) % n_classes
    logits = rng.normal(size=(24, n_classes)) + 1.5 * np.eye(n_classes)[truth]
    probas = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"true_label": truth, "predicted_label": probas.argmax(axis=1)})
    for k in range(n_classes):
        frame[f"proba{k}"] = probas[:, k]
    return frame


def test_binary_auc_is_the_positive_class_probability_auc_as_in_the_metrics_tables():
    frame = predictions(2)
    ((cls, _, _, area),) = roc_curves(frame)
    assert cls == 0 and np.isclose(area, roc_auc_score(frame["true_label"] == 0, frame["proba0"]))
    assert np.isclose(area, metrics.roc_auc(frame["true_label"], frame[["proba0", "proba1"]]))


def test_the_roc_legend_names_the_class_whose_auc_the_metrics_table_gives(monkeypatch):
    frame = predictions(2)
    labels = []
    monkeypatch.setattr("matplotlib.axes.Axes.plot", lambda self, *a, **kw: labels.append(kw.get("label")))
    classification_figure(frame, ["AD", "CN"], "t")
    area = metrics.roc_auc(frame["true_label"], frame[["proba0", "proba1"]])
    assert [label for label in labels if label] == [f"AD: AUC {area:.3f}"]


def test_three_classes_give_one_vs_rest_curves_and_their_macro_mean():
    frame = predictions(3)
    curves = roc_curves(frame)
    assert [c[0] for c in curves] == [0, 1, 2]
    expected = roc_auc_score(frame["true_label"], frame[["proba0", "proba1", "proba2"]], multi_class="ovr")
    assert np.isclose(macro_auc(curves), expected)
    assert "confusion matrix and ROC curve" in classification_figure(frame, ["a", "b", "c"], "t")


def test_a_class_absent_from_the_group_has_no_curve():
    frame = predictions(3)
    frame = frame[frame["true_label"] != 2]
    assert [c[0] for c in roc_curves(frame)] == [0, 1]
    assert np.isnan(macro_auc([]))


def test_a_multi_network_training_has_one_log_per_network(tmp_path):
    maps = MapsLayout(tmp_path / "maps")
    for k in (0, 1):
        maps.training_logs(0, k).mkdir(parents=True)
        maps.training_tsv(0, k).write_text("epoch\tloss_valid\n0\t0.5\n")
    assert [label for label, _ in training_logs(maps, 0)] == ["split-0 network-0", "split-0 network-1"]
