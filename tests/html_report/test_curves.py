"""The best epochs the curves mark are found as the training finds them: the first epoch that beats
every earlier one (a tie is no improvement, a NaN never is), lowest loss, highest BA."""

from __future__ import annotations

import math

import pandas as pd

from neuroexec.html_report.curves import Curve, curve_metrics, read_curve


def test_best_epoch_is_the_last_strict_improvement():
    rows = pd.DataFrame(
        {
            "epoch": [0, 1, 2, 3, 4],
            "loss_valid": [0.5, 0.4, 0.4, math.nan, 0.45],
            "BA_valid": [0.5, 0.7, 0.7, 0.6, 0.8],
        }
    )
    curve = Curve("split-0", rows)
    assert curve.best_epoch("loss") == 1
    assert curve.best_epoch("BA") == 4
    assert curve.best_epoch("MAE") is None
    assert curve_metrics([curve], ["BA", "MAE"]) == ["loss", "BA"]


def test_evaluation_steps_rows_are_read_as_one_row_per_epoch(tmp_path):
    log = tmp_path / "training.tsv"
    pd.DataFrame(
        {"epoch": [0, 0, 1, 1], "iteration": [2, 4, 2, 4], "loss_valid": [0.9, 0.8, 0.7, 0.6]}
    ).to_csv(log, sep="\t", index=False)
    curve = read_curve("split-0", log)
    assert curve.rows["loss_valid"].tolist() == [0.8, 0.6]
    assert read_curve("split-0", tmp_path / "absent.tsv") is None
