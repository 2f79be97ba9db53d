"""`train image cnn|autoencoder ...` -> spec: preprocessing JSON, split directory, flags over config."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from neuroexec.compat.train_spec import TrainOptions, preprocessing, split_directory, train_spec_dict
from neuroexec.errors import InputError
from neuroexec.spec import spec_from_dict


def test_preprocessing_json_of_the_caps(tmp_path):
    folder = tmp_path / "caps" / "tensor_extraction"
    folder.mkdir(parents=True)
    content = {
        "preprocessing": "t1-linear",
        "mode": "patch",
        "patch_size": 8,
        "stride_size": 4,
        "use_uncropped_image": True,
    }
    (folder / "extract_patch.json").write_text(json.dumps(content))
    assert preprocessing(tmp_path / "caps", "extract_patch.json") == {
        "mode": "patch",
        "uncropped": True,
        "patch": {"size": 8, "stride": 4},
    }
    assert preprocessing(tmp_path / "caps", "extract_patch") == preprocessing(
        tmp_path / "caps", "extract_patch.json"
    )
    assert preprocessing(tmp_path / "caps", "t1-linear") == {"mode": "image"}
    with pytest.raises(InputError, match="extract_patch.json"):
        preprocessing(tmp_path / "caps", "missing.json")


def test_split_directory_found_below_the_tsv_directory(tiny_data):
    assert split_directory(tiny_data["split"]) == (tiny_data["kfold"], 2)
    assert split_directory(tiny_data["kfold"]) == (tiny_data["kfold"], 2)
    assert split_directory(tiny_data["kfold"] / "split-0") == (tiny_data["kfold"] / "split-0", 1)


def test_participants_are_the_union_of_a_split_without_train_tsv(tiny_data, tmp_path):
    opts = TrainOptions("cnn", tiny_data["caps"], "t1-linear", tiny_data["kfold"], tmp_path / "maps")
    doc = train_spec_dict(opts)
    union = pd.read_csv(doc["datasets"]["data"]["participants"], sep="\t", dtype=str)
    expected = pd.read_csv(tiny_data["tsv"], sep="\t", dtype=str)
    assert sorted(union["participant_id"]) == sorted(expected["participant_id"])
    before = (tmp_path / "maps" / ".neuroexec" / "participants.tsv").stat().st_mtime_ns
    train_spec_dict(opts)  # same content: not rewritten, so a re-run plans nothing new
    assert (tmp_path / "maps" / ".neuroexec" / "participants.tsv").stat().st_mtime_ns == before


def test_flags_become_spec_fields(tiny_data, tmp_path):
    options = {"epochs": 3, "batch_size": 2, "gpu": False, "n_proc": 0, "seed": 4, "deterministic": True,
               "selection_metrics": ["best_loss", "balanced_accuracy"], "split": [1], "architecture": "Conv4_FC3",
               "learning_rate": 1e-3, "diagnoses": ["AD", "CN"]}  # fmt: skip
    doc = train_spec_dict(
        TrainOptions("cnn", tiny_data["caps"], "t1-linear", tiny_data["split"], tmp_path / "m", options)
    )
    spec = spec_from_dict(doc, tmp_path / "spec.toml")
    model = spec.models["cnn"]
    assert model.train.epochs == 3 and model.train.learning_rate == 1e-3
    assert model.train.selection_metrics == ("loss", "BA")
    assert model.compute.device == "cpu" and model.compute.batch_size == 2 and model.compute.workers == 0
    assert model.compute.seed == 4 and model.compute.deterministic
    assert model.split.directory == tiny_data["kfold"] and model.split.indices == (1,)
    assert spec.datasets["data"].participants == tiny_data["split"] / "train.tsv"
    assert model.diagnoses == ("AD", "CN") and model.architecture == "Conv4_FC3"


def test_transfer_from_a_clinicadl_maps(tiny_data, tmp_path, clinicadl_maps):
    options = {"transfer_path": clinicadl_maps}
    doc = train_spec_dict(
        TrainOptions("cnn", tiny_data["caps"], "t1-linear", tiny_data["split"], tmp_path / "m", options)
    )
    # The seed's default selection: best balanced accuracy, which this MAPS has.
    assert doc["models"]["cnn"]["transfer"] == {"maps": str(clinicadl_maps), "selection": "BA"}
    options["transfer_selection_metric"] = "best_loss"
    doc = train_spec_dict(
        TrainOptions("cnn", tiny_data["caps"], "t1-linear", tiny_data["split"], tmp_path / "m", options)
    )
    assert doc["models"]["cnn"]["transfer"]["selection"] == "loss"
