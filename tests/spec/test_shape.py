"""The spec's checks read the frozen Spec (spec/checks.py); only which keys of a table go together is
checked on the TOML (spec/shape.py). Every problem still names the file and its exact key path."""

from __future__ import annotations

import pytest

from neuroexec.errors import SpecError
from neuroexec.spec import load_spec
from neuroexec.spec.checks import semantic_problems
from neuroexec.spec.model import Cohort, Compute, Dataset, Spec
from neuroexec.spec.shape import shape_problems

COHORTS = """
version = 1
[datasets.both]
cohorts = [{ name = "A", caps = "caps_a" }, { name = "B", caps = "caps_b", participants = "p.tsv" }]
"""


def test_a_cohort_entry_missing_a_key_does_not_hide_the_other_cohorts_missing_caps(tmp_path):
    (tmp_path / "p.tsv").write_text("participant_id\tsession_id\n")
    path = tmp_path / "spec.toml"
    path.write_text(COHORTS)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    found = [(p.file, p.key, p.message) for p in info.value.problems]
    file = str(path.resolve())
    assert (
        file,
        "datasets.both.cohorts[0]",
        "missing participants (or `dataset`, another dataset of this spec)",
    ) in found
    assert (file, "datasets.both.cohorts[1].caps", f"CAPS folder not found: {tmp_path / 'caps_b'}") in found
    assert len(found) == 2, found


def test_semantic_problems_need_only_the_resolved_spec(tmp_path):
    cohort = Cohort("A", tmp_path / "nowhere", tmp_path / "p.tsv", key="datasets.both.cohorts[0]")
    spec = Spec(
        tmp_path / "spec.toml", 1, Compute(), {"both": Dataset("both", (cohort,), multi_cohort=True)}, {}, {}
    )
    keys = [p.key for p in semantic_problems(spec)]
    assert keys == ["datasets.both.cohorts[0].caps", "datasets.both.cohorts[0].participants"]


def test_a_borrowed_cohort_is_checked_as_its_own_dataset_only(tmp_path):
    borrowed = Cohort(
        "A", tmp_path / "nowhere", tmp_path / "p.tsv", dataset="a", key="datasets.both.cohorts[0]"
    )
    spec = Spec(
        tmp_path / "spec.toml",
        1,
        Compute(),
        {"both": Dataset("both", (borrowed,), multi_cohort=True)},
        {},
        {},
    )
    assert semantic_problems(spec) == []


@pytest.mark.parametrize(
    "model, key, phrase",
    [({"maps": "m", "train": {"epochs": 1}}, "models.m.train", "only meaningful with `dataset`"),
     ({"maps": "m", "dataset": "d", "patch": {"size": 8}}, "models.m.patch", "need mode = 'patch'"),
     ({"maps": "m", "dataset": "d", "mode": "patch", "patch": {"size": 8}}, None, None)],
)  # fmt: skip
def test_shape_problems_name_keys_given_where_they_mean_nothing(model, key, phrase):
    found = shape_problems({"models": {"m": model}}, "spec.toml")
    if key is None:
        assert found == []
    else:
        (problem,) = found
        assert problem.file == "spec.toml" and problem.key == key and phrase in problem.message
