from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from neuroexec.errors import NeuroexecError
from neuroexec.metrics import (
    SELECTION_METRICS,
    bootstrap_table,
    classification_metrics,
    higher_is_better,
    is_improvement,
    reconstruction_metrics,
    regression_metrics,
    ssim3d,
)

# Class 0 is the positive class (ClinicaDL): tp = true 0 predicted 0, ...
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
Y_PRED = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]  # tp 3, fn 1, fp 2, tn 4


def test_binary_metrics_match_a_hand_computed_confusion_matrix():
    m = classification_metrics(Y_TRUE, Y_PRED, 2)
    expected = {
        "sensitivity": 3 / 4, "specificity": 4 / 6, "PPV": 3 / 5, "NPV": 4 / 5, "accuracy": 7 / 10,
        "BA": (3 / 4 + 4 / 6) / 2, "F1_score": 2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4),
        "MCC": (3 * 4 - 2 * 1) / math.sqrt(5 * 4 * 6 * 5), "MK": 3 / 5 + 4 / 5 - 1,
        "LR_plus": (3 / 4) / (1 - 4 / 6), "LR_minus": (1 / 4) / (4 / 6),
    }  # fmt: skip
    assert list(m) == [
        "BA",
        "accuracy",
        "F1_score",
        "sensitivity",
        "specificity",
        "PPV",
        "NPV",
        "MCC",
        "MK",
        "LR_plus",
        "LR_minus",
    ]
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, rel=1e-12), name


def test_positive_class_one_swaps_sensitivity_and_specificity():
    m0 = classification_metrics(Y_TRUE, Y_PRED, 2)
    m1 = classification_metrics(Y_TRUE, Y_PRED, 2, positive_class=1)
    assert m1["sensitivity"] == m0["specificity"] and m1["PPV"] == m0["NPV"]
    assert m1["BA"] == pytest.approx(m0["BA"]) and m1["MCC"] == pytest.approx(m0["MCC"])


def test_divisions_by_zero_give_nan():
    m = classification_metrics([0, 0, 0], [0, 0, 0], 2)
    assert m["sensitivity"] == 1.0 and m["accuracy"] == 1.0
    for name in ("specificity", "NPV", "MCC", "LR_plus", "LR_minus", "BA", "MK"):
        assert math.isnan(m[name]), name
    assert math.isnan(regression_metrics([2.0, 2.0], [1.0, 3.0])["R2_score"])


def _loop_counts(y_true, y_pred, k):
    tp = sum(t == k and p == k for t, p in zip(y_true, y_pred))
    fn = sum(t == k and p != k for t, p in zip(y_true, y_pred))
    fp = sum(t != k and p == k for t, p in zip(y_true, y_pred))
    tn = len(y_true) - tp - fn - fp
    return tp, fn, fp, tn


def test_multiclass_gives_per_class_values_and_overall_ba_and_accuracy():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 3, 60).tolist(), rng.integers(0, 3, 60).tolist()
    m = classification_metrics(y_true, y_pred, 3)
    recalls = []
    for k in range(3):
        tp, fn, fp, tn = _loop_counts(y_true, y_pred, k)
        recalls.append(tp / (tp + fn))
        assert m[f"sensitivity-{k}"] == pytest.approx(tp / (tp + fn))
        assert m[f"specificity-{k}"] == pytest.approx(tn / (tn + fp))
        assert m[f"PPV-{k}"] == pytest.approx(tp / (tp + fp))
        assert m[f"F1_score-{k}"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert m[f"BA-{k}"] == pytest.approx((tp / (tp + fn) + tn / (tn + fp)) / 2)
    assert m["BA"] == pytest.approx(sum(recalls) / 3)
    assert m["accuracy"] == pytest.approx(sum(t == p for t, p in zip(y_true, y_pred)) / 60)
    assert "sensitivity" not in m and "accuracy-0" not in m


def test_labels_outside_the_classes_are_refused():
    with pytest.raises(NeuroexecError, match="0..1"):
        classification_metrics([0, 2], [0, 1], 2)


def test_regression_metrics_match_plain_formulas():
    y, p = [1.0, 2.0, 4.0, 7.0], [1.5, 2.0, 3.0, 8.0]
    mean = sum(y) / 4
    ss_res = sum((a - b) ** 2 for a, b in zip(y, p))
    ss_tot = sum((a - mean) ** 2 for a in y)
    m = regression_metrics(y, p)
    assert m["R2_score"] == pytest.approx(1 - ss_res / ss_tot)
    assert m["MAE"] == pytest.approx(sum(abs(a - b) for a, b in zip(y, p)) / 4)
    assert m["RMSE"] == pytest.approx(math.sqrt(ss_res / 4))


def test_reconstruction_metrics_are_means():
    m = reconstruction_metrics([1.0, 2.0], [3.0, 5.0], [20.0, 30.0], [0.25, 0.75])
    assert m == {"MAE": 1.5, "RMSE": 4.0, "PSNR": 25.0, "SSIM": 0.5}


def test_batched_metrics_equal_row_by_row_metrics():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (5, 30)), rng.integers(0, 2, (5, 30))
    batched = classification_metrics(y, p, 2)
    for r in range(5):
        single = classification_metrics(y[r], p[r], 2)
        for name, value in single.items():
            np.testing.assert_allclose(batched[name][r], value)


def test_bootstrap_matches_its_own_resamples_and_contains_the_point_value():
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
    seen: list[np.ndarray] = []

    def compute(i: np.ndarray) -> dict:
        if i.ndim == 2:
            seen.append(i)
        return classification_metrics(y[i], p[i], 2)

    table = bootstrap_table(compute, 80, n_resamples=500, seed=7)
    assert list(table["Metrics"]) == ["Values", "Lower bound CI", "Upper bound CI", "SE"]
    draws = np.concatenate(seen)
    assert draws.shape == (500, 80)
    per_resample = np.array([classification_metrics(y[i], p[i], 2)["accuracy"] for i in draws])
    accuracy = table["accuracy"].to_numpy()
    assert accuracy[0] == pytest.approx(np.mean(y == p))
    assert accuracy[1] == pytest.approx(np.percentile(per_resample, 2.5))
    assert accuracy[2] == pytest.approx(np.percentile(per_resample, 97.5))
    assert accuracy[3] == pytest.approx(np.std(per_resample, ddof=1))
    for name in table.columns[1:]:
        value, low, high, _ = table[name]
        assert low <= value <= high, name


def test_bootstrap_standard_error_of_accuracy_is_close_to_the_binomial_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    p = np.where(rng.random(400) < 0.8, y, 1 - y)
    table = bootstrap_table(lambda i: classification_metrics(y[i], p[i], 2), 400)
    acc = np.mean(y == p)
    assert table["accuracy"][3] == pytest.approx(math.sqrt(acc * (1 - acc) / 400), rel=0.1)


def test_bootstrap_is_deterministic_per_seed():
    rng = np.random.default_rng(3)
    y, p = rng.normal(size=50), rng.normal(size=50)

    def compute(i):
        return regression_metrics(y[i], p[i])

    a, b, c = (
        bootstrap_table(compute, 50, seed=1),
        bootstrap_table(compute, 50, seed=1),
        bootstrap_table(compute, 50, seed=2),
    )
    assert a.equals(b) and not a.equals(c)


def test_bootstrap_computes_its_3000_resamples_of_500_rows_in_batched_calls():
    # What keeps a metrics table cheap (benchmarks/test_metrics_speed.py measures it): the resamples
    # reach `compute` as [R, n] index arrays, not one call per resample.
    rng = np.random.default_rng(4)
    y, p = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    shapes: list[tuple[int, ...]] = []

    def compute(i: np.ndarray) -> dict:
        shapes.append(i.shape)
        return classification_metrics(y[i], p[i], 2)

    table = bootstrap_table(compute, 500, n_resamples=3000, seed=3)
    point, *batches = shapes
    assert point == (500,)  # the point value, on every row once
    assert all(len(s) == 2 and s[1] == 500 for s in batches) and sum(s[0] for s in batches) == 3000
    assert len(batches) <= 3
    accuracy = np.mean(y == p)
    assert table["accuracy"][0] == accuracy and table["accuracy"][1] < accuracy < table["accuracy"][2]


def test_selection_metric_directions():
    assert not higher_is_better("loss") and not higher_is_better("MAE") and not higher_is_better("LR_minus")
    assert higher_is_better("BA") and higher_is_better("SSIM") and higher_is_better("F1_score-2")
    assert all(isinstance(higher_is_better(m), bool) for task in SELECTION_METRICS.values() for m in task)
    with pytest.raises(NeuroexecError, match="known metrics"):
        higher_is_better("AUC")


def test_is_improvement_respects_direction_tolerance_and_nan():
    assert is_improvement("loss", 0.4, 0.5) and not is_improvement("loss", 0.5, 0.4)
    assert is_improvement("BA", 0.8, 0.7) and not is_improvement("BA", 0.7, 0.7)
    assert not is_improvement("BA", 0.75, 0.7, tolerance=0.1)
    assert is_improvement("BA", 0.1, None) and not is_improvement("BA", float("nan"), 0.5)


def _reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float, size: int) -> float:
    """Full (non-separable) 3D gaussian window, zero padding, float64."""
    g = np.exp(-((np.arange(size) - (size - 1) / 2) ** 2) / (2 * 1.5**2))
    g /= g.sum()
    window = g[:, None, None] * g[None, :, None] * g[None, None, :]

    def blur(v):
        return ndimage.correlate(v, window, mode="constant", cval=0.0)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(ssim.mean())


@pytest.mark.parametrize("shape, size", [((14, 15, 16), 11), ((6, 9, 12), 5)])
def test_ssim3d_matches_a_float64_reference(shape, size):
    rng = np.random.default_rng(5)
    x = rng.random((2, 1, *shape))
    y = np.clip(x + 0.2 * rng.normal(size=x.shape), 0, None)
    ranges = [1.0, 2.5]
    expected = [_reference_ssim(x[b, 0], y[b, 0], ranges[b], size) for b in range(2)]
    got64 = ssim3d(torch.from_numpy(x), torch.from_numpy(y), torch.tensor(ranges))
    got32 = ssim3d(torch.from_numpy(x).float(), torch.from_numpy(y).float(), torch.tensor(ranges))
    assert got64.dtype == torch.float64 and got32.dtype == torch.float32
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4)


def test_ssim3d_of_a_volume_with_itself_is_one():
    x = torch.rand(3, 2, 12, 13, 11)
    np.testing.assert_allclose(ssim3d(x, x, 1.0).numpy(), 1.0, rtol=1e-6)
