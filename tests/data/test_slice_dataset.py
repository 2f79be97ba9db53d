"""SliceDataset: the image's slices, ClinicaDL's slice_id, discarded slices left out at read time."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

import neuroexec.data.datasets as datasets
import neuroexec.data.slice_dataset as slice_dataset
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.data.slice_dataset import SliceDataset
from neuroexec.data.synthetic import GeneratedDataset
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode

LABELS = {"AD": 0, "CN": 1}


def _extract(data: GeneratedDataset, mode: ExtractionMode | None, layout: str = "bundle", normalize=False):
    frame = load_participants(data.participants_tsv)
    run_extraction(plan_extraction(frame, data.caps_dir, mode or "image", layout=layout), normalize=normalize)
    return frame


def _dataset(data, frame, direction=2, slice_mode="rgb", **kw) -> SliceDataset:
    return SliceDataset(
        frame,
        data.caps_dir,
        label="diagnosis",
        label_code=LABELS,
        direction=direction,
        slice_mode=slice_mode,
        **kw,
    )


def _image(data: GeneratedDataset, participant: str) -> torch.Tensor:
    path = CapsLayout(data.caps_dir).t1_linear_nifti(participant, "ses-M000")
    return torch.from_numpy(nib.load(str(path)).get_fdata(dtype=np.float32))


@pytest.mark.parametrize("source", ["bundle", "clinicadl", "image"])
def test_items_are_the_image_slices_with_clinicadl_slice_ids(fresh_caps: GeneratedDataset, source: str):
    mode = ExtractionMode.slice(1, "rgb")
    frame = _extract(
        fresh_caps, None if source == "image" else mode, layout="bundle" if source == "image" else source
    )
    ds = _dataset(fresh_caps, frame, direction=1, discarded=(5, 3))
    assert ds.n_parts == 26 - 5 - 3 and len(ds) == 8 * ds.n_parts and ds.input_size == [3, 21, 22]
    for i in (0, 7, ds.n_parts + 4, len(ds) - 1):
        item = ds[i]
        image, k = divmod(i, ds.n_parts)
        assert item["mode_id"] == 5 + k and item["participant_id"] == frame["participant_id"][image]
        plane = _image(fresh_caps, item["participant_id"])[:, 5 + k, :]
        assert item["image"].shape == (3, 21, 22)
        assert all(torch.equal(item["image"][c], plane) for c in range(3))


def test_single_slices_have_one_channel_and_part_index_keeps_one_slice(fresh_caps: GeneratedDataset):
    frame = _extract(fresh_caps, ExtractionMode.slice(0, "single"))
    ds = _dataset(fresh_caps, frame, direction=0, slice_mode="single", discarded=(2, 2), part_index=4)
    assert len(ds) == 8 and ds.n_parts == 1 and ds.input_size == [1, 26, 22]
    item = ds[3]
    assert item["mode_id"] == 6
    assert torch.equal(item["image"][0], _image(fresh_caps, item["participant_id"])[6])
    with pytest.raises(InputError, match="part_index 17 out of range: images have 17 slices"):
        _dataset(fresh_caps, frame, direction=0, slice_mode="single", discarded=(2, 2), part_index=17)


def test_discarding_every_slice_is_refused(fresh_caps: GeneratedDataset):
    frame = _extract(fresh_caps, ExtractionMode.slice(2, "rgb"))
    with pytest.raises(InputError, match="at the end of the 22 slices of the axis leaves none"):
        _dataset(fresh_caps, frame, discarded=(11, 11))


def test_each_slice_is_min_max_normalised_when_read_from_the_image(fresh_caps: GeneratedDataset):
    frame = _extract(fresh_caps, None, normalize=False)
    ds = _dataset(fresh_caps, frame, slice_mode="single", normalize=True)
    item = ds[10]
    plane = _image(fresh_caps, item["participant_id"])[:, :, 10]
    assert torch.allclose(item["image"][0], (plane - plane.min()) / (plane.max() - plane.min()), atol=1e-6)


def test_a_bundle_is_opened_once_per_image_not_per_item(fresh_caps: GeneratedDataset, monkeypatch):
    frame = _extract(fresh_caps, ExtractionMode.slice(2, "rgb"))
    ds = _dataset(fresh_caps, frame, discarded=(1, 1))
    loads = []
    real = slice_dataset.load_tensor
    for module in (slice_dataset, datasets):  # its own reads, and the memory maps (datasets.MemoryMaps)
        monkeypatch.setattr(
            module, "load_tensor", lambda path, mmap=False: loads.append(mmap) or real(path, mmap)
        )
    for i in range(len(ds)):
        ds[i]
    assert loads == [True] * 7  # images 1..7 (image 0 was mapped when the dataset was built)


def test_missing_tensors_are_listed(fresh_caps: GeneratedDataset):
    frame = load_participants(fresh_caps.participants_tsv)
    with pytest.raises(
        InputError, match="(?s)8 extracted tensor.* not found .*axis-axi_channel-rgb_slices_T1w.pt"
    ):
        _dataset(fresh_caps, frame)


def test_batches_do_not_depend_on_the_worker_count(fresh_caps: GeneratedDataset):
    frame = _extract(fresh_caps, ExtractionMode.slice(2, "single"))
    ds = _dataset(fresh_caps, frame, slice_mode="single", discarded=(4, 4), normalize=True)

    def batches(workers: int) -> list[dict]:
        return list(DataLoader(ds, batch_size=16, num_workers=workers, collate_fn=ds.collate_fn))

    for a, b in zip(batches(0), batches(2), strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mode_id"], b["mode_id"])
        assert a["participant_id"] == b["participant_id"] and torch.equal(a["label"], b["label"])


@pytest.mark.parametrize("source", ["bundle", "image"])
def test_a_batch_is_the_items_collated(fresh_caps: GeneratedDataset, source: str):
    mode = ExtractionMode.slice(0, "rgb")
    frame = _extract(fresh_caps, mode if source == "bundle" else None, normalize=source == "bundle")
    ds = _dataset(fresh_caps, frame, direction=0, discarded=(2, 3), normalize=True)
    indices = [5, 0, 33, len(ds) - 1, 17]
    batch = next(iter(DataLoader(ds, batch_size=5, sampler=indices, collate_fn=ds.collate_fn)))
    items = default_collate([ds[i] for i in indices])
    assert torch.equal(batch["image"], items["image"]) and torch.equal(batch["mode_id"], items["mode_id"])
    assert torch.equal(batch["label"], items["label"]) and batch["participant_id"] == items["participant_id"]
