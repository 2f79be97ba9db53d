"""RoiDataset: each image's regions in part-index order (mode_id = the region's index in roi.list), one
region per image with part_index, each min-max normalised on its own; ClinicaDL's region files, else the
image tensor cut on the fly; regions of different box shapes refused for one network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neuroexec.atomic import save_nifti
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.intensity import minmax_item
from neuroexec.data.mode_datasets import mode_dataset
from neuroexec.data.participants import load_participants
from neuroexec.data.roi_dataset import RoiDataset
from neuroexec.data.roi_extract import RoiExtraction, RoiSource, cut_roi
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.spec.model import Dataset, Model, Roi
from neuroexec.training.setup import roi_source_of

ROIS = ("leftHippocampus", "rightHippocampus")
LEFT_MASK = (
    "masks/tpl-MNI152NLin2009cSym/tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-leftHippocampus_mask.nii.gz"
)
CODE = {"AD": 0, "CN": 1}


@pytest.fixture
def data(tmp_path):
    data = generate_atrophy_dataset(tmp_path / "caps", subjects=4, resolution_mm=8.0)
    frame = load_participants(data.participants_tsv)
    roi = RoiExtraction(ExtractionMode.roi(ROIS), RoiSource.of("t1-linear"))
    run_extraction(plan_extraction(frame, data.caps_dir, "roi", roi=roi), normalize=False)
    return data, frame


def regions(data, frame, **kwargs) -> RoiDataset:
    return RoiDataset(frame, data.caps_dir, label="diagnosis", label_code=CODE, rois=ROIS, **kwargs)


def test_items_are_the_regions_of_each_image_in_roi_list_order(data):
    data, frame = data
    dataset = regions(data, frame)
    assert (len(dataset), dataset.n_parts, dataset.mode) == (8, 2, "roi")
    caps = CapsLayout(data.caps_dir)
    for i in range(len(dataset)):
        item = dataset[i]
        image, k = divmod(i, 2)
        assert item["mode_id"] == k and item["participant_id"] == frame["participant_id"][image]
        path = caps.roi_tensor(item["participant_id"], "ses-M000", dataset.masks.paths[k], False)
        assert torch.equal(item["image"], torch.load(path))
        assert int(item["label"]) == CODE[frame["diagnosis"][image]]
    assert dataset.input_size == [1, 2, 5, 3]


def test_part_index_keeps_one_region_per_image_with_its_index(data):
    data, frame = data
    right = regions(data, frame, part_index=1)
    both = regions(data, frame)
    assert (len(right), right.n_parts) == (4, 1)
    assert [right[i]["mode_id"] for i in range(4)] == [1] * 4
    assert all(torch.equal(right[i]["image"], both[2 * i + 1]["image"]) for i in range(4))
    with pytest.raises(InputError, match="part_index 2 out of range: 2 region"):
        regions(data, frame, part_index=2)


def test_each_region_is_normalised_on_its_own(data):
    data, frame = data
    raw, normalised = regions(data, frame), regions(data, frame, normalize=True)
    for i in range(len(raw)):
        region = normalised[i]["image"]
        assert float(region.min()) == 0.0 and float(region.max()) == 1.0
        assert torch.equal(region, minmax_item(raw[i]["image"]))


def test_without_region_files_the_image_tensor_is_cut(data):
    data, frame = data
    caps = CapsLayout(data.caps_dir)
    run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    for p in frame["participant_id"]:
        for f in caps.tensor_dir(p, "ses-M000", "roi").iterdir():
            f.unlink()
    dataset = regions(data, frame)
    mask = np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj) > 0
    image = torch.load(caps.image_tensor(frame["participant_id"][1], "ses-M000"))
    assert torch.equal(dataset[2]["image"], cut_roi(image, mask, uncropped_roi=False))


def test_regions_of_different_shapes_need_one_network_each_or_full_size(data):
    data, frame = data
    mask = np.asarray(nib.load(data.caps_dir / LEFT_MASK).dataobj).astype(np.float32)
    mask[np.argwhere(mask)[0][0]] = 0  # the left box one plane thinner than the right one
    save_nifti(data.caps_dir / LEFT_MASK, mask, nib.load(data.caps_dir / LEFT_MASK).affine)
    with pytest.raises(
        InputError, match=r"leftHippocampus 1x5x3, rightHippocampus 2x5x3.*multi_network = true"
    ):
        regions(data, frame)
    assert regions(data, frame, part_index=0).input_size == [1, 1, 5, 3]
    with pytest.raises(InputError, match=r"region leftHippocampus has shape .*\(extracted with another mask"):
        regions(data, frame, part_index=0)[0]  # the files on disk are those of the old mask


def test_mode_dataset_builds_it_and_workers_give_the_same_batches(data):
    data, frame = data
    dataset = mode_dataset(
        ExtractionMode.roi(ROIS), frame, data.caps_dir, label="diagnosis", label_code=CODE, normalize=True
    )
    assert isinstance(dataset, RoiDataset)
    batches = [
        [b["image"] for b in DataLoader(dataset, batch_size=3, num_workers=workers)] for workers in (0, 2)
    ]
    assert all(torch.equal(a, b) for a, b in zip(*batches, strict=True))


def test_custom_masks_are_found_under_their_template_and_pattern_for_extraction_and_training(data):
    data, frame = data
    custom = data.caps_dir / "masks/tpl-Custom"
    custom.mkdir()
    for name in ROIS:  # a custom preprocessing's masks: no _desc-Crop_ needed (ClinicaDL takes either)
        shutil.copy(
            data.caps_dir / LEFT_MASK.replace("leftHippocampus", name),
            custom / f"tpl-Custom_myPattern_roi-{name}_mask.nii.gz",
        )
    source = RoiSource.of("custom", custom_template="Custom", custom_mask_pattern="myPattern")
    model = Model(
        "m",
        Path("maps"),
        "d",
        mode="roi",
        roi=Roi(ROIS, custom_template="Custom", custom_mask_pattern="myPattern"),
    )
    assert roi_source_of(model, Dataset("d", (), preprocessing="custom")) == source
    roi = RoiExtraction(ExtractionMode.roi(ROIS), source, custom=True)
    run_extraction(plan_extraction(frame, data.caps_dir, "roi", roi=roi), normalize=False)
    record = json.loads((data.caps_dir / "tensor_extraction/extract_roi.json").read_text())
    assert (record["roi_custom_template"], record["roi_custom_mask_pattern"]) == ("Custom", "myPattern")
    dataset = regions(data, frame, source=source)
    folder = CapsLayout(data.caps_dir).tensor_dir("sub-0000", "ses-M000", "roi")
    name = "sub-0000_ses-M000_T1w_space-Custom_desc-CropRoi_myPattern_roi-leftHippocampus_T1w.pt"
    assert torch.equal(dataset[0]["image"], torch.load(folder / name))


def test_regions_are_read_from_disk_once_when_they_fit_the_cache(data, monkeypatch):
    import neuroexec.data.roi_dataset as roi_dataset

    data, frame = data
    dataset = regions(data, frame)
    first = [dataset[i]["image"].clone() for i in range(len(dataset))]
    for path in CapsLayout(data.caps_dir).root.rglob("*_roi-*_T1w.pt"):
        path.write_bytes(b"junk")  # the files change under a running epoch: the kept regions are served
    assert all(torch.equal(dataset[i]["image"], first[i]) for i in range(len(dataset)))
    monkeypatch.setattr(roi_dataset, "_CACHE_BYTES", 0)  # too many regions to keep: each read is a read
    with pytest.raises(InputError, match="cannot load the tensor"):
        regions(data, frame)[0]
