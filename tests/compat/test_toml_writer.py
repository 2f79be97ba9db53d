"""The TOML emitter: what it writes parses back (tomllib) to the same document."""

from __future__ import annotations

import math

import pytest
import tomllib

from neuroexec.spec.toml_writer import dumps


def test_round_trip_of_every_value_kind():
    doc = {
        "version": 1,
        "compute": {"device": "cpu", "amp": False, "batch_size": 2},
        "datasets": {
            "a-b": {"caps": '/x/"quoted"\\path\n', "participants": "/é/ü.tsv"},
            "multi": {"cohorts": [{"name": "c1", "caps": "/c1", "participants": "/p1"}, {"name": "c2", "caps": "/c2", "participants": "/p2"}]},
        },
        "models": {"m": {"maps": "/m", "train": {"learning_rate": 1e-4, "selection_metrics": ["loss", "BA"]}, "split": {"splits": [0, 2]}}},
        "groups": {"g": {"models": ["m"], "save_tensors": {}, "interpret": [{"name": "x", "keep_true": False, "vmax": 0.25}]}},
        "odd key": {"k": -3},
    }  # fmt: skip
    assert tomllib.loads(dumps(doc)) == doc


def test_floats_keep_their_exact_value():
    values = [1e-4, 0.1 + 0.2, 3.0, 1e300]
    back = tomllib.loads(dumps({"v": values}))["v"]
    assert back == values and all(isinstance(v, float) for v in back)


@pytest.mark.parametrize("bad", [math.nan, math.inf, object()])
def test_refuses_values_toml_cannot_hold(bad):
    with pytest.raises((ValueError, TypeError)):
        dumps({"v": bad})
