"""Slice extraction: ClinicaDL's names and numbering, the image's own slices, bundles, incremental."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.extract_manifest import unrecorded_tensors
from neuroexec.data.participants import load_participants
from neuroexec.data.slice_extract import fold_slices
from neuroexec.data.synthetic import GeneratedDataset
from neuroexec.extraction_mode import ExtractionMode

STEM = "sub-0000_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1"


def _plan(data: GeneratedDataset, mode: ExtractionMode, layout: str = "bundle"):
    frame = load_participants(data.participants_tsv)
    return plan_extraction(frame, data.caps_dir, mode, layout=layout, normalize=False)


def _nifti(data: GeneratedDataset, participant: str = "sub-0000") -> np.ndarray:
    path = CapsLayout(data.caps_dir).t1_linear_nifti(participant, "ses-M000")
    return nib.load(str(path)).get_fdata(dtype=np.float32)


def test_clinicadl_layout_names_and_numbers_every_slice_as_clinicadl(fresh_caps: GeneratedDataset):
    mode = ExtractionMode.slice(1, "single")
    run_extraction(_plan(fresh_caps, mode, "clinicadl"), normalize=False)
    folder = (
        fresh_caps.caps_dir / "subjects/sub-0000/ses-M000/deeplearning_prepare_data/slice_based/t1_linear"
    )
    names = sorted(p.name for p in folder.iterdir())
    # ClinicaDL's extract_slice_path: prefix up to the last "_", then _axis-<a>_channel-<m>_slice-<k>
    assert names == sorted(f"{STEM}_axis-cor_channel-single_slice-{k}_T1w.pt" for k in range(26))
    image = _nifti(fresh_caps)
    for k in (0, 7, 25):
        tensor = torch.load(folder / f"{STEM}_axis-cor_channel-single_slice-{k}_T1w.pt", weights_only=True)
        assert tensor.shape == (1, 21, 22) and torch.equal(tensor[0], torch.from_numpy(image[:, k, :]))
    record = json.loads((fresh_caps.caps_dir / "tensor_extraction/extract_slice.json").read_text())
    assert record["mode"] == "slice" and record["prepare_dl"] is True
    assert (record["slice_direction"], record["slice_mode"], record["discarded_slices"]) == (
        1,
        "single",
        [0, 0],
    )
    assert not (
        fresh_caps.caps_dir / "subjects/sub-0000/ses-M000/deeplearning_prepare_data/image_based"
    ).exists()


@pytest.mark.parametrize("direction", [0, 1, 2])
def test_bundle_holds_the_image_slices_on_three_channels_and_the_image_tensor(
    fresh_caps: GeneratedDataset, direction: int
):
    mode = ExtractionMode.slice(direction, "rgb")
    run_extraction(_plan(fresh_caps, mode), normalize=False)
    caps = CapsLayout(fresh_caps.caps_dir)
    bundle_path = caps.slice_bundle("sub-0000", "ses-M000", mode.axis_name, "rgb")
    assert bundle_path.name == f"{STEM}_axis-{mode.axis_name}_channel-rgb_slices_T1w.pt"
    bundle = torch.load(bundle_path, weights_only=True)
    image = torch.from_numpy(_nifti(fresh_caps))
    assert bundle.shape[0] == image.shape[direction] and bundle.shape[1] == 3 and bundle.is_contiguous()
    for k in range(bundle.shape[0]):
        plane = image.select(direction, k)
        assert all(torch.equal(bundle[k, c], plane) for c in range(3))
    assert caps.image_tensor("sub-0000", "ses-M000").is_file()  # what ClinicaDL cuts slices from
    record = json.loads(caps.extract_json("slice").read_text())
    assert record["prepare_dl"] is False and record["slice_mode"] == "rgb"


def test_normalised_slices_are_each_min_max_scaled(fresh_caps: GeneratedDataset):
    mode = ExtractionMode.slice(2, "single")
    frame = load_participants(fresh_caps.participants_tsv)
    run_extraction(plan_extraction(frame, fresh_caps.caps_dir, mode), normalize=True)
    caps = CapsLayout(fresh_caps.caps_dir)
    bundle = torch.load(caps.slice_bundle("sub-0000", "ses-M000", "axi", "single"), weights_only=True)
    raw = torch.from_numpy(_nifti(fresh_caps))
    k = 11
    plane = raw[:, :, k]
    assert torch.allclose(bundle[k, 0], (plane - plane.min()) / (plane.max() - plane.min()), atol=1e-6)
    lo, hi = bundle.amin(dim=(1, 2, 3)), bundle.amax(dim=(1, 2, 3))
    assert bool(((lo == 0) & ((hi == 1) | (hi == 0))).all())


def test_slice_extraction_is_incremental_and_models_differing_in_discarded_share_it(
    fresh_caps: GeneratedDataset,
):
    mode = ExtractionMode.slice(2, "rgb")
    assert run_extraction(_plan(fresh_caps, mode), normalize=False).extracted == 8
    again = _plan(fresh_caps, mode)
    assert [i.reason for i in again.items] == ["up to date"] * 8
    assert run_extraction(again, normalize=False).extracted == 0
    # another axis is another bundle, extracted on its own
    other = _plan(fresh_caps, ExtractionMode.slice(0, "rgb"))
    assert {i.reason for i in other.items} == {"missing"}
    # normalisation changes the tensors: extracted again
    assert run_extraction(_plan(fresh_caps, mode), normalize=True).extracted == 8


def test_clinicadl_layout_plan_knows_every_slice_once_extracted(fresh_caps: GeneratedDataset):
    mode = ExtractionMode.slice(0, "single")
    first = _plan(fresh_caps, mode, "clinicadl")
    assert len(first.items[0].outputs) == 1  # count unknown: slice 0 stands for the set
    run_extraction(first, normalize=False)
    known = _plan(fresh_caps, mode, "clinicadl")
    assert len(known.items[0].outputs) == 21 and known.items[0].reason == "up to date"


def test_slice_files_clinicadl_wrote_are_listed_before_they_are_replaced(fresh_caps: GeneratedDataset):
    """ClinicaDL's prepare-data leaves out the discarded slices: its files start at slice b, not 0."""
    caps = CapsLayout(fresh_caps.caps_dir)
    foreign = [caps.slice_tensor("sub-0001", "ses-M000", "axi", "rgb", k) for k in (3, 4, 12)]
    for path in foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.zeros(3, 21, 26), path)
    found = unrecorded_tensors(_plan(fresh_caps, ExtractionMode.slice(2, "rgb"), "clinicadl"))
    assert sorted(found) == sorted(foreign)


def test_fold_slices_puts_each_slice_at_its_index():
    mode = ExtractionMode.slice(1, "rgb")
    parts = {2: torch.full((3, 4, 6), 5.0), 4: torch.full((3, 4, 6), 7.0)}
    volume = fold_slices(mode, parts, (4, 5, 6))
    assert volume.shape == (4, 5, 6)
    assert (volume[:, 2] == 5).all() and (volume[:, 4] == 7).all()
    assert volume[:, [0, 1, 3]].sum() == 0
