"""ROI extraction: masks found as ClinicaDL finds them (each failure an InputError naming the pattern and
the folder), ClinicaDL's tensor names, regions equal to image * mask cropped to the mask's box, one
min-max normalisation per region, incremental with the masks as inputs, and the generator's masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from neuroexec.atomic import save_nifti
from neuroexec.data.caps import CapsLayout, roi_output_pattern, roi_tensor_name
from neuroexec.data.extract import plan_extraction, read_nifti, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.data.roi_extract import RoiExtraction, RoiSource, cut_roi, find_masks, fold_roi
from neuroexec.data.synthetic import generate_atrophy_dataset, generated_contents
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode

ROIS = ("leftHippocampus", "rightHippocampus")
MASK_DIR = "masks/tpl-MNI152NLin2009cSym"
LEFT_MASK = f"{MASK_DIR}/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-leftHippocampus_mask.nii.gz"
RIGHT_MASK = f"{MASK_DIR}/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-rightHippocampus_mask.nii.gz"
IMAGE = "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz"


@pytest.fixture
def data(tmp_path):
    return generate_atrophy_dataset(tmp_path / "caps", subjects=4, resolution_mm=8.0)


def roi(uncropped_roi: bool = False, names=ROIS) -> RoiExtraction:
    return RoiExtraction(ExtractionMode.roi(names, uncropped_roi), RoiSource.of("t1-linear"))


def extract(data, extraction: RoiExtraction | None = None, normalize: bool = True):
    frame = load_participants(data.participants_tsv)
    plan = plan_extraction(frame, data.caps_dir, "roi", roi=extraction or roi())
    return plan, run_extraction(plan, normalize=normalize)


# --- names: the literal names ClinicaDL 1.6.1's compute_output_pattern / extract_roi_path give ----------
def test_tensor_names_are_clinicadls():
    cropped_mask = "tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-leftHippocampus_mask.nii.gz"
    plain_mask = "tpl-MNI152NLin2009cSym_res-1x1x1_roi-leftHippocampus_mask.nii.gz"
    assert roi_tensor_name(IMAGE, cropped_mask, False) == (
        "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-leftHippocampus_T1w.pt"
    )
    assert roi_tensor_name(IMAGE, cropped_mask, True) == (
        "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-CropImage_res-1x1x1_roi-leftHippocampus_T1w.pt"
    )
    assert (
        roi_output_pattern(plain_mask, True)
        == "space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-leftHippocampus"
    )
    assert roi_output_pattern(plain_mask, False) == "space-MNI152NLin2009cSym_res-1x1x1_roi-leftHippocampus"
    assert roi_output_pattern("tpl-Custom_roi-amygdala_mask.nii", False) == "space-Custom_roi-amygdala"
    # an image name without _T1w as third entity: sub_ses prefix only (a PET image)
    pet = "sub-01_ses-M000_trc-18FFDG_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_suvr-pons_pet.nii.gz"
    assert roi_tensor_name(pet, cropped_mask, False) == (
        "sub-01_ses-M000_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-leftHippocampus_pet.pt"
    )


def test_extraction_writes_one_clinicadl_file_per_region_and_its_record(data):
    extract(data)
    folder = data.caps_dir / "subjects/sub-0000/ses-M000/deeplearning_prepare_data/roi_based/t1_linear"
    assert sorted(p.name for p in folder.iterdir()) == [
        "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-leftHippocampus_T1w.pt",
        "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-CropRoi_res-1x1x1_roi-rightHippocampus_T1w.pt",
    ]
    assert not (folder.parent.parent / "image_based").exists()  # regions only
    record = json.loads((data.caps_dir / "tensor_extraction/extract_roi.json").read_text())
    assert record["mode"] == "roi" and record["prepare_dl"] is True
    assert record["roi_list"] == list(ROIS) and record["uncropped_roi"] is False
    assert (record["roi_template"], record["roi_mask_pattern"]) == ("MNI152NLin2009cSym", "res-1x1x1")
    assert (record["roi_custom_template"], record["roi_custom_mask_pattern"]) == ("", "")
    assert Path(record["masks_location"]) == data.caps_dir / MASK_DIR


# --- values ---------------------------------------------------------------------------------------
def expected_region(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """image * mask, cut to the mask's bounding box (the synthetic masks have no empty plane inside)."""
    lo, hi = np.argwhere(mask).min(axis=0), np.argwhere(mask).max(axis=0) + 1
    return (image * mask)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]


def test_regions_are_the_image_times_the_mask_cropped_and_normalised_one_by_one(data):
    extract(data, normalize=False)
    caps = CapsLayout(data.caps_dir)
    image = read_nifti(caps.t1_linear_nifti("sub-0001", "ses-M000"))
    for name, mask_file in zip(ROIS, (LEFT_MASK, RIGHT_MASK)):
        mask = np.asarray(nib.load(data.caps_dir / mask_file).dataobj) > 0
        path = caps.roi_tensor("sub-0001", "ses-M000", data.caps_dir / mask_file, False)
        assert name in path.name
        tensor = torch.load(path)
        assert tensor.shape == (1, *expected_region(image, mask).shape)
        assert torch.equal(tensor[0], torch.from_numpy(expected_region(image, mask)))
    extract(data, normalize=True)  # another normalisation: extracted again, each region on its own
    left = torch.load(caps.roi_tensor("sub-0001", "ses-M000", data.caps_dir / LEFT_MASK, False))[0]
    raw = expected_region(image, np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj) > 0)
    assert torch.allclose(left, torch.from_numpy((raw - raw.min()) / (raw.max() - raw.min())))


def test_uncropped_regions_keep_the_image_grid_and_fold_back_in_place(data):
    extract(data, roi(uncropped_roi=True), normalize=False)
    caps = CapsLayout(data.caps_dir)
    path = caps.roi_tensor("sub-0000", "ses-M000", data.caps_dir / LEFT_MASK, True)
    assert "_desc-CropImage_" in path.name
    mask = np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj) > 0
    image = read_nifti(caps.t1_linear_nifti("sub-0000", "ses-M000"))
    assert torch.equal(torch.load(path)[0], torch.from_numpy(image * mask))
    cropped = cut_roi(torch.from_numpy(image)[None], mask, uncropped_roi=False)
    assert np.array_equal(fold_roi(cropped, mask, uncropped_roi=False), np.where(mask, image, 0))


# --- masks: found as ClinicaDL finds them, or a clear error ----------------------------------------
def test_a_missing_mask_names_the_pattern_and_the_folder(data):
    (data.caps_dir / RIGHT_MASK).unlink()
    with pytest.raises(InputError) as error:
        extract(data)
    message = str(error.value)
    assert str(data.caps_dir / MASK_DIR) in message
    assert "*res-1x1x1*_roi-rightHippocampus_mask.nii*" in message and "'_desc-Crop_'" in message
    assert "leftHippocampus" not in message.split(":", 1)[1]  # only the missing one is named


def test_only_cropped_masks_serve_cropped_images(data):
    # An uncropped image's mask (no _desc-Crop_ in its name) is not one ClinicaDL takes for a cropped image.
    shutil.move(data.caps_dir / LEFT_MASK, data.caps_dir / LEFT_MASK.replace("_desc-Crop", ""))
    with pytest.raises(InputError, match=r"roi-leftHippocampus_mask.nii\* with '_desc-Crop_'"):
        find_masks(data.caps_dir, ROIS, RoiSource.of("t1-linear"))
    found = find_masks(data.caps_dir, ("leftHippocampus",), RoiSource.of("t1-linear", uncropped=True))
    assert found.paths[0].name == "tpl-MNI152NLin2009cSym_res-1x1x1_roi-leftHippocampus_mask.nii.gz"


def test_a_custom_preprocessing_needs_its_template(data):
    with pytest.raises(InputError, match="roi.custom_template"):
        RoiSource.of("custom")
    source = RoiSource.of("custom", custom_template="MNI152NLin2009cSym", custom_mask_pattern="res-1x1x1")
    assert find_masks(data.caps_dir, ROIS, source).paths[0] == data.caps_dir / LEFT_MASK


def test_a_non_binary_or_misshaped_mask_is_refused(data):
    affine = nib.load(data.caps_dir / LEFT_MASK).affine
    mask = np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj).astype(np.float32)
    save_nifti(data.caps_dir / LEFT_MASK, mask * 0.5, affine)
    with pytest.raises(
        InputError, match=r"leftHippocampus_mask.nii.gz: the mask of ROI 'leftHippocampus' must be binary"
    ):
        extract(data)
    save_nifti(data.caps_dir / LEFT_MASK, mask[:-1], affine)
    with pytest.raises(InputError, match=r"has shape \(20, 26, 22\), the image .* has \(21, 26, 22\)"):
        extract(data)
    save_nifti(data.caps_dir / LEFT_MASK, np.zeros((4, 4), np.float32), affine)
    with pytest.raises(InputError, match="must be a 3D image"):
        extract(data)


# --- incremental -----------------------------------------------------------------------------------
def test_extraction_is_incremental_and_a_changed_mask_extracts_again(data):
    _, counts = extract(data)
    assert counts.extracted == 4
    _, counts = extract(data)
    assert counts == (0, 4)
    mask = np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj).astype(np.float32)
    mask[np.argwhere(mask)[0][0]] = 0  # one plane less
    save_nifti(data.caps_dir / LEFT_MASK, mask, nib.load(data.caps_dir / LEFT_MASK).affine)
    plan, counts = extract(data)
    assert counts.extracted == 4
    assert {i.reason for i in plan.items} == {"parameters changed"}


# --- the generator's masks ------------------------------------------------------------------------
def test_generated_masks_are_binary_halves_on_the_image_grid_and_neuroexecs_own(tmp_path, data):
    left, right = (np.asarray(nib.load(data.caps_dir / m).dataobj) for m in (LEFT_MASK, RIGHT_MASK))
    region = np.asarray(nib.load(data.mask).dataobj)  # masks/hippocampus.nii.gz is still written
    assert left.shape == right.shape == data.shape
    assert set(np.unique(left)) == set(np.unique(right)) == {0, 1}
    assert not (left * right).any() and ((left + right) <= region).all()
    assert np.argwhere(left)[:, 0].max() < np.argwhere(right)[:, 0].min()  # left: low x (RAS)
    assert np.allclose(nib.load(data.caps_dir / LEFT_MASK).affine, data.affine)
    again = generate_atrophy_dataset(tmp_path / "again", subjects=4, resolution_mm=8.0)
    assert (again.caps_dir / LEFT_MASK).read_bytes() == (data.caps_dir / LEFT_MASK).read_bytes()
    mine = data.caps_dir / MASK_DIR / "tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-mine_mask.nii.gz"
    shutil.copy(data.caps_dir / LEFT_MASK, mine)
    made, other = generated_contents(data.caps_dir)
    assert other == (mine,)
    assert data.caps_dir / LEFT_MASK in made and data.caps_dir / RIGHT_MASK in made
