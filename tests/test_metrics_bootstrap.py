"""metrics.bootstrap_table against scipy.stats.bootstrap (paired, percentile): with the same seed and
batch they draw the same resamples and give the same intervals and SE; with other seeds they agree
within Monte-Carlo error. Where a metric is undefined in some resamples (a class absent), scipy's
interval is nan and neuroexec's leaves those resamples out: why the batched one stays (README)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from neuroexec import metrics

N_RESAMPLES = 3000


def _classification(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    p = np.where(rng.random(n) < 0.75, y, 1 - y)
    probabilities = np.clip(0.5 + (0.5 - y) * rng.random(n) + rng.normal(0, 0.2, n), 0, 1)
    scores = np.stack([probabilities, 1 - probabilities], axis=1)

    def compute(i: np.ndarray) -> dict:
        values = metrics.classification_metrics(y[i], p[i], 2)
        return {"accuracy": values["accuracy"], "BA": values["BA"], "AUC": metrics.roc_auc(y[i], scores[i])}

    return compute


def _regression(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(70, 8, n)
    p = y + rng.normal(0, 4, n)
    return lambda i: metrics.regression_metrics(y[i], p[i])


CASES = {"classification-60": (_classification, 60), "classification-200": (_classification, 200),
         "regression-40": (_regression, 40)}  # fmt: skip


def _scipy(compute, n: int, seed: int, batch: int | None = None):
    names = list(compute(np.arange(n)))

    def statistic(i: np.ndarray, axis: int = -1) -> np.ndarray:
        values = compute(i)
        return np.stack([np.asarray(values[name], dtype=np.float64) for name in names])

    result = stats.bootstrap((np.arange(n),), statistic, n_resamples=N_RESAMPLES, batch=batch, vectorized=True,
                             method="percentile", rng=np.random.default_rng(seed))  # fmt: skip
    low, high = result.confidence_interval
    return {name: (low[k], high[k], result.standard_error[k]) for k, name in enumerate(names)}


@pytest.mark.parametrize("case", list(CASES))
def test_same_seed_same_resamples_same_interval_as_scipy(case):
    make, n = CASES[case]
    compute = make(n, 1)
    ours = metrics.bootstrap_table(compute, n, n_resamples=N_RESAMPLES, seed=7).set_index("Metrics")
    theirs = _scipy(
        compute, n, seed=7, batch=min(N_RESAMPLES, 2_000_000 // n)
    )  # the chunks bootstrap_table draws
    for name, (low, high, se) in theirs.items():
        got = ours[name]
        assert got["Lower bound CI"] == pytest.approx(low, rel=1e-12), name
        assert got["Upper bound CI"] == pytest.approx(high, rel=1e-12), name
        assert got["SE"] == pytest.approx(se, rel=1e-9), name


@pytest.mark.parametrize("case", list(CASES))
def test_other_seeds_agree_with_scipy_within_monte_carlo_error(case):
    """Two independent runs of 3000 resamples: a 2.5% quantile's Monte-Carlo SD is about 0.05 of the
    bootstrap SE (sqrt(q (1 - q) / B) over the normal density at the quantile); 0.3 SE is 6 of them."""
    make, n = CASES[case]
    compute = make(n, 2)
    ours = metrics.bootstrap_table(compute, n, n_resamples=N_RESAMPLES, seed=0).set_index("Metrics")
    for name, (low, high, se) in _scipy(compute, n, seed=12345).items():
        got = ours[name]
        assert abs(got["Lower bound CI"] - low) <= 0.3 * se, (name, got["Lower bound CI"], low, se)
        assert abs(got["Upper bound CI"] - high) <= 0.3 * se, (name, got["Upper bound CI"], high, se)
        assert got["SE"] == pytest.approx(se, rel=0.1), name


def test_scipy_gives_no_interval_where_some_resamples_lack_a_class():
    y, p = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 0, 1, 1, 0])

    def compute(i: np.ndarray) -> dict:
        return {"sensitivity": metrics.classification_metrics(y[i], p[i], 2)["sensitivity"]}

    ours = metrics.bootstrap_table(compute, 6, n_resamples=N_RESAMPLES, seed=0).set_index("Metrics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _scipy(compute, 6, seed=0)["sensitivity"]
    assert np.isnan(theirs[0]) and np.isnan(theirs[1])  # ~1.6% of the resamples have no class 0
    assert 0.0 <= ours.loc["Lower bound CI", "sensitivity"] < ours.loc["Upper bound CI", "sensitivity"] <= 1.0
