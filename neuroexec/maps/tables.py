"""Result tables of a MAPS (FORMATS.md "Result tables"): prediction frames, soft voting from
patch/roi/slice level to image level, and metrics tables with bootstrap confidence intervals.

    classification  participant_id, session_id, <mode>_id, true_label, predicted_label, proba0..proba<n-1>
    regression      participant_id, session_id, <mode>_id, true_label, predicted_label
    reconstruction  participant_id, session_id, <mode>_id, MAE, RMSE, PSNR, SSIM

Image-level rows made by soft voting keep ClinicaDL's column name `<mode>_id` (e.g. `patch_id`)
with the value 0, as ClinicaDL's `<group>_image_level_prediction.tsv` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from neuroexec import metrics
from neuroexec.errors import InputError, NeuroexecError

TASKS = ("classification", "regression", "reconstruction")


def prediction_columns(task: str, mode: str, n_classes: int = 0) -> list[str]:
    """Column names of a prediction TSV.

    >>> prediction_columns("classification", "image", 2)
    ['participant_id', 'session_id', 'image_id', 'true_label', 'predicted_label', 'proba0', 'proba1']
    """
    ids = ["participant_id", "session_id", f"{mode}_id"]
    if task == "classification":
        return [*ids, "true_label", "predicted_label", *(f"proba{k}" for k in range(n_classes))]
    if task == "regression":
        return [*ids, "true_label", "predicted_label"]
    if task == "reconstruction":
        return [*ids, *metrics.RECONSTRUCTION_METRICS]
    raise NeuroexecError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")


def _numpy(values: Sequence | np.ndarray | torch.Tensor, dtype: type = np.float64) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=dtype)


def _id_columns(
    participants: Sequence[str], sessions: Sequence[str], mode_ids: Sequence[int], mode: str
) -> dict[str, list]:
    if not len(participants) == len(sessions) == len(mode_ids):
        raise NeuroexecError(
            f"prediction rows disagree: {len(participants)} participants, {len(sessions)} sessions, "
            f"{len(mode_ids)} {mode} ids"
        )
    return {
        "participant_id": [str(p) for p in participants],
        "session_id": [str(s) for s in sessions],
        f"{mode}_id": [int(i) for i in _numpy(mode_ids, np.int64)],
    }


def classification_frame(
    participants: Sequence[str],
    sessions: Sequence[str],
    mode_ids: Sequence[int],
    true_labels: Sequence[int],
    logits: np.ndarray | torch.Tensor,
    mode: str,
) -> pd.DataFrame:
    """Classification predictions from raw network outputs [N, K]: softmax probabilities, argmax label.

    >>> classification_frame(["sub-01"], ["ses-M000"], [0], [1], [[0.0, 2.0]], "image").predicted_label.tolist()
    [1]
    """
    from scipy.special import softmax  # a second to import: only where predictions are made

    logits = _numpy(logits)
    if logits.ndim != 2 or logits.shape[0] != len(participants):
        raise NeuroexecError(f"logits must have shape [{len(participants)}, n_classes], got {logits.shape}")
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite outputs are named by the caller
        probabilities = softmax(logits, axis=1)
    frame = pd.DataFrame(_id_columns(participants, sessions, mode_ids, mode))
    frame["true_label"] = _numpy(true_labels, np.int64)
    frame["predicted_label"] = logits.argmax(axis=1)
    for k in range(logits.shape[1]):
        frame[f"proba{k}"] = probabilities[:, k]
    return frame


def regression_frame(
    participants: Sequence[str],
    sessions: Sequence[str],
    mode_ids: Sequence[int],
    true_labels: Sequence[float],
    predictions: Sequence[float] | torch.Tensor,
    mode: str,
) -> pd.DataFrame:
    """Regression predictions.

    >>> regression_frame(["sub-01"], ["ses-M000"], [0], [70.0], [71.5], "image").predicted_label.tolist()
    [71.5]
    """
    frame = pd.DataFrame(_id_columns(participants, sessions, mode_ids, mode))
    frame["true_label"] = _numpy(true_labels).reshape(-1)
    frame["predicted_label"] = _numpy(predictions).reshape(-1)
    return frame


def reconstruction_frame(
    participants: Sequence[str],
    sessions: Sequence[str],
    mode_ids: Sequence[int],
    mae: Sequence[float],
    rmse: Sequence[float],
    psnr: Sequence[float],
    ssim: Sequence[float],
    mode: str,
) -> pd.DataFrame:
    """Per-sample reconstruction metrics.

    >>> reconstruction_frame(["sub-01"], ["ses-M000"], [0], [0.1], [0.2], [30.0], [0.9], "image").SSIM.tolist()
    [0.9]
    """
    frame = pd.DataFrame(_id_columns(participants, sessions, mode_ids, mode))
    for name, values in zip(metrics.RECONSTRUCTION_METRICS, (mae, rmse, psnr, ssim)):
        frame[name] = _numpy(values).reshape(-1)
    return frame


def soft_vote_weights(
    validation_frame: pd.DataFrame, mode: str, selection_threshold: float | None = None
) -> dict[int, float]:
    """ClinicaDL's soft-voting weights: per `<mode>_id`, the fraction of correct validation predictions
    (plain accuracy, as ClinicaDL), set to 0 below `selection_threshold`, then divided by their sum.

    >>> validation = classification_frame(
    ...     ["sub-01"] * 3 + ["sub-02"] * 3, ["ses-M000"] * 6, [0, 1, 2] * 2, [0, 0, 0, 1, 1, 1],
    ...     [[2, 0], [2, 0], [0, 2], [0, 2], [2, 0], [2, 0]], "patch",
    ... )  # patch 0 right twice, patch 1 once, patch 2 never
    >>> soft_vote_weights(validation, "patch", selection_threshold=0.4)
    {0: 0.6666666666666666, 1: 0.3333333333333333, 2: 0.0}
    """
    correct = validation_frame["true_label"].to_numpy() == validation_frame["predicted_label"].to_numpy()
    accuracy = pd.Series(correct.astype(np.float64)).groupby(validation_frame[f"{mode}_id"].to_numpy()).mean()
    if selection_threshold is not None:
        accuracy[accuracy < selection_threshold] = 0.0
    total = accuracy.sum()
    if not total > 0:
        raise NeuroexecError(
            f"soft voting: every {mode} has weight 0 (validation accuracies "
            f"{accuracy.round(3).to_dict()}, selection_threshold {selection_threshold}); lower the threshold"
        )
    return {int(k): float(v / total) for k, v in accuracy.items()}


def soft_vote(frame: pd.DataFrame, weights: dict[int, float], mode: str) -> pd.DataFrame:
    """Image-level predictions from `<mode>`-level ones: per session, the weighted average of the
    probabilities (classification, predicted label = argmax) or of the predictions (regression;
    ClinicaDL uses equal weights there). Rows sorted by participant and session, `<mode>_id` 0.

    >>> patches = classification_frame(["sub-03"] * 2, ["ses-M000"] * 2, [0, 1], [1, 1], [[0, 3], [1, 0]], "patch")
    >>> image = soft_vote(patches, {0: 0.5, 1: 0.5}, "patch")
    >>> image.patch_id.tolist(), image.predicted_label.tolist(), image.proba1.round(3).tolist()
    ([0], [1], [0.611])
    """
    id_column = f"{mode}_id"
    missing = sorted(set(frame[id_column].astype(int)) - set(weights))
    if missing:
        raise NeuroexecError(
            f"soft voting: no weight for {id_column} {missing}; weights cover {sorted(weights)}"
        )
    probas = [c for c in frame.columns if c.startswith("proba") and c[5:].isdigit()]
    probas.sort(key=lambda c: int(c[5:]))
    values = ["predicted_label"] if not probas else probas
    rows = []
    for (participant, session), group in frame.groupby(["participant_id", "session_id"], sort=True):
        labels = group["true_label"].unique()
        if len(labels) != 1:
            raise InputError(
                None, f"soft voting: {participant} {session} has several true labels {list(labels)}"
            )
        w = group[id_column].astype(int).map(weights).to_numpy(dtype=np.float64)
        if not w.sum() > 0:
            raise NeuroexecError(f"soft voting: the weights of every {mode} of {participant} {session} are 0")
        averaged = (w[:, None] * group[values].to_numpy(dtype=np.float64)).sum(axis=0) / w.sum()
        if probas:
            rows.append([participant, session, 0, labels[0], int(np.argmax(averaged)), *averaged])
        else:
            rows.append([participant, session, 0, labels[0], float(averaged[0])])
    columns = ["participant_id", "session_id", id_column, "true_label", "predicted_label", *probas]
    return pd.DataFrame(rows, columns=columns)


def class_probabilities(frame: pd.DataFrame, n_classes: int) -> np.ndarray | None:
    """The class probabilities proba0..proba<n-1> of a classification frame, [N, n_classes]; None when
    the frame lacks one of them or there are fewer than 2 classes.

    >>> class_probabilities(pd.DataFrame({"proba0": [0.25], "proba1": [0.75]}), 2).tolist()
    [[0.25, 0.75]]
    """
    columns = [f"proba{k}" for k in range(n_classes)]
    if n_classes < 2 or not set(columns) <= set(frame.columns):
        return None
    return frame[columns].to_numpy(dtype=np.float64)


def metrics_for_predictions(
    frame: pd.DataFrame,
    task: str,
    n_classes: int = 0,
    loss: float | None = None,
    n_resamples: int = 3000,
    seed: int = 0,
) -> pd.DataFrame:
    """The metrics table (Metrics/Values/Lower bound CI/Upper bound CI/SE) of a prediction frame;
    `loss` is added after the metrics with its value only (no per-sample losses to resample), and a
    classification frame's probabilities give a last column, `AUC` (metrics.roc_auc).

    >>> validation = classification_frame(
    ...     ["sub-01"] * 3 + ["sub-02"] * 3, ["ses-M000"] * 6, [0, 1, 2] * 2, [0, 0, 0, 1, 1, 1],
    ...     [[2, 0], [2, 0], [0, 2], [0, 2], [2, 0], [2, 0]], "patch",
    ... )  # patch 0 right twice, patch 1 once, patch 2 never
    >>> table = metrics_for_predictions(validation, "classification", n_classes=2, loss=0.41)
    >>> table.Metrics.tolist()
    ['Values', 'Lower bound CI', 'Upper bound CI', 'SE']
    >>> table.loc[0, ["accuracy", "loss", "AUC"]].tolist()
    [0.5, 0.41, 0.5]
    """
    if task == "classification":
        y_true = frame["true_label"].to_numpy(dtype=np.int64)
        y_pred = frame["predicted_label"].to_numpy(dtype=np.int64)
        scores = class_probabilities(frame, n_classes)

        def compute(i: np.ndarray) -> dict:
            values = metrics.classification_metrics(y_true[i], y_pred[i], n_classes)
            return values if scores is None else {**values, "AUC": metrics.roc_auc(y_true[i], scores[i])}
    elif task == "regression":
        y_true = frame["true_label"].to_numpy(dtype=np.float64)
        y_pred = frame["predicted_label"].to_numpy(dtype=np.float64)

        def compute(i: np.ndarray) -> dict:
            return metrics.regression_metrics(y_true[i], y_pred[i])
    elif task == "reconstruction":
        columns = [frame[name].to_numpy(dtype=np.float64) for name in metrics.RECONSTRUCTION_METRICS]

        def compute(i: np.ndarray) -> dict:
            return metrics.reconstruction_metrics(*(c[i] for c in columns))
    else:
        raise NeuroexecError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if frame.empty:
        raise NeuroexecError("cannot compute metrics of an empty prediction table")
    table = metrics.bootstrap_table(compute, len(frame), n_resamples=n_resamples, seed=seed)
    if loss is not None:  # ClinicaDL's columns first, its loss last of them; AUC (not ClinicaDL's) after
        at = table.columns.get_loc("AUC") if "AUC" in table.columns else len(table.columns)
        table.insert(at, "loss", [float(loss), np.nan, np.nan, np.nan])
    return table
