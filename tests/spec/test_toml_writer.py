"""The spec writer (tomli-w): what it writes parses back (tomllib) to the same document, and it refuses
numbers no spec field takes. Every spec a ClinicaDL-style command builds in any test is checked the
same way by the autouse fixture `specs_round_trip` (tests/conftest.py)."""

from __future__ import annotations

import math

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from neuroexec.spec import toml_writer
from neuroexec.spec.toml_writer import dumps
from tests.helpers import round_trip_checked


def test_round_trip_of_every_value_kind():
    doc = {
        "version": 1,
        "compute": {"device": "cpu", "amp": False, "batch_size": 2},
        "datasets": {
            "a-b": {"caps": '/x/"quoted"\\path\n\t', "participants": "/é/ü.tsv"},
            "multi": {"cohorts": [{"name": "c1", "caps": "/c1", "participants": "/p1"}, {"name": "c2", "caps": "/c2", "participants": "/p2"}]},
        },
        "models": {"m": {"maps": "/m", "train": {"learning_rate": 1e-4, "selection_metrics": ["loss", "BA"]}, "split": {"splits": [0, 2]}}},
        "groups": {"g": {"models": ["m"], "save_tensors": {}, "interpret": [{"name": "x", "keep_true": False, "vmax": 0.25}]}},
        "long": {"tables": [{"name": "n" * 60, "path": "/p" * 30}, {"name": "m", "nested": {"a": [1, 2]}}]},
        "odd key": {"k": -3, "": "empty key", "dotted.key": [[1, 2], []]},
    }  # fmt: skip
    assert tomllib.loads(dumps(doc)) == doc


def test_floats_keep_their_exact_value():
    values = [1e-4, 0.1 + 0.2, 3.0, 1e300, -0.0, 5e-324]
    back = tomllib.loads(dumps({"v": values}))["v"]
    assert back == values and all(isinstance(v, float) for v in back)
    assert math.copysign(1.0, back[4]) == -1.0


def test_tables_read_as_a_person_would_write_them():
    text = dumps({"version": 1, "models": {"cnn": {"task": "regression", "train": {"epochs": 2}}}})
    assert text.splitlines() == ["version = 1", "", "[models.cnn]", 'task = "regression"', "",
                                 "[models.cnn.train]", "epochs = 2"]  # fmt: skip


@pytest.mark.parametrize(
    ("doc", "where"),
    [({"v": math.nan}, "at v "), ({"a": {"b": [1.0, -math.inf]}}, "at a.b[1] "),
     ({"g": [{"x": {"y": math.inf}}]}, "at g[0].x.y ")],
)  # fmt: skip
def test_refuses_nan_and_infinity_naming_where(doc, where):
    with pytest.raises(ValueError, match="no spec field takes nan or infinity") as error:
        dumps(doc)
    assert where in str(error.value)


def test_refuses_values_toml_cannot_hold():
    with pytest.raises(TypeError):
        dumps({"v": object()})


def test_the_round_trip_fixture_catches_a_writer_that_changes_the_meaning(monkeypatch):
    monkeypatch.setattr(toml_writer, "tomli_w", round_trip_checked(lambda doc: "v = 2\n"))
    with pytest.raises(AssertionError, match="does not read back"):
        dumps({"v": 1})
