"""Metrics tables as the page shows them: each value with its bootstrap confidence interval, as the
metrics TSVs of a MAPS hold them (rows `Values`, `Lower bound CI`, `Upper bound CI`), one row per split,
and the mean ± SD across splits.

>>> Estimate(0.75, 0.5, 1.0).text()
'0.750 [0.500, 1.000]'
>>> mean_sd([0.5, 0.7])
'0.600 ± 0.141'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neuroexec.html_report.elements import table

VALUES, LOWER, UPPER = "Values", "Lower bound CI", "Upper bound CI"


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its bootstrap CI (NaN where the table has none: N/A, the loss's CI)."""

    value: float
    lower: float = math.nan
    upper: float = math.nan

    def text(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.lower) or math.isnan(self.upper):
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.lower:.3f}, {self.upper:.3f}]"


def read_metrics(path: Path) -> dict[str, Estimate]:
    """The metrics of a ClinicaDL metrics TSV by column, in its order; {} if absent or unreadable."""
    try:
        frame = pd.read_csv(path, sep="\t", index_col=0, na_values=["N/A"])
        rows = [frame.loc[name] if name in frame.index else None for name in (VALUES, LOWER, UPPER)]
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    if rows[0] is None:
        return {}
    found = {}
    for column in frame.columns:
        numbers = [_number(row[column]) if row is not None else math.nan for row in rows]
        found[str(column)] = Estimate(*numbers)
    return found


def _number(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def mean_sd(values: list[float]) -> str:
    """Mean ± sample SD of the finite values ('n/a' when none; the mean alone for one)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    if len(finite) == 1:
        return f"{finite[0]:.3f}"
    return f"{np.mean(finite):.3f} ± {np.std(finite, ddof=1):.3f}"


def metrics_table(by_column: dict[str, dict[str, Estimate]]) -> str:
    """One row per metric, one column per label (`split-0`, ...) with the value and its CI, then, for
    several columns, the mean ± SD across them (of the values: each split's CI stays in its column).

    >>> "<td>0.600 ± 0.141</td>" in metrics_table({"split-0": {"BA": Estimate(0.5)}, "split-1": {"BA": Estimate(0.7)}})
    True
    """
    metrics: list[str] = []
    for found in by_column.values():
        metrics += [m for m in found if m not in metrics]
    headers = ["metric", *by_column]
    if len(by_column) > 1:
        headers.append(f"mean ± SD ({len(by_column)} splits)")
    rows = []
    for metric in metrics:
        cells = [found.get(metric, Estimate(math.nan)) for found in by_column.values()]
        row = [metric, *(c.text() for c in cells)]
        if len(by_column) > 1:
            row.append(mean_sd([c.value for c in cells]))
        rows.append(row)
    return table(headers, rows, css="metrics")
