"""predict's metrics table holds the AUC of the probabilities its prediction table holds (scikit-learn's
roc_auc_score of the positive class, class 0 as for the sensitivity), as a last column after ClinicaDL's."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from neuroexec.inference.predict import predict_group


def test_predict_writes_the_auc_of_its_predictions(bench):
    predict_group(bench.task(), bench.ctx)
    pred = pd.read_csv(bench.maps.prediction_tsv(0, "loss", "test", "image"), sep="\t")
    table = pd.read_csv(bench.maps.metrics_tsv(0, "loss", "test", "image"), sep="\t").set_index("Metrics")
    assert list(table.columns)[-2:] == ["loss", "AUC"]
    assert pred.true_label.nunique() == 2
    want = roc_auc_score(pred.true_label == 0, pred.proba0)
    assert table.loc["Values", "AUC"] == pytest.approx(want, rel=1e-12)
    assert table.loc["Lower bound CI", "AUC"] <= table.loc["Upper bound CI", "AUC"]
