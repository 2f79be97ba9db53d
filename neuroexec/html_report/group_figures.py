"""The figures of a data group's results: the confusion matrix and the ROC curves (with their AUC)
of a classifier, the predicted-vs-true scatter of a regression, and input/output slices of a
reconstruction. Each takes the prediction table (or saved tensors) of one best model."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import auc, confusion_matrix, roc_curve

from neuroexec import metrics
from neuroexec.html_report.elements import image, new_figure


def class_names(label_code: dict[str, int] | None, n_classes: int) -> list[str]:
    """The name of each class index (from maps.json's label_code), or the index itself.

    >>> class_names({"AD": 0, "CN": 1}, 2)
    ['AD', 'CN']
    """
    names = {int(v): str(k) for k, v in (label_code or {}).items()}
    return [names.get(k, str(k)) for k in range(n_classes)]


# The positive class of a binary task: metrics.roc_auc's and metrics_from_confusion's default (ClinicaDL's)
POSITIVE_CLASS = inspect.signature(metrics.roc_auc).parameters["positive_class"].default


def probability_columns(frame: pd.DataFrame) -> list[str]:
    """The `proba<k>` columns, by k."""
    found = [c for c in frame.columns if c.startswith("proba") and c[5:].isdigit()]
    return sorted(found, key=lambda c: int(c[5:]))


def roc_curves(frame: pd.DataFrame) -> list[tuple[int, np.ndarray, np.ndarray, float]]:
    """(class, false positive rates, true positive rates, AUC) from the class probabilities: the
    positive class of a binary classifier (class 0, as the metrics tables' AUC and sensitivity:
    neuroexec/metrics.py), each class against the rest otherwise. A class that no session or every
    session has (the curve is undefined) is left out."""
    probas = probability_columns(frame)
    truth = frame["true_label"].to_numpy(dtype=np.int64)
    classes = [POSITIVE_CLASS] if len(probas) == 2 else list(range(len(probas)))
    found = []
    for k in classes:
        positive = truth == k
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, frame[probas[k]].to_numpy(dtype=np.float64))
        found.append((k, fpr, tpr, float(auc(fpr, tpr))))
    return found


def macro_auc(curves: list[tuple[int, np.ndarray, np.ndarray, float]]) -> float:
    """The AUC of a binary classifier, or the mean of the one-vs-rest AUCs (NaN without any)."""
    return float(np.mean([c[3] for c in curves])) if curves else float("nan")


def classification_figure(frame: pd.DataFrame, names: list[str], title: str) -> str:
    """The confusion matrix (counts; rows the true class) beside the ROC curve(s) with AUC."""
    fig = new_figure(7.0, 3.0)
    left, right = fig.subplots(1, 2)
    k = len(names)
    matrix = confusion_matrix(frame["true_label"], frame["predicted_label"], labels=list(range(k)))
    left.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            left.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
    left.set_xticks(range(k), names)
    left.set_yticks(range(k), names)
    left.set_xlabel("predicted")
    left.set_ylabel("true")
    left.set_title("confusion matrix")
    for cls, fpr, tpr, area in roc_curves(frame):
        right.plot(fpr, tpr, label=f"{names[cls]}: AUC {area:.3f}")
    right.plot([0, 1], [0, 1], ":", color="grey")
    right.set_xlabel("false positive rate")
    right.set_ylabel("true positive rate")
    right.set_title("ROC")
    right.legend(fontsize="x-small", loc="lower right")
    fig.suptitle(title, fontsize="small")
    return image(fig, f"{title}: confusion matrix and ROC curve")


def regression_figure(frames: dict[str, pd.DataFrame], title: str) -> str:
    """Predicted against true values, one colour per split, with the identity line."""
    fig = new_figure(3.6, 3.4)
    ax = fig.subplots()
    values = []
    for label, frame in frames.items():
        truth, predicted = frame["true_label"].to_numpy(float), frame["predicted_label"].to_numpy(float)
        ax.scatter(truth, predicted, s=12, label=label)
        values += [*truth, *predicted]
    finite = [v for v in values if np.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        ax.plot([low, high], [low, high], ":", color="grey")
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize="small")
    ax.legend(fontsize="x-small")
    return image(fig, f"{title}: predicted against true")


def middle_slices(volume: np.ndarray) -> list[np.ndarray]:
    """The three orthogonal slices through the middle of a 3D volume (sagittal, coronal, axial), each
    turned so that up is superior/anterior as a radiologist reads it."""
    x, y, z = (n // 2 for n in volume.shape)
    return [np.rot90(volume[x, :, :]), np.rot90(volume[:, y, :]), np.rot90(volume[:, :, z])]


def load_volume(path: Path) -> np.ndarray | None:
    """A saved tensor as a 3D array (its first channel), None when it is not a 3D image."""
    try:
        tensor = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not isinstance(tensor, torch.Tensor):
        return None
    array = tensor.detach().float().numpy()
    while array.ndim > 3:
        array = array[0]
    return array if array.ndim == 3 else None


def reconstruction_figure(pairs: list[tuple[str, np.ndarray, np.ndarray]], title: str) -> str:
    """For each (session, input, output): its three middle slices, input above output, one scale."""
    fig = new_figure(6.0, 2.0 * len(pairs) * 2)
    axes = fig.subplots(2 * len(pairs), 3, squeeze=False)
    for row, (who, given, made) in enumerate(pairs):
        low, high = float(np.min(given)), float(np.max(given))
        for kind, volume, line in (("input", given, 2 * row), ("output", made, 2 * row + 1)):
            for ax, plane in zip(axes[line], middle_slices(volume)):
                ax.imshow(plane, cmap="gray", vmin=low, vmax=high)
                ax.set_axis_off()
            axes[line][0].set_title(f"{who} {kind}", fontsize="x-small", loc="left")
    fig.suptitle(title, fontsize="small")
    return image(fig, f"{title}: input and output slices")
