from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.data.caps import CapsLayout
from neuroexec.errors import InputError

SUB, SES = "sub-01", "ses-M000"
CROPPED = "sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz"
UNCROPPED = "sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_res-1x1x1_T1w.nii.gz"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_names_written_are_clinicadl_names(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    assert caps.nifti_name(SUB, SES) == CROPPED
    assert caps.nifti_name(SUB, SES, uncropped=True) == UNCROPPED
    assert caps.t1_linear_dir(SUB, SES) == tmp_path / "subjects/sub-01/ses-M000/t1_linear"


def test_tensor_paths_follow_clinicadl_layout(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    prep = tmp_path / "subjects/sub-01/ses-M000/deeplearning_prepare_data"
    assert caps.image_tensor(SUB, SES) == (
        prep / "image_based/t1_linear/sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt"
    )
    assert caps.patch_tensor(SUB, SES, 50, 40, 7) == (
        prep / "patch_based/t1_linear/"
        "sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_patchsize-50_stride-40_patch-7_T1w.pt"
    )
    assert caps.patch_bundle(SUB, SES, 50, 40) == (
        prep / "patch_based/t1_linear/"
        "sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_patchsize-50_stride-40_patches_T1w.pt"
    )
    assert caps.extract_json("patch") == tmp_path / "tensor_extraction/extract_patch.json"
    assert caps.manifest_json("image") == tmp_path / "tensor_extraction/neuroexec_manifest_image.json"


def test_finds_nifti_case_insensitively_and_names_tensors_after_it(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    odd = _touch(
        caps.t1_linear_dir(SUB, SES)
        / "sub-01_ses-M000_space-mni152nlin2009csym_desc-crop_res-1x1x1_t1w.nii.gz"
    )
    _touch(caps.t1_linear_dir(SUB, SES) / "sub-01_ses-M000_T1w.json")
    assert caps.t1_linear_nifti(SUB, SES) == odd
    assert (
        caps.image_tensor(SUB, SES).name
        == "sub-01_ses-M000_space-mni152nlin2009csym_desc-crop_res-1x1x1_t1w.pt"
    )


def test_cropped_and_uncropped_globs_do_not_mix(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    crop = _touch(caps.t1_linear_dir(SUB, SES) / CROPPED)
    full = _touch(caps.t1_linear_dir(SUB, SES) / UNCROPPED)
    assert caps.t1_linear_nifti(SUB, SES) == crop
    assert caps.t1_linear_nifti(SUB, SES, uncropped=True) == full


def test_missing_nifti_names_session_and_folder(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    with pytest.raises(InputError, match="sub-01 ses-M000.*no file") as err:
        caps.t1_linear_nifti(SUB, SES)
    assert "subjects/sub-01/ses-M000/t1_linear" in str(err.value)


def test_several_niftis_is_an_error(tmp_path: Path) -> None:
    caps = CapsLayout(tmp_path)
    _touch(caps.t1_linear_dir(SUB, SES) / CROPPED)
    _touch(caps.t1_linear_dir(SUB, SES) / ("run-02_" + CROPPED))
    with pytest.raises(InputError, match="2 files"):
        caps.t1_linear_nifti(SUB, SES)
