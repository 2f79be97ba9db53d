"""Every preprocessing ClinicaDL 1.6.1 reads from a CAPS, with its file patterns, folders and records.

The literals below were derived by reading ClinicaDL 1.6.1: `clinica_utils.linear_nii` and
`pet_linear_nii`, `prepare_data_utils.get_parameters_dict`, `compute_folder_and_file_type` (the tensor
subfolder, custom's file_type, `use_uncropped_image` set to None for custom) and `extract_patch_path`
(a patch tag goes before the last `_` of the image's name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from neuroexec.data.caps import CapsLayout, preprocessing_record
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import check_images_exist, load_participants
from neuroexec.errors import InputError
from neuroexec.preprocessings import T1_LINEAR, Preprocessing
from tests.helpers import as_preprocessing, make_tiny_caps

PET = Preprocessing("pet-linear", tracer="18FFDG", suvr_reference_region="pons")
FLAIR = Preprocessing("flair-linear")
CUSTOM = Preprocessing("custom", custom_suffix="segm-graymatter_probability.nii.gz")
CROP_NOTE = "and cropped (matrix size 169×208×179, 1 mm isotropic voxels)"
SPACE = "space-MNI152NLin2009cSym"
PET_NAME = f"sub-01_ses-M000_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz"


@pytest.mark.parametrize(
    ("preprocessing", "uncropped", "file_type"),
    [
        (
            T1_LINEAR,
            False,
            {
                "pattern": f"*{SPACE}_desc-Crop_res-1x1x1_T1w.nii.gz",
                "description": f"T1w Image registered in MNI152NLin2009cSym space using t1-linear pipeline {CROP_NOTE}",
                "needed_pipeline": "t1-linear",
            },
        ),
        (
            FLAIR,
            True,
            {
                "pattern": f"*{SPACE}_res-1x1x1_flair.nii.gz",
                "description": "flair Image registered in MNI152NLin2009cSym space using flair-linear pipeline ",
                "needed_pipeline": "flair-linear",
            },
        ),
        (
            Preprocessing("t2-linear"),
            False,
            {
                "pattern": f"*{SPACE}_desc-Crop_res-1x1x1_T2w.nii.gz",
                "description": f"T2w Image registered in MNI152NLin2009cSym space using t2-linear pipeline {CROP_NOTE}",
                "needed_pipeline": "t2-linear",
            },
        ),
        (
            PET,
            False,
            {
                "pattern": f"pet_linear/*_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz",
                "description": "",
                "needed_pipeline": "pet-linear",
            },
        ),
        (
            Preprocessing("pet-linear", tracer="18FAV45", suvr_reference_region="cerebellumPons"),
            True,
            {
                "pattern": f"pet_linear/*_trc-18FAV45_{SPACE}_res-1x1x1_suvr-cerebellumPons_pet.nii.gz",
                "description": "",
                "needed_pipeline": "pet-linear",
            },
        ),
        (CUSTOM, False, {"pattern": "*segm-graymatter_probability.nii.gz", "description": "Custom suffix"}),
    ],
)
def test_file_type_is_clinicadls(preprocessing, uncropped, file_type):
    assert preprocessing.file_type(uncropped) == file_type


def test_tensors_go_to_clinicadls_subfolder_of_each_preprocessing(tmp_path):
    folders = {
        p.name: CapsLayout(tmp_path, p).tensor_dir("sub-01", "ses-M000", "patch").name
        for p in (T1_LINEAR, FLAIR, PET, CUSTOM, Preprocessing("t2-linear"))
    }
    assert folders == {
        "t1-linear": "t1_linear",
        "flair-linear": "flair_linear",
        "pet-linear": "pet_linear",
        "custom": "custom",
        "t2-linear": "t2_linear",
    }


def test_records_carry_clinicadls_keys_of_the_preprocessing():
    pet = preprocessing_record("image", uncropped=False, prepare_dl=False, preprocessing=PET)
    assert (pet["preprocessing"], pet["tracer"], pet["suvr_reference_region"]) == (
        "pet-linear",
        "18FFDG",
        "pons",
    )
    assert "custom_suffix" not in pet
    custom = preprocessing_record(
        "patch", uncropped=False, prepare_dl=True, patch=(8, 8), preprocessing=CUSTOM
    )
    assert custom == {
        "preprocessing": "custom",
        "custom_suffix": "segm-graymatter_probability.nii.gz",
        "mode": "patch",
        "use_uncropped_image": None,
        "prepare_dl": True,
        "extract_json": "extract_patch.json",
        "patch_size": 8,
        "stride_size": 8,
        "file_type": {"pattern": "*segm-graymatter_probability.nii.gz", "description": "Custom suffix"},
    }
    assert Preprocessing.from_record(custom) == CUSTOM
    assert Preprocessing.from_record(pet) == PET


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


def test_pet_image_found_in_pet_linear_case_insensitively_and_not_another_tracers(tmp_path):
    layout = CapsLayout(tmp_path, PET)
    folder = tmp_path / "subjects/sub-01/ses-M000/pet_linear"
    _touch(folder / PET_NAME.replace("18FFDG", "18FAV45"))
    _touch(folder / PET_NAME.replace("suvr-pons", "suvr-pons2"))
    _touch(tmp_path / "subjects/sub-01/ses-M000/t1_linear" / PET_NAME)  # not pet-linear's folder
    with pytest.raises(InputError) as err:
        layout.t1_linear_nifti("sub-01", "ses-M000")
    message = str(err.value)
    assert str(folder) in message
    assert f"*_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz" in message
    assert "found no file" in message
    upper = _touch(folder / PET_NAME.replace("_pet.nii.gz", "_PET.nii.gz"))
    assert layout.t1_linear_nifti("sub-01", "ses-M000") == upper


def test_pet_tensor_names_put_the_tag_before_the_last_underscore_as_clinicadl(tmp_path):
    layout = CapsLayout(tmp_path, PET)
    _touch(tmp_path / "subjects/sub-01/ses-M000/pet_linear" / PET_NAME)
    image = layout.image_tensor("sub-01", "ses-M000")
    assert image.relative_to(tmp_path).as_posix() == (
        "subjects/sub-01/ses-M000/deeplearning_prepare_data/image_based/pet_linear/"
        f"sub-01_ses-M000_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_pet.pt"
    )
    assert layout.patch_tensor("sub-01", "ses-M000", 8, 8, 3).name == (
        f"sub-01_ses-M000_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_patchsize-8_stride-8_patch-3_pet.pt"
    )


def test_custom_image_is_found_anywhere_below_the_session(tmp_path):
    layout = CapsLayout(tmp_path, CUSTOM)
    name = "sub-01_ses-M000_T1w_segm-graymatter_probability.nii.gz"
    deep = _touch(tmp_path / "subjects/sub-01/ses-M000/t1/spm/segmentation/normalized_space" / name)
    _touch(
        tmp_path
        / "subjects/sub-01/ses-M000/t1_linear/sub-01_ses-M000_T1w_segm-whitematter_probability.nii.gz"
    )
    assert layout.t1_linear_nifti("sub-01", "ses-M000") == deep
    assert layout.image_tensor("sub-01", "ses-M000").relative_to(tmp_path).as_posix() == (
        "subjects/sub-01/ses-M000/deeplearning_prepare_data/image_based/custom/"
        "sub-01_ses-M000_T1w_segm-graymatter_probability.pt"
    )


@pytest.mark.parametrize(
    ("name", "values", "field", "words"),
    [
        ("t1-extensive", {}, "preprocessing", "ClinicaDL 1.6.1 cannot read t1-extensive"),
        ("dwi-dti", {}, "preprocessing", "ClinicaDL 1.6.1 cannot read dwi-dti"),
        ("t1-nonlinear", {}, "preprocessing", "unknown preprocessing 't1-nonlinear'"),
        ("pet-linear", {"suvr_reference_region": "pons"}, "tracer", "pet-linear needs tracer"),
        ("custom", {}, "custom_suffix", "custom needs custom_suffix"),
        ("t1-linear", {"tracer": "18FFDG"}, "tracer", "only read with preprocessing pet-linear"),
    ],
)
def test_refused_or_incomplete_preprocessing_names_the_key(name, values, field, words):
    with pytest.raises(InputError) as err:
        Preprocessing(name, **values)
    assert err.value.field == field
    assert words in str(err.value)


def test_a_record_of_a_refused_preprocessing_names_the_file():
    with pytest.raises(InputError) as err:
        Preprocessing.from_record(
            {"preprocessing": "pet-linear", "tracer": "18FFDG"}, Path("extract_pet.json")
        )
    assert (
        str(err.value) == "extract_pet.json [suvr_reference_region]: pet-linear needs suvr_reference_region"
    )


def test_flair_extraction_writes_clinicadls_tensors_and_record(tmp_path):
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    moved = as_preprocessing(caps, FLAIR)
    frame = load_participants(tsv)
    plan = plan_extraction(frame, {"single": CapsLayout(caps, FLAIR)}, "image")
    assert {item.nifti for item in plan.items} == set(moved)
    run_extraction(plan, normalize=True)
    for nifti in moved:
        participant, session = nifti.parts[-4], nifti.parts[-3]
        tensor = (
            caps / "subjects" / participant / session / "deeplearning_prepare_data/image_based/flair_linear"
        )
        tensor = tensor / nifti.name.replace(".nii.gz", ".pt")  # ClinicaDL's _get_image_path
        assert torch.load(tensor).shape == (1, 12, 14, 12)
    record = json.loads((caps / "tensor_extraction/extract_image.json").read_text())
    assert record == {
        "preprocessing": "flair-linear",
        "mode": "image",
        "use_uncropped_image": False,
        "prepare_dl": False,
        "extract_json": "extract_image.json",
        "file_type": {
            "pattern": f"*{SPACE}_desc-Crop_res-1x1x1_flair.nii.gz",
            "description": f"flair Image registered in MNI152NLin2009cSym space using flair-linear pipeline {CROP_NOTE}",
            "needed_pipeline": "flair-linear",
        },
    }


def test_a_missing_image_of_another_preprocessing_names_the_pattern(tmp_path):
    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=4, shape=(12, 14, 12))
    as_preprocessing(caps, FLAIR)
    frame = load_participants(tsv)
    with pytest.raises(InputError) as err:  # the t1-linear images are gone
        plan_extraction(frame, caps, "image")
    assert "4 session(s) without a t1-linear image" in str(err.value)
    assert f"file matching *{SPACE}_desc-Crop_res-1x1x1_T1w.nii.gz in " in str(err.value)
    next(caps.glob("subjects/sub-0001/*/flair_linear/*.nii.gz")).unlink()
    with pytest.raises(InputError) as err:
        check_images_exist(frame, caps, preprocessing=FLAIR)
    assert "1 image(s) not found" in str(err.value)
    assert f"sub-0001 ses-M000: missing, expected {caps}/subjects/sub-0001/ses-M000/flair_linear/" in str(
        err.value
    )
    assert f"(looked for *{SPACE}_desc-Crop_res-1x1x1_flair.nii.gz)" in str(err.value)


def test_slices_and_regions_of_other_preprocessings_are_named_as_clinicadl(tmp_path):
    """extract_slice_path puts the tag before the last `_`; extract_roi_path keeps `<sub>_<ses>` (no
    `_T1w` third word) and the last word (`pet`, `flair`) of the image's name."""
    from neuroexec.data.mode_datasets import mode_dataset
    from neuroexec.data.roi_extract import RoiExtraction, RoiSource
    from neuroexec.extraction_mode import ExtractionMode

    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=2, shape=(12, 14, 12))
    as_preprocessing(caps, PET)
    frame = load_participants(tsv)
    pet = {"single": CapsLayout(caps, PET)}
    axial = ExtractionMode.slice(2, "single")
    run_extraction(plan_extraction(frame, pet, axial, layout="clinicadl"), normalize=True)
    folder = caps / "subjects/sub-0000/ses-M000/deeplearning_prepare_data/slice_based/pet_linear"
    assert (
        folder
        / f"sub-0000_ses-M000_trc-18FFDG_{SPACE}_desc-Crop_res-1x1x1_suvr-pons_axis-axi_channel-single_slice-11_pet.pt"
    ).is_file()
    record = json.loads((caps / "tensor_extraction/extract_slice.json").read_text())
    assert (record["preprocessing"], record["tracer"], record["file_type"]) == (
        "pet-linear",
        "18FFDG",
        PET.file_type(False),
    )
    items = mode_dataset(axial, frame, pet, label="diagnosis", label_code={"AD": 0, "CN": 1}, normalize=True)
    assert len(items) == 2 * 12 and items[0]["image"].shape == (1, 12, 14)

    regions = ExtractionMode.roi(("leftHippocampus",))
    roi = RoiExtraction(regions, RoiSource.of("pet-linear"))
    run_extraction(plan_extraction(frame, pet, regions, roi=roi), normalize=True)
    (tensor,) = (caps / "subjects/sub-0001/ses-M000/deeplearning_prepare_data/roi_based/pet_linear").iterdir()
    assert tensor.name == f"sub-0001_ses-M000_{SPACE}_desc-CropRoi_res-1x1x1_roi-leftHippocampus_pet.pt"
