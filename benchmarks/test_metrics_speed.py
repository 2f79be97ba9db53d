"""The speed of a metrics table: ClinicaDL's 3,000 bootstrap resamples of a 500-row prediction table
should take under 1 s on one CPU core (target; reported, not asserted). `bootstrap_table` draws the
resamples as one [R, n] index array and the metrics are computed on all rows at once, so a predict
step's tables cost no more than its forward passes. (tests/test_metrics.py checks that the resamples
are drawn in batches; this file measures what that buys.)"""

from __future__ import annotations

import numpy as np

from neuroexec.metrics import bootstrap_table, classification_metrics


def test_bootstrap_of_3000_resamples_of_500_rows(benchmark):
    rng = np.random.default_rng(4)
    y, p = rng.integers(0, 2, 500), rng.integers(0, 2, 500)

    def table():
        return bootstrap_table(lambda i: classification_metrics(y[i], p[i], 2), 500, n_resamples=3000)

    benchmark.extra_info.update(role="neuroexec", rows=500, resamples=3000, target_s=1.0)
    result = benchmark.pedantic(table, rounds=3, iterations=1, warmup_rounds=1)
    assert list(result["Metrics"]) == ["Values", "Lower bound CI", "Upper bound CI", "SE"]
