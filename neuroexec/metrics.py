"""Evaluation metrics (numpy, float64), the ROC AUC, their bootstrap confidence intervals, and 3D SSIM.

Conventions follow ClinicaDL 1.x's MetricModule:
- binary tasks use class 0 as the positive class, as ClinicaDL does (label_code sorts the labels,
  so with {"AD": 0, "CN": 1} sensitivity is the sensitivity to AD); `positive_class` changes it;
- one deliberate difference: a division by zero gives nan (ClinicaDL writes 0.0, which reads like
  a real value).
More than 2 classes: each per-class metric gets a `-<k>` suffix (as ClinicaDL); `BA` (mean of the
per-class sensitivities) and `accuracy` are also given overall.

Every metric function accepts a batch: with arrays of shape [R, n] it returns arrays of shape [R],
which is how `bootstrap_table` evaluates 3000 resamples at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from neuroexec.errors import NeuroexecError

CLASSIFICATION_METRICS = (
    "BA", "accuracy", "F1_score", "sensitivity", "specificity", "PPV", "NPV", "MCC", "MK", "LR_plus", "LR_minus",
)  # fmt: skip
REGRESSION_METRICS = ("R2_score", "MAE", "RMSE")
RECONSTRUCTION_METRICS = ("MAE", "RMSE", "PSNR", "SSIM")

SELECTION_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("loss", *CLASSIFICATION_METRICS),
    "regression": ("loss", "MAE", "RMSE", "R2_score"),
    "reconstruction": ("loss", "MAE", "RMSE", "PSNR", "SSIM"),
}
_LOWER_IS_BETTER = {"loss", "MAE", "RMSE", "MSE", "LR_minus"}
_KNOWN = set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS) | set(RECONSTRUCTION_METRICS) | {"loss", "MSE"}


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, nan where den == 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    safe = np.where(den != 0, den, 1.0)
    return np.where(den != 0, num / safe, np.nan)


def _scalarise(values: dict[str, np.ndarray]) -> dict[str, float]:
    return (
        {k: float(v) for k, v in values.items()} if all(np.ndim(v) == 0 for v in values.values()) else values
    )


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices cm[..., true, predicted] of integer labels of shape [n] or [R, n]."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise NeuroexecError(
                f"{name} holds labels outside 0..{n_classes - 1}: {sorted(set(y.ravel().tolist()))}"
            )
    if y_true.ndim == 0 or y_true.shape != y_pred.shape:
        raise NeuroexecError(
            f"y_true {y_true.shape} and y_pred {y_pred.shape} must have the same shape [n] or [R, n]"
        )
    n_batches = math.prod(y_true.shape[:-1])
    rows = np.arange(n_batches).reshape(y_true.shape[:-1] + (1,)) * n_classes * n_classes
    codes = (rows + y_true * n_classes + y_pred).ravel()
    counts = np.bincount(codes, minlength=n_batches * n_classes**2)
    return counts.reshape(y_true.shape[:-1] + (n_classes, n_classes))


def _per_class(cm: np.ndarray, k: int) -> dict[str, np.ndarray]:
    n = cm.sum(axis=(-2, -1))
    tp = cm[..., k, k]
    fn = cm[..., k, :].sum(axis=-1) - tp
    fp = cm[..., :, k].sum(axis=-1) - tp
    tn = n - tp - fn - fp
    sensitivity, specificity = _div(tp, tp + fn), _div(tn, tn + fp)
    ppv, npv = _div(tp, tp + fp), _div(tn, tn + fn)
    mcc = _div(tp * tn - fp * fn, np.sqrt(((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).astype(np.float64)))
    return {
        "BA": (sensitivity + specificity) / 2,
        "F1_score": _div(2 * tp, 2 * tp + fp + fn),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "PPV": ppv,
        "NPV": npv,
        "MCC": mcc,
        "MK": ppv + npv - 1,
        "LR_plus": _div(sensitivity, 1 - specificity),
        "LR_minus": _div(1 - sensitivity, specificity),
    }


def metrics_from_confusion(cm: np.ndarray, positive_class: int = 0) -> dict[str, np.ndarray]:
    """Classification metrics of confusion matrices [..., K, K] (see the module docstring)."""
    n_classes = cm.shape[-1]
    accuracy = _div(np.trace(cm, axis1=-2, axis2=-1), cm.sum(axis=(-2, -1)))
    if n_classes == 2:
        values = _per_class(cm, positive_class)
        return {name: (accuracy if name == "accuracy" else values[name]) for name in CLASSIFICATION_METRICS}
    per_class = [_per_class(cm, k) for k in range(n_classes)]
    recalls = np.stack([values["sensitivity"] for values in per_class])
    present = ~np.isnan(recalls)
    # BA over the classes present in y_true (sklearn's balanced_accuracy_score).
    balanced = _div(np.where(present, recalls, 0).sum(axis=0), present.sum(axis=0))
    out: dict[str, np.ndarray] = {"BA": balanced}
    for name in CLASSIFICATION_METRICS:
        if name == "accuracy":
            out["accuracy"] = accuracy
            continue
        for k, values in enumerate(per_class):
            out[f"{name}-{k}"] = values[name]
    return out


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, positive_class: int = 0
) -> dict[str, float]:
    """BA, accuracy, F1_score, sensitivity, specificity, PPV, NPV, MCC, MK, LR_plus, LR_minus.

    >>> classification_metrics([0, 0, 1, 1], [0, 1, 1, 1], 2)["sensitivity"]
    0.5
    """
    return _scalarise(metrics_from_confusion(confusion_matrices(y_true, y_pred, n_classes), positive_class))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R2_score, MAE, RMSE (R2_score is nan when y_true is constant).

    >>> regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])["MAE"]
    0.3333333333333333
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    error = y_pred - y_true
    total = ((y_true - y_true.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    return _scalarise({
        "R2_score": 1 - _div((error**2).sum(axis=-1), total),
        "MAE": np.abs(error).mean(axis=-1),
        "RMSE": np.sqrt((error**2).mean(axis=-1)),
    })  # fmt: skip


def roc_auc(y_true: np.ndarray, probabilities: np.ndarray, positive_class: int = 0) -> np.ndarray | float:
    """Area under the ROC curve from integer labels [..., n] and class probabilities [..., n, K]: with 2
    classes, of the positive class's probability; with more, the mean of each class's one-vs-rest area
    (scikit-learn's roc_auc_score with multi_class="ovr", average="macro"). nan where a class is absent
    from y_true or a probability is not finite: the area is undefined there.

    The Mann-Whitney form (a tie counts one half), so a batch of resamples costs one ranking:
    AUC_k = (sum of the ranks of class k's samples - P (P + 1) / 2) / (P N). In the metrics tables only
    (maps/tables.py, from the prediction TSVs' proba<k>): not a selection metric, nor in training logs.

    >>> roc_auc([0, 0, 1, 1], [[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.2, 0.8]])
    0.75
    """
    from scipy.stats import rankdata  # seconds to import: only where an AUC is computed

    y_true = np.asarray(y_true, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = probabilities.shape[-1]
    areas = []
    for k in [positive_class] if n_classes == 2 else range(n_classes):
        positive = y_true == k
        ranks = rankdata(probabilities[..., k], axis=-1)  # nan throughout a row holding a nan
        n_positive = positive.sum(axis=-1)
        n_negative = positive.shape[-1] - n_positive
        u = np.where(positive, ranks, 0.0).sum(axis=-1) - n_positive * (n_positive + 1) / 2
        areas.append(_div(u, n_positive * n_negative))
    area = np.mean(areas, axis=0)
    return float(area) if area.ndim == 0 else area


def reconstruction_metrics(
    mae: np.ndarray, rmse: np.ndarray, psnr: np.ndarray, ssim: np.ndarray
) -> dict[str, float]:
    """Means over samples of the per-sample MAE, RMSE, PSNR and SSIM.

    >>> reconstruction_metrics([1, 3], [2, 2], [30, 40], [0.5, 0.7])["MAE"]
    2.0
    """
    columns = dict(zip(RECONSTRUCTION_METRICS, (mae, rmse, psnr, ssim)))
    return _scalarise({k: np.asarray(v, dtype=np.float64).mean(axis=-1) for k, v in columns.items()})


def bootstrap_table(
    compute: Callable[[np.ndarray], dict],
    n_samples: int,
    n_resamples: int = 3000,
    seed: int = 0,
    point: dict | None = None,
) -> pd.DataFrame:
    """ClinicaDL's metrics table: 95% percentile bootstrap (paired: one index draw per resample).

    `compute(indices)` gets row indices of shape [n] or [R, n] and returns {metric: value or [R]}.
    The frame's columns are `Metrics` then the metric names and its rows are `Values`,
    `Lower bound CI`, `Upper bound CI`, `SE`; written as a TSV with a header and no index, this is
    the file ClinicaDL writes (first line `Metrics<TAB>BA<TAB>...`). Resamples where a metric is
    nan (e.g. a class absent) are left out of its interval; SE is the std (ddof=1) over resamples.
    The resamples, intervals and SE are scipy.stats.bootstrap's (paired, method="percentile", the same
    seed and batch: tests/test_metrics_bootstrap.py), except that scipy cannot leave out a metric's
    undefined resamples (its interval is then nan): hence this loop.

    >>> y = np.array([0, 1, 1, 0]); p = np.array([0, 1, 0, 0])
    >>> bootstrap_table(lambda i: classification_metrics(y[i], p[i], 2), 4).columns[1]
    'BA'
    """
    point = compute(np.arange(n_samples)) if point is None else point
    names = list(point)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    if n_samples >= 2 and n_resamples > 0:
        rng = np.random.default_rng(seed)
        chunk = max(1, min(n_resamples, 2_000_000 // n_samples))
        for start in range(0, n_resamples, chunk):
            indices = rng.integers(0, n_samples, size=(min(chunk, n_resamples - start), n_samples))
            values = compute(indices)
            for name in names:
                draws[name].append(
                    np.broadcast_to(np.asarray(values[name], dtype=np.float64), indices.shape[:1])
                )
    lower, upper, se = [], [], []
    for name in names:
        sample = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        sample = sample[~np.isnan(sample)]
        ok = sample.size > 0
        lower.append(float(np.percentile(sample, 2.5)) if ok else math.nan)
        upper.append(float(np.percentile(sample, 97.5)) if ok else math.nan)
        se.append(float(np.std(sample, ddof=1)) if sample.size > 1 else math.nan)
    rows = [
        ["Values", *(float(point[n]) for n in names)],
        ["Lower bound CI", *lower],
        ["Upper bound CI", *upper],
        ["SE", *se],
    ]
    return pd.DataFrame(rows, columns=["Metrics", *names])


def _base_metric(metric: str) -> str:
    head, _, tail = metric.rpartition("-")
    return head if head and tail.isdigit() else metric


def higher_is_better(metric: str) -> bool:
    """True for metrics to maximise (BA, SSIM, ...), False for loss, MAE, RMSE, LR_minus.

    >>> higher_is_better("loss"), higher_is_better("BA-2")
    (False, True)
    """
    base = _base_metric(metric)
    if base not in _KNOWN:
        raise NeuroexecError(f"unknown metric {metric!r}; known metrics: {', '.join(sorted(_KNOWN))}")
    return base not in _LOWER_IS_BETTER


def is_improvement(metric: str, new: float, best: float | None, tolerance: float = 0.0) -> bool:
    """Whether `new` beats `best` by more than `tolerance` (a nan `new` never does; no best yet: any).

    >>> is_improvement("loss", 0.4, 0.5), is_improvement("BA", 0.7, 0.7)
    (True, False)
    """
    if new is None or math.isnan(new):
        return False
    if best is None or math.isnan(best):
        return True
    return new > best + tolerance if higher_is_better(metric) else new < best - tolerance


def gaussian_window(size: int, sigma: float = 1.5, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1D gaussian of odd length `size`."""
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim3d(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: torch.Tensor | float,
    window_size: int = 11,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Per-sample 3D SSIM of [B, C, D, H, W] (or [B, D, H, W]) volumes: a gaussian window (sigma 1.5,
    11 voxels, shrunk to the smallest spatial size), zero padding, C1 = (0.01 L)^2, C2 = (0.03 L)^2.

    >>> v = torch.rand(2, 1, 12, 12, 12)
    >>> torch.allclose(ssim3d(v, v, 1.0), torch.ones(2))
    True
    """
    if x.shape != y.shape:
        raise NeuroexecError(f"ssim3d: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.dim() == 4:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 5:
        raise NeuroexecError(f"ssim3d: expected [B, C, D, H, W] volumes, got shape {tuple(x.shape)}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    size = min(window_size, *x.shape[-3:])
    size -= 1 - size % 2  # odd, so the window is centred
    channels = x.shape[1]
    g = gaussian_window(size, sigma, dtype).to(x.device)
    kernels = [g.view(1, 1, -1, 1, 1), g.view(1, 1, 1, -1, 1), g.view(1, 1, 1, 1, -1)]
    paddings = [(size // 2, 0, 0), (0, size // 2, 0), (0, 0, size // 2)]

    def blur(v: torch.Tensor) -> torch.Tensor:
        groups = v.shape[1]
        for kernel, padding in zip(kernels, paddings):
            v = F.conv3d(v, kernel.expand(groups, 1, *kernel.shape[2:]), padding=padding, groups=groups)
        return v

    # One pass over the five maps stacked along the channel axis.
    stacked = blur(torch.cat([x, y, x * x, y * y, x * y]).view(5, *x.shape).transpose(0, 1).flatten(1, 2))
    mu_x, mu_y, xx, yy, xy = stacked.view(x.shape[0], 5, channels, *x.shape[2:]).unbind(1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    L = torch.as_tensor(data_range, dtype=dtype, device=x.device).reshape(-1, 1, 1, 1, 1)
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(dim=1)
