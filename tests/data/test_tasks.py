"""The data-side tasks (neuroexec/data/tasks.py): what extract, split and group-define steps work on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuroexec.data.caps import CapsLayout
from neuroexec.data.tasks import ExtractTask, GroupDefineTask, SplitTask, group_config
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.spec.model import Cohort, Dataset, Group, Model, Split
from tests.helpers import make_tiny_caps


def _dataset(caps: Path, tsv: Path, **kw) -> Dataset:
    return Dataset(name="d", cohorts=(Cohort("single", caps, tsv),), **kw)


def test_extract_config_holds_the_patch_settings_only_for_patches(tmp_path: Path):
    ds = _dataset(tmp_path / "caps", tmp_path / "p.tsv", patch_layout="clinicadl")
    image = ExtractTask(ds, ExtractionMode.IMAGE).config()
    patch = ExtractTask(ds, ExtractionMode.patch(24, 12)).config()
    assert (image["mode"], image["patch_size"], image["stride"], image["patch_layout"]) == (
        "image",
        None,
        None,
        None,
    )
    assert "patch_normalization" not in image
    assert (patch["mode"], patch["patch_size"], patch["stride"], patch["patch_layout"]) == (
        "patch",
        24,
        12,
        "clinicadl",
    )
    assert "patch_normalization" in patch


def test_extract_inputs_and_outputs_are_this_datasets_sessions(tmp_path: Path):
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12), extract=True)
    ds = _dataset(caps, tsv)
    task = ExtractTask(ds, ExtractionMode.IMAGE)
    inputs = task.inputs()
    assert inputs[0] == tsv and len(inputs) == 5 and all(p.name.endswith(".nii.gz") for p in inputs[1:])
    # Two of the four sessions listed: the other two's tensors are another spec's.
    lines = tsv.read_text().splitlines()
    (tmp_path / "two.tsv").write_text("\n".join(lines[:3]) + "\n")
    outputs = ExtractTask(_dataset(caps, tmp_path / "two.tsv"), ExtractionMode.IMAGE).outputs()
    manifest = CapsLayout(caps).manifest_json("image")
    assert outputs[0] == manifest
    assert len(json.loads(manifest.read_text())["entries"]) == 4 and len(outputs) == 1 + 2
    assert all(p.is_file() for p in outputs)


def test_split_of_a_reconstruction_keeps_no_label_and_reads_the_users_split_files(tmp_path: Path):
    (tmp_path / "p.tsv").write_text("participant_id\tsession_id\n")
    folder = tmp_path / "splits/train/split-0"
    folder.mkdir(parents=True)
    (folder / "data.tsv").write_text("participant_id\tsession_id\n")
    ds = _dataset(tmp_path / "caps", tmp_path / "p.tsv")
    model = Model(name="ae", maps=tmp_path / "maps", dataset="d", task="reconstruction",
                  split=Split(directory=tmp_path / "splits"))  # fmt: skip
    task = SplitTask(model, ds)
    assert task.label is None and task.config()["label"] is None
    assert task.inputs() == (tmp_path / "p.tsv", folder / "data.tsv")
    assert SplitTask(Model(name="cnn", maps=tmp_path, dataset="d"), ds).label == "diagnosis"


def test_group_define_label_of_an_unreadable_pretrained_maps_is_none(tmp_path: Path):
    ds = _dataset(tmp_path / "caps", tmp_path / "p.tsv")
    group = Group(name="test", models=("m",), dataset="d", diagnoses=("AD",))
    pretrained = Model(name="m", maps=tmp_path / "absent", dataset=None)
    task = GroupDefineTask(group, pretrained, ds)
    assert task.label() is None  # the define step names the MAPS problem; the plan does not fail here
    assert task.config() == {**group_config(group), "skip_leak_check": False}
    assert task.config()["diagnoses"] == ["AD"]
    assert GroupDefineTask(Group(name="t", models=("m",), use_labels=False), pretrained, ds).label() is None
    assert GroupDefineTask(Group(name="t", models=("m",), label="age"), pretrained, ds).label() == "age"


def test_group_sessions_keep_the_label_of_the_group_or_the_model(tmp_path: Path):
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    ds = _dataset(caps, tsv)
    trained = Model(name="m", maps=tmp_path / "maps", dataset="d")
    frame = GroupDefineTask(
        Group(name="test", models=("m",), dataset="d", diagnoses=("AD",)), trained, ds
    ).sessions()
    assert set(frame["diagnosis"]) == {"AD"} and len(frame) == 2 and set(frame["cohort"]) == {"single"}
    unlabelled = GroupDefineTask(Group(name="test", models=("m",), use_labels=False), trained, ds).sessions()
    assert len(unlabelled) == 4
    # A pretrained model's label comes from its MAPS: an unreadable one is named (label() says None).
    pretrained = GroupDefineTask(
        Group(name="test", models=("m",)), Model(name="m", maps=tmp_path / "x", dataset=None), ds
    )
    with pytest.raises(InputError, match="not a MAPS folder"):
        pretrained.sessions()


def test_a_cohort_of_several_may_lack_a_diagnosis_the_cohorts_together_have(tmp_path: Path):
    """ClinicaDL's multi-cohort training: a cohort with AD only beside one with AD and CN trains on AD and
    CN; a diagnosis that no cohort has is an error naming every cohort's participants file."""
    from neuroexec.data.tasks import dataset_frame

    files = {}
    for name, rows in (
        ("A", "sub-a1\tses-M000\tAD\nsub-a2\tses-M000\tCN\n"),
        ("B", "sub-b1\tses-M000\tAD\n"),
    ):
        files[name] = tmp_path / f"{name}.tsv"
        files[name].write_text("participant_id\tsession_id\tdiagnosis\n" + rows)
    both = Dataset("both", tuple(Cohort(n, tmp_path / n, f) for n, f in files.items()), multi_cohort=True)
    frame = dataset_frame(both, "diagnosis", ("AD", "CN"), check_images=False)
    assert list(zip(frame.participant_id, frame.cohort)) == [
        ("sub-a1", "A"),
        ("sub-a2", "A"),
        ("sub-b1", "B"),
    ]
    only_b = dataset_frame(both, "diagnosis", ("CN",), check_images=False)  # B keeps no row: left out
    assert list(only_b.participant_id) == ["sub-a2"]
    with pytest.raises(InputError, match="requested diagnosis MCI found in no cohort's participants") as err:
        dataset_frame(both, "diagnosis", ("AD", "MCI"), check_images=False)
    assert str(files["A"]) in str(err.value) and str(files["B"]) in str(err.value)
    alone = Dataset("b", (Cohort("single", tmp_path / "B", files["B"]),))
    with pytest.raises(InputError, match="requested diagnosis CN not found"):  # one cohort: as before
        dataset_frame(alone, "diagnosis", ("AD", "CN"), check_images=False)
