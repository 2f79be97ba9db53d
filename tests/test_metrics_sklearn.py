"""Every classification and regression metric of neuroexec/metrics.py, and the AUC, against
scikit-learn's own, on random cases (binary, multi-class) and degenerate ones, one by one and in the
batched form the bootstrap uses. The one deliberate difference (metrics.py's docstring): where a
metric divides by zero, neuroexec gives nan where scikit-learn gives 0 (MCC) or a value over the
classes present (BA); those cases are checked to be exactly the undefined ones."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

from neuroexec import evaluation, metrics
from neuroexec.maps import tables

NAN = np.nan


def _cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    rng = np.random.default_rng(18)
    cases = [(f"random-{k}-{n}", rng.integers(0, k, n), rng.integers(0, k, n), k)
             for k in (2, 3, 4) for n in (7, 40, 300)]  # fmt: skip
    skewed = rng.integers(0, 3, 50)
    cases += [
        ("mostly-right", skewed, np.where(rng.random(50) < 0.8, skewed, rng.integers(0, 3, 50)), 3),
        ("perfect", np.array([0, 1, 1, 0, 1]), np.array([0, 1, 1, 0, 1]), 2),
        ("all-wrong", np.array([0, 1, 1, 0]), np.array([1, 0, 0, 1]), 2),
        ("one-predicted-class", np.array([0, 1, 1, 0, 1]), np.zeros(5, dtype=int), 2),
        ("one-true-class", np.zeros(6, dtype=int), np.array([0, 1, 0, 0, 1, 0]), 2),
        ("a-class-never-seen", np.array([0, 1, 0, 1, 0]), np.array([0, 1, 1, 1, 0]), 3),
        ("single-sample", np.array([1]), np.array([1]), 2),
    ]
    return cases


CASES = _cases()


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _one_vs_rest(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> dict[str, float]:
    """scikit-learn's values of neuroexec's per-class metrics, class `k` the positive one."""
    t, p = (y_true == k).astype(int), (y_pred == k).astype(int)
    sens = _quiet(sk.recall_score, t, p, pos_label=1, zero_division=NAN)
    spec = _quiet(sk.recall_score, t, p, pos_label=0, zero_division=NAN)
    ppv = _quiet(sk.precision_score, t, p, pos_label=1, zero_division=NAN)
    npv = _quiet(sk.precision_score, t, p, pos_label=0, zero_division=NAN)
    tp, fn, fp, tn = (int(((t == a) & (p == b)).sum()) for a, b in ((1, 1), (1, 0), (0, 1), (0, 0)))
    mcc_defined = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) > 0
    lr_plus, lr_minus = _quiet(sk.class_likelihood_ratios, t, p, labels=[0, 1])
    return {
        "BA": (sens + spec) / 2,
        "F1_score": _quiet(sk.f1_score, t, p, pos_label=1, zero_division=NAN),
        "sensitivity": sens,
        "specificity": spec,
        "PPV": ppv,
        "NPV": npv,
        "MCC": sk.matthews_corrcoef(t, p) if mcc_defined else NAN,  # scikit-learn: 0.0
        "MK": ppv + npv - 1,
        # scikit-learn leaves both ratios undefined when either is; where it gives them they must agree,
        # and the ratios always equal the recalls' (sensitivity / (1 - specificity), ...).
        "LR_plus": sens / (1 - spec) if 1 - spec != 0 else NAN,
        "LR_minus": (1 - sens) / spec if spec != 0 else NAN,
        "sklearn_LR": (lr_plus, lr_minus),
    }


def _expected(y_true: np.ndarray, y_pred: np.ndarray, k: int, positive_class: int) -> dict[str, float]:
    if k == 2:
        out = _one_vs_rest(y_true, y_pred, positive_class)
        out["accuracy"] = sk.accuracy_score(y_true, y_pred)
        return out
    out = {
        "accuracy": sk.accuracy_score(y_true, y_pred),
        "BA": _quiet(sk.balanced_accuracy_score, y_true, y_pred),
    }
    for c in range(k):
        for name, value in _one_vs_rest(y_true, y_pred, c).items():
            out[f"{name}-{c}"] = value
    return out


def _assert_same(ours: dict, expected: dict) -> None:
    for name, want in expected.items():
        if name.startswith("sklearn_LR"):
            suffix = name[len("sklearn_LR") :]
            for mine, theirs in zip((ours[f"LR_plus{suffix}"], ours[f"LR_minus{suffix}"]), want):
                assert np.isnan(theirs) or mine == pytest.approx(theirs, rel=1e-12), (name, mine, theirs)
            continue
        got = ours[name]
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-12, abs=1e-15), (
            name, got, want)  # fmt: skip


@pytest.mark.parametrize(("name", "y_true", "y_pred", "k"), CASES, ids=[c[0] for c in CASES])
def test_classification_metrics_equal_scikit_learn(name, y_true, y_pred, k):
    for positive_class in (0, 1) if k == 2 else (0,):
        ours = metrics.classification_metrics(y_true, y_pred, k, positive_class=positive_class)
        expected = _expected(y_true, y_pred, k, positive_class)
        _assert_same(ours, expected)
        assert set(ours) == {n for n in expected if not n.startswith("sklearn_LR")}  # every metric checked


@pytest.mark.parametrize(("name", "y_true", "y_pred", "k"), CASES, ids=[c[0] for c in CASES])
def test_confusion_matrix_equals_scikit_learn(name, y_true, y_pred, k):
    expected = sk.confusion_matrix(y_true, y_pred, labels=list(range(k)))
    np.testing.assert_array_equal(metrics.confusion_matrices(y_true, y_pred, k), expected)


def test_degenerate_cases_are_nan_exactly_where_scikit_learn_is_undefined():
    """The differences are the documented ones, not accidents: a constant prediction has no MCC
    (scikit-learn: 0.0); one true class has no BA (scikit-learn averages the one class present)."""
    constant = metrics.classification_metrics([0, 1, 1, 0, 1], [0] * 5, 2)
    assert np.isnan(constant["MCC"]) and sk.matthews_corrcoef([0, 1, 1, 0, 1], [0] * 5) == 0.0
    one_class = metrics.classification_metrics([0] * 6, [0, 1, 0, 0, 1, 0], 2)
    assert np.isnan(one_class["BA"]) and np.isnan(one_class["specificity"])
    assert one_class["sensitivity"] == sk.recall_score([0] * 6, [0, 1, 0, 0, 1, 0], pos_label=0)


def test_batched_metrics_equal_scikit_learn_row_by_row():
    rng = np.random.default_rng(3)
    for k in (2, 3):
        y_true, y_pred = rng.integers(0, k, (4, 25)), rng.integers(0, k, (4, 25))
        batched = metrics.metrics_from_confusion(metrics.confusion_matrices(y_true, y_pred, k))
        for r in range(len(y_true)):
            row = {name: float(values[r]) for name, values in batched.items()}
            _assert_same(row, _expected(y_true[r], y_pred[r], k, 0))


REGRESSION = [
    ("random", np.random.default_rng(1).normal(70, 8, 30), np.random.default_rng(2).normal(70, 8, 30)),
    ("close", np.arange(10.0), np.arange(10.0) + np.random.default_rng(4).normal(0, 0.1, 10)),
    ("perfect", np.array([1.0, 5.0, 2.0]), np.array([1.0, 5.0, 2.0])),
    ("constant-truth", np.full(4, 3.0), np.array([3.0, 2.0, 4.0, 3.5])),
    ("single-sample", np.array([2.0]), np.array([3.0])),
]


@pytest.mark.parametrize(("name", "y_true", "y_pred"), REGRESSION, ids=[c[0] for c in REGRESSION])
def test_regression_metrics_equal_scikit_learn(name, y_true, y_pred):
    ours = metrics.regression_metrics(y_true, y_pred)
    assert ours["MAE"] == pytest.approx(sk.mean_absolute_error(y_true, y_pred), rel=1e-12)
    assert ours["RMSE"] == pytest.approx(sk.root_mean_squared_error(y_true, y_pred), rel=1e-12, abs=1e-15)
    assert ours["RMSE"] ** 2 == pytest.approx(sk.mean_squared_error(y_true, y_pred), rel=1e-12, abs=1e-15)
    r2 = _quiet(sk.r2_score, y_true, y_pred, force_finite=False)
    if np.isfinite(r2):
        assert ours["R2_score"] == pytest.approx(r2, rel=1e-12, abs=1e-15)
    else:  # a constant truth (or one sample): R2 is undefined, and neuroexec says nan
        assert np.isnan(ours["R2_score"]) and np.ptp(y_true) == 0


def test_batched_regression_metrics_equal_scikit_learn_row_by_row():
    rng = np.random.default_rng(5)
    y_true, y_pred = rng.normal(0, 1, (5, 12)), rng.normal(0, 1, (5, 12))
    ours = metrics.regression_metrics(y_true, y_pred)
    for r in range(5):
        assert ours["MAE"][r] == pytest.approx(sk.mean_absolute_error(y_true[r], y_pred[r]), rel=1e-12)
        assert ours["RMSE"][r] == pytest.approx(sk.root_mean_squared_error(y_true[r], y_pred[r]), rel=1e-12)
        assert ours["R2_score"][r] == pytest.approx(sk.r2_score(y_true[r], y_pred[r]), rel=1e-12)


def _probabilities(rng: np.random.Generator, n: int, k: int, decimals: int | None = None) -> np.ndarray:
    logits = rng.normal(0, 1.5, (n, k))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if decimals is not None:  # ties, as a TSV of rounded probabilities has
        p = np.round(p, decimals)
        p[:, -1] = 1 - p[:, :-1].sum(axis=1)
    return p


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("decimals", [None, 1])
def test_auc_equals_scikit_learn_roc_auc_score(k, decimals):
    rng = np.random.default_rng(10 * k + (decimals or 0))
    for n in (6, 50, 400):
        y = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])  # every class present
        p = _probabilities(rng, n, k, decimals)
        if k == 2:
            for positive in (0, 1):
                want = sk.roc_auc_score(y == positive, p[:, positive])
                assert metrics.roc_auc(y, p, positive_class=positive) == pytest.approx(want, rel=1e-12)
        else:
            want = sk.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(k)))
            assert metrics.roc_auc(y, p) == pytest.approx(want, rel=1e-12)


def test_batched_auc_equals_scikit_learn_row_by_row():
    rng = np.random.default_rng(7)
    for k in (2, 4):
        p = _probabilities(rng, 60, k, decimals=2)
        rows = rng.integers(0, 60, (8, 60))
        y = rng.integers(0, k, 60)
        y[:k] = np.arange(k)
        rows[:, :k] = np.arange(k)  # every class in every resample
        batched = metrics.roc_auc(y[rows], p[rows])
        for r, index in enumerate(rows):
            want = (sk.roc_auc_score(y[index] == 0, p[index, 0]) if k == 2
                    else sk.roc_auc_score(y[index], p[index], multi_class="ovr", labels=list(range(k))))  # fmt: skip
            assert batched[r] == pytest.approx(want, rel=1e-12)


def test_auc_is_nan_where_scikit_learn_says_it_is_undefined():
    p = _probabilities(np.random.default_rng(0), 5, 3)
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(sk.roc_auc_score(np.zeros(5, dtype=int), p[:, 0]))
    assert np.isnan(metrics.roc_auc(np.zeros(5, dtype=int), p[:, :2]))  # one class only
    assert np.isnan(metrics.roc_auc(np.array([0, 1, 0, 1, 0]), p))  # class 2 absent
    assert np.isnan(
        metrics.roc_auc(np.array([0, 1, 2]), np.array([[NAN, 0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.1, 0.8]]))
    )


def _frame(y: np.ndarray, p: np.ndarray, mode_ids: np.ndarray | None = None) -> pd.DataFrame:
    n = len(y)
    frame = pd.DataFrame({"participant_id": [f"sub-{i:03d}" for i in range(n)], "session_id": "ses-M000",
                          "patch_id": 0 if mode_ids is None else mode_ids, "true_label": y,
                          "predicted_label": p.argmax(axis=1)})  # fmt: skip
    for k in range(p.shape[1]):
        frame[f"proba{k}"] = p[:, k]
    return frame


def test_metrics_table_of_three_classes_has_the_one_vs_rest_auc():
    rng = np.random.default_rng(11)
    y = np.concatenate([np.arange(3), rng.integers(0, 3, 57)])
    p = _probabilities(rng, 60, 3, decimals=2)
    table = tables.metrics_for_predictions(_frame(y, p), "classification", 3, loss=0.3, n_resamples=300)
    values = table.set_index("Metrics")["AUC"]
    want = sk.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=[0, 1, 2])
    assert list(table.columns)[-2:] == ["loss", "AUC"] and values["Values"] == pytest.approx(want, rel=1e-12)
    assert values["Lower bound CI"] < want < values["Upper bound CI"]


def test_a_table_without_probabilities_has_no_auc():
    rng = np.random.default_rng(12)
    frame = _frame(rng.integers(0, 2, 20), _probabilities(rng, 20, 2)).drop(columns="proba1")
    assert "AUC" not in tables.metrics_for_predictions(frame, "classification", 2, n_resamples=50).columns


def test_each_network_of_a_multi_network_model_has_its_auc():
    rng = np.random.default_rng(13)
    y = np.repeat(np.arange(20) % 2, 2)
    p, parts = _probabilities(rng, 40, 2, decimals=1), np.tile([0, 1], 20)
    table = evaluation.part_metrics(_frame(y, p, parts), "classification", "patch", 2, {0: 0.1, 1: 0.2})
    for part in (0, 1):
        rows = parts == part
        want = sk.roc_auc_score(y[rows] == 0, p[rows, 0])
        assert table.loc[part, "AUC"] == pytest.approx(want, rel=1e-12) and list(table.columns)[-1] == "AUC"


def test_reconstruction_mae_mse_and_rmse_per_image_equal_scikit_learn():
    """The per-image MAE, MSE and RMSE the reconstruction tables hold (ops.recon_stats), as
    scikit-learn computes them over the image's voxels; the table's values are their means."""
    import torch

    from neuroexec import ops

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 6, 7, 5, generator=generator, dtype=torch.float64)
    y = torch.rand(3, 1, 6, 7, 5, generator=generator, dtype=torch.float64)
    stats = ops.recon_stats(x, y)
    for i in range(3):
        a, b = y[i].flatten().numpy(), x[i].flatten().numpy()
        assert float(stats.mae()[i]) == pytest.approx(sk.mean_absolute_error(a, b), rel=1e-10)
        assert float(stats.mse()[i]) == pytest.approx(sk.mean_squared_error(a, b), rel=1e-10)
        assert float(stats.rmse()[i]) == pytest.approx(sk.root_mean_squared_error(a, b), rel=1e-10)
    table = metrics.reconstruction_metrics(stats.mae().numpy(), stats.rmse().numpy(), [30.0] * 3, [0.5] * 3)
    assert table["MAE"] == pytest.approx(
        np.mean([sk.mean_absolute_error(y[i].flatten(), x[i].flatten()) for i in range(3)])
    )
