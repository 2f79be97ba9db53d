"""The seeds' data group consistency rule, as spec building."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from neuroexec.compat.group_spec import GroupOptions, check_models, group_spec_dict, model_name
from neuroexec.errors import InputError, UnsafeCheckpointError
from neuroexec.spec import spec_from_dict


def test_new_group_needs_caps_and_participants(clinicadl_maps, tiny_data):
    with pytest.raises(InputError, match="both required"):
        group_spec_dict(
            GroupOptions(clinicadl_maps, "test", caps_directory=tiny_data["test_caps"]), predict=True
        )
    doc = group_spec_dict(
        GroupOptions(
            clinicadl_maps,
            "test",
            tiny_data["test_caps"],
            tiny_data["test_tsv"],
            selection_metrics=["best_loss"],
        ),
        predict=True,
    )
    spec = spec_from_dict(doc, clinicadl_maps / "x.toml")
    group = spec.groups["test"]
    assert group.predict and group.selection_metrics == ("loss",)
    assert spec.datasets[group.dataset].caps == tiny_data["test_caps"]
    assert spec.models["maps"].pretrained


def test_existing_group_refuses_new_data_unless_overwrite(clinicadl_maps, tiny_data):
    folder = clinicadl_maps / "groups" / "test"
    folder.mkdir()
    # A group ClinicaDL wrote: caps_directory recorded, participants only as data.tsv.
    (folder / "maps.json").write_text(
        json.dumps({"caps_directory": str(tiny_data["test_caps"]), "multi_cohort": False})
    )
    frame = pd.read_csv(tiny_data["test_tsv"], sep="\t", dtype=str).assign(cohort="single")
    frame.to_csv(folder / "data.tsv", sep="\t", index=False)
    given = GroupOptions(clinicadl_maps, "test", tiny_data["caps"], tiny_data["tsv"])
    with pytest.raises(InputError, match="already exists"):
        group_spec_dict(given, predict=True)
    given.overwrite = True
    doc = group_spec_dict(given, predict=True)
    assert doc["groups"]["test"]["overwrite"] is True
    assert doc["datasets"]["test-data"]["caps"] == str(tiny_data["caps"])

    reused = group_spec_dict(GroupOptions(clinicadl_maps, "test"), predict=True)
    ds = reused["datasets"]["test-data"]
    assert ds["caps"] == str(tiny_data["test_caps"])
    assert pd.read_csv(ds["participants"], sep="\t", dtype=str).equals(
        pd.read_csv(folder / "data.tsv", sep="\t", dtype=str)
    )


def test_multi_cohort_tables(clinicadl_maps, tiny_data, tmp_path):
    (tmp_path / "caps.tsv").write_text(f"cohort\tpath\nA\t{tiny_data['test_caps']}\nB\t{tiny_data['caps']}\n")
    (tmp_path / "tsv.tsv").write_text(
        f"cohort\tpath\tdiagnoses\nA\t{tiny_data['test_tsv']}\tAD,CN\nB\t{tiny_data['tsv']}\tAD\n"
    )
    doc = group_spec_dict(
        GroupOptions(clinicadl_maps, "mc", tmp_path / "caps.tsv", tmp_path / "tsv.tsv", multi_cohort=True)
    )
    assert doc["datasets"]["mc-data"]["cohorts"] == [
        {"name": "A", "caps": str(tiny_data["test_caps"]), "participants": str(tiny_data["test_tsv"])},
        {"name": "B", "caps": str(tiny_data["caps"]), "participants": str(tiny_data["tsv"])},
    ]


def test_training_groups_of_a_clinicadl_maps_are_read_from_its_records(clinicadl_maps):
    doc = group_spec_dict(GroupOptions(clinicadl_maps, "validation"), predict=True)
    (model,) = doc["models"].values()
    assert model == {"maps": str(clinicadl_maps.resolve())}  # the MAPS as it is: no training spec needed
    group = doc["groups"]["validation"]
    assert group["from_training"] == "validation" and "dataset" not in group


def test_training_groups_need_recorded_training_data(clinicadl_maps):
    import shutil

    shutil.rmtree(clinicadl_maps / "groups" / "validation")
    with pytest.raises(InputError, match="records none"):
        group_spec_dict(GroupOptions(clinicadl_maps, "validation"), predict=True)


def test_model_name_follows_the_training_state(tmp_path):
    (tmp_path / ".neuroexec").mkdir()
    assert model_name(tmp_path) == "maps"
    (tmp_path / ".neuroexec" / "state.json").write_text(
        json.dumps({"steps": {"model.cnn.train[split-0]": {}}})
    )
    assert model_name(tmp_path) == "cnn"


class Evil:
    def __reduce__(self):
        return (print, ("this would run",))


def test_unsafe_checkpoint_is_refused_before_running(clinicadl_maps):
    import torch

    torch.save(
        {"model": {}, "epoch": 0, "name": "x", "extra": Evil()},
        clinicadl_maps / "split-1" / "best-loss" / "model.pth.tar",
    )
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        check_models(clinicadl_maps, ["loss"])
    with pytest.raises(InputError, match="selection metric 'MAE'"):
        check_models(clinicadl_maps, ["MAE"])


def test_reused_group_keeps_the_options_it_was_defined_with(clinicadl_maps, tiny_data):
    folder = clinicadl_maps / "groups" / "test"
    folder.mkdir()
    (folder / "maps.json").write_text(
        json.dumps(
            {
                "caps_directory": str(tiny_data["test_caps"]),
                "multi_cohort": False,
                "participants": [str(tiny_data["test_by_diagnosis"])],
            }
        )  # fmt: skip
    )
    config = {
        "dataset": "test-data",
        "label": "sex",
        "use_labels": False,
        "diagnoses": ["AD"],
        "skip_leak_check": True,
    }
    (clinicadl_maps / ".neuroexec").mkdir()
    (clinicadl_maps / ".neuroexec" / "state.json").write_text(
        json.dumps({"steps": {"group.test.define[maps]": {"config": config}}})
    )
    group = group_spec_dict(GroupOptions(clinicadl_maps, "test"), predict=True)["groups"]["test"]
    assert group["diagnoses"] == ["AD"] and group["skip_leak_check"] is True
    assert group["label"] == "sex" and group["use_labels"] is False
    # A flag given now wins over the recorded option.
    group = group_spec_dict(GroupOptions(clinicadl_maps, "test", diagnoses=["CN"]), predict=True)["groups"][
        "test"
    ]
    assert group["diagnoses"] == ["CN"]


def test_new_group_on_a_maps_without_training_participants_names_the_flag(clinicadl_maps, tiny_data):
    (clinicadl_maps / "groups" / "train+validation.tsv").unlink()
    opts = GroupOptions(clinicadl_maps, "test", tiny_data["test_caps"], tiny_data["test_tsv"])
    with pytest.raises(InputError, match="--skip_leak_check"):
        group_spec_dict(opts, predict=True)
    opts.skip_leak_check = True
    assert group_spec_dict(opts, predict=True)["groups"]["test"]["skip_leak_check"] is True
