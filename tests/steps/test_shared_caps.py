"""Two specs that read one CAPS keep each other's extraction records (issue 14, rule 12)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from neuroexec.context import RunContext
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.helpers import make_tiny_caps

EXTRACT = "dataset.adni.extract[image]"
TRAIN_SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
[datasets.adni]
caps = "data/caps"
participants = "data/train.tsv"
[models.cnn]
maps = "maps/cnn"
dataset = "adni"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
"""
# The same dataset name, the same CAPS, other participants: the held-out sessions, on the trained model.
TEST_SPEC = """
version = 1
[compute]
workers = 0
batch_size = 4
[datasets.adni]
caps = "data/caps"
participants = "data/test.tsv"
[models.cnn]
maps = "maps/cnn"
[groups.test]
dataset = "adni"
models = ["cnn"]
splits = [0]
"""


def project(tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A CAPS of 8 subjects x 2 sessions; train.tsv: the first session of 6 subjects; test.tsv: the first
    session of the other 2. Returns (train spec, test spec, every session)."""
    _, tsv = make_tiny_caps(tmp_path / "data/caps", n_subjects=8, shape=(12, 14, 12), seed=1, sessions=2)
    everyone = pd.read_csv(tsv, sep="\t", dtype=str)
    subjects = sorted(everyone["participant_id"].unique())
    first = everyone.drop_duplicates("participant_id")
    first[first["participant_id"].isin(subjects[:6])].to_csv(
        tmp_path / "data/train.tsv", sep="\t", index=False
    )
    first[first["participant_id"].isin(subjects[6:])].to_csv(
        tmp_path / "data/test.tsv", sep="\t", index=False
    )
    (tmp_path / "train.toml").write_text(TRAIN_SPEC)
    (tmp_path / "test.toml").write_text(TEST_SPEC)
    return tmp_path / "train.toml", tmp_path / "test.toml", everyone


def actions(path: Path) -> dict[str, tuple[str, list[str]]]:
    return {p.step.id: (p.action, p.reasons) for p in make_plan(load_spec(path)).steps}


def run(path: Path, target: str | None = None) -> list[str]:
    ctx = RunContext(reporter=Reporter(quiet=True))
    return apply(make_plan(load_spec(path)), ctx, target=target).ran


def test_two_specs_on_one_caps_stay_up_to_date_when_applied_alternately(tmp_path):
    train, test, _ = project(tmp_path)
    assert EXTRACT in run(train)
    assert run(test) == [
        EXTRACT,
        "group.test.define[cnn]",
        "group.test.predict[cnn/split-0/best-loss]",
    ]
    for spec in (train, test, train, test):
        plan = actions(spec)
        assert {a for a, _ in plan.values()} == {"="}, plan
        assert run(spec) == []


def test_a_session_added_to_one_spec_replans_its_extraction_only_with_the_true_reason(tmp_path):
    train, test, everyone = project(tmp_path)
    run(train)
    run(test)
    tsv = tmp_path / "data/test.tsv"
    frame = pd.read_csv(tsv, sep="\t", dtype=str)
    added = everyone[everyone["participant_id"] == frame["participant_id"].iloc[0]].iloc[[1]]
    pd.concat([frame, added]).to_csv(tsv, sep="\t", index=False)
    participant, session = added["participant_id"].iloc[0], added["session_id"].iloc[0]

    action, reasons = actions(test)[EXTRACT]
    assert action == "~"
    assert any(r.startswith("input ") and r.endswith("test.tsv changed") for r in reasons), reasons
    new = [r for r in reasons if "is new" in r]
    assert len(new) == 1 and f"subjects/{participant}/{session}/" in new[0], reasons
    assert not any("no longer used" in r for r in reasons), reasons
    assert {a for a, _ in actions(train).values()} == {"="}  # the other spec's records are untouched
    # (the data group itself is now a redefinition, refused without overwrite: extraction alone here)
    assert run(test, target=EXTRACT) == [EXTRACT]
    assert {a for a, _ in actions(train).values()} == {"="}
    assert actions(test)[EXTRACT][0] == "="


def test_a_record_under_the_bare_step_id_still_counts_for_its_own_participants(tmp_path):
    """A CAPS extracted by an earlier neuroexec (one record per step id) is not extracted, nor its
    models retrained, again; another participants list gets a record of its own."""
    train, test, _ = project(tmp_path)
    run(train)
    state = tmp_path / "data/caps/.neuroexec/state.json"
    data = json.loads(state.read_text())
    (key,) = [k for k in data["steps"] if k.startswith(EXTRACT)]
    assert key != EXTRACT and "train.tsv" in key
    data["steps"][EXTRACT] = data["steps"].pop(key)
    state.write_text(json.dumps(data))
    assert {a for a, _ in actions(train).values()} == {"="}
    assert actions(test)[EXTRACT] == ("+", [])
    run(test)
    assert {a for a, _ in actions(train).values()} == {"="}
    assert {a for a, _ in actions(test).values()} == {"="}


def test_an_extraction_keeps_the_manifest_entries_another_one_wrote_meanwhile(tmp_path):
    """Two datasets reading one CAPS (here, two extractions of disjoint sessions, the second starting
    while the first runs): the manifest keeps the records of both."""
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12), seed=1)
    frame = load_participants(tsv)
    first, second = frame.iloc[:2], frame.iloc[2:]

    class OtherExtractionMidway(Reporter):
        def iterate(self, items, total=None, desc=""):
            for i, item in enumerate(items):
                if i == 1:
                    run_extraction(plan_extraction(second, caps, "image"), normalize=True)
                yield item

    run_extraction(plan_extraction(first, caps, "image"), normalize=True, reporter=OtherExtractionMidway())
    assert {i.reason for i in plan_extraction(frame, caps, "image", normalize=True).items} == {"up to date"}
