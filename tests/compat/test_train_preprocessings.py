"""The PREPROCESSING argument of the ClinicaDL-style `train` takes each preprocessing's name (whole
images) and ClinicaDL's JSON record of each: a pet-linear CAPS trains from its prepare-data record,
and the ClinicaDL-style predict reads new data of the model's preprocessing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.compat.train_spec import named_preprocessing
from neuroexec.errors import InputError
from neuroexec.preprocessings import Preprocessing
from tests.helpers import as_preprocessing

PET = Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons")
# The record ClinicaDL 1.6.1's `prepare-data image pet-linear --tracer 18FFDG -suvr pons` writes
# (get_parameters_dict + compute_folder_and_file_type's file_type).
PET_RECORD = {
    "preprocessing": "pet-linear",
    "mode": "image",
    "use_uncropped_image": False,
    "prepare_dl": False,
    "tracer": "18FFDG",
    "suvr_reference_region": "pons",
    "extract_json": "extract_pet.json",
    "file_type": {
        "pattern": "pet_linear/*_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz",
        "description": "",
        "needed_pipeline": "pet-linear",
    },
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("t1-linear", {"mode": "image"}),
        ("t1_linear", {"mode": "image"}),
        ("flair-linear", {"mode": "image", "dataset": {"preprocessing": "flair-linear"}}),
        ("t2-linear", {"mode": "image", "dataset": {"preprocessing": "t2-linear"}}),
        ("extract_image.json", None),
    ],
)
def test_a_preprocessing_name_means_its_whole_images(name, expected):
    assert named_preprocessing(name) == expected


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("pet-linear", "found by their tracer and suvr_reference_region"),
        ("custom", "found by their custom_suffix"),
        ("t1-extensive", "ClinicaDL 1.6.1 cannot read t1-extensive"),
    ],
)
def test_a_name_that_cannot_find_its_images_is_refused(name, words):
    with pytest.raises(InputError) as err:
        named_preprocessing(name)
    assert err.value.field == "PREPROCESSING" and words in str(err.value)


def pet_caps(tiny_data, tmp_path: Path, record: dict) -> Path:
    caps = tmp_path / "caps"
    shutil.copytree(tiny_data["caps"], caps)
    shutil.rmtree(caps / "tensor_extraction")
    for old in caps.glob("subjects/*/*/deeplearning_prepare_data"):
        shutil.rmtree(old)
    as_preprocessing(caps, PET)
    (caps / "tensor_extraction").mkdir()
    (caps / "tensor_extraction/extract_pet.json").write_text(json.dumps(record))
    return caps


def test_train_from_clinicadls_pet_linear_record(tmp_path, tiny_data, capsys):
    caps = pet_caps(tiny_data, tmp_path, PET_RECORD)
    maps = tmp_path / "maps"
    argv = ["train", "classification", str(caps), "extract_pet.json", str(tiny_data["split"]), str(maps),
            "--epochs", "1", "--batch_size", "2", "--no-gpu", "-np", "0", "-s", "0", "-a", "TinyCNN", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    pre = json.loads((maps / "maps.json").read_text())["preprocessing_dict"]
    assert {k: pre[k] for k in ("preprocessing", "tracer", "suvr_reference_region", "file_type")} == {
        k: PET_RECORD[k] for k in ("preprocessing", "tracer", "suvr_reference_region", "file_type")
    }
    assert len(list(caps.glob("subjects/*/*/deeplearning_prepare_data/image_based/pet_linear/*_pet.pt"))) == 8
    # ClinicaDL-style predict on new data: the group's dataset reads the model's preprocessing
    tsv = caps / "participants.tsv"
    argv = ["predict", str(maps), "again", "--caps_directory", str(caps), "--participants_tsv", str(tsv),
            "--skip_leak_check", "--no-gpu", "--n_proc", "0", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert (maps / "split-0/best-loss/again/again_image_level_prediction.tsv").is_file()


def test_a_pet_record_without_its_tracer_names_the_key(tmp_path, tiny_data, capsys):
    caps = pet_caps(tiny_data, tmp_path, {k: v for k, v in PET_RECORD.items() if k != "tracer"})
    argv = ["train", "classification", str(caps), "extract_pet.json", str(tiny_data["split"]), str(tmp_path / "m"),
            "--epochs", "1", "--no-gpu", "-s", "0", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "tracer: preprocessing pet-linear needs tracer" in capsys.readouterr().err
