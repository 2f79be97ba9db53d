from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from neuroexec.data.caps import CapsLayout
from neuroexec.data.datasets import ImageDataset, PatchDataset
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import encode_labels, load_participants
from neuroexec.data.synthetic import GeneratedDataset, generate_atrophy_dataset
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode


@pytest.fixture
def extracted(fresh_caps: GeneratedDataset) -> tuple[GeneratedDataset, pd.DataFrame]:
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis")
    run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), normalize=False)
    return fresh_caps, frame


def _nifti_data(data: GeneratedDataset, participant: str) -> np.ndarray:
    return np.asarray(nib.load(CapsLayout(data.caps_dir).t1_linear_nifti(participant, "ses-M000")).dataobj)


def test_image_items(extracted) -> None:
    data, frame = extracted
    code = encode_labels(frame["diagnosis"])
    ds = ImageDataset(frame, data.caps_dir, "diagnosis", code, "classification")
    assert len(ds) == 8 and ds.input_size == [1, 21, 26, 22]
    item = ds[5]
    assert item["participant_id"] == frame.participant_id[5] and item["session_id"] == "ses-M000"
    assert item["mode_id"] == 0
    assert item["label"].dtype == torch.long and int(item["label"]) == code[frame.diagnosis[5]]
    assert item["image"].dtype == torch.float32
    np.testing.assert_array_equal(item["image"][0].numpy(), _nifti_data(data, frame.participant_id[5]))
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch["image"].shape == (4, 1, 21, 26, 22) and batch["label"].shape == (4,)


def test_regression_and_unlabelled_items(extracted) -> None:
    data, frame = extracted
    reg = ImageDataset(frame, {"single": data.caps_dir}, "age", None, "regression")
    assert reg[2]["label"].dtype == torch.float32 and float(reg[2]["label"]) == pytest.approx(frame.age[2])
    assert ImageDataset(frame, data.caps_dir, "age")[2]["label"].dtype == torch.float32  # task inferred
    none = ImageDataset(frame, data.caps_dir, None, None, "reconstruction")
    assert int(none[0]["label"]) == -1


def test_cache_keeps_tensor(extracted) -> None:
    data, frame = extracted
    ds = ImageDataset(frame, data.caps_dir, None, None, "reconstruction", cache=True)
    first = ds[1]["image"]
    ds.paths[1].unlink()  # served from memory from now on
    assert ds[1]["image"] is first


def test_unknown_label_and_missing_tensor(extracted) -> None:
    data, frame = extracted
    with pytest.raises(InputError, match="label 'CN' is not in the label code"):
        ImageDataset(frame, data.caps_dir, "diagnosis", {"AD": 0}, "classification")
    CapsLayout(data.caps_dir).image_tensor(frame.participant_id[3], "ses-M000").unlink()
    with pytest.raises(
        InputError, match=f"1 extracted tensor\\(s\\) not found.*\n  {frame.participant_id[3]} ses-M000"
    ):
        ImageDataset(frame, data.caps_dir, "diagnosis", encode_labels(frame.diagnosis), "classification")


def test_corrupt_tensor_is_named(extracted) -> None:
    data, frame = extracted
    ds = ImageDataset(frame, data.caps_dir, None, None, "reconstruction")
    raw = ds.paths[2].read_bytes()
    ds.paths[2].write_bytes(raw[: len(raw) // 3])
    with pytest.raises(InputError, match="corrupt or truncated") as err:
        ds[2]
    assert str(ds.paths[2]) in str(err.value)


def _expected_patch(image: np.ndarray, k: int, size: int, stride: int) -> np.ndarray:
    n = [(d - size) // stride + 1 for d in image.shape]
    a, b, c = np.unravel_index(k, n)  # C order, as ClinicaDL numbers patches
    return image[
        a * stride : a * stride + size, b * stride : b * stride + size, c * stride : c * stride + size
    ]


@pytest.mark.parametrize("layout", ["bundle", "clinicadl", "image-only"])
def test_patch_items_from_every_layout(fresh_caps: GeneratedDataset, layout: str) -> None:
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis").iloc[:3]
    mode = "image" if layout == "image-only" else ExtractionMode.patch(10, 8)
    plan = plan_extraction(frame, fresh_caps.caps_dir, mode, layout=layout.replace("image-only", "bundle"))
    run_extraction(plan, normalize=False)
    code = encode_labels(frame.diagnosis)
    ds = PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", size=10, stride=8)
    n = 2 * 3 * 2  # (21-10)//8+1, (26-10)//8+1, (22-10)//8+1
    assert ds.n_patches == n and len(ds) == 3 * n and ds.input_size == [1, 10, 10, 10]
    for i in (0, 5, n + 7, 3 * n - 1):
        item = ds[i]
        image, k = divmod(i, n)
        assert item["mode_id"] == k and item["participant_id"] == frame.participant_id.iloc[image]
        assert int(item["label"]) == code[frame.diagnosis.iloc[image]]
        assert item["image"].shape == (1, 10, 10, 10) and item["image"].dtype == torch.float32
        expected = _expected_patch(_nifti_data(fresh_caps, frame.participant_id.iloc[image]), k, 10, 8)
        np.testing.assert_array_equal(item["image"][0].numpy(), expected)
    one = PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", 10, 8, patch_index=4)
    assert len(one) == 3 and [one[j]["mode_id"] for j in range(3)] == [4, 4, 4]
    with pytest.raises(InputError, match="patch_index 99 out of range"):
        PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", 10, 8, patch_index=99)


def test_patch_dataset_needs_some_tensor(fresh_caps: GeneratedDataset) -> None:
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis")
    with pytest.raises(InputError, match="8 extracted tensor\\(s\\) not found"):
        PatchDataset(frame, fresh_caps.caps_dir, size=10, stride=8)


def test_multi_cohort_items(tmp_path: Path) -> None:
    a = generate_atrophy_dataset(tmp_path / "a", subjects=2, resolution_mm=8.0, seed=1)
    b = generate_atrophy_dataset(tmp_path / "b", subjects=2, resolution_mm=8.0, seed=2, subject_offset=10)
    frame = pd.concat(
        [a.participants.assign(cohort="A"), b.participants.assign(cohort="B")], ignore_index=True
    )
    caps = {"A": a.caps_dir, "B": b.caps_dir}
    run_extraction(plan_extraction(frame, caps, "image"), normalize=False)
    ds = ImageDataset(frame, caps, "diagnosis", encode_labels(frame.diagnosis), "classification")
    assert ds[3]["participant_id"] == "sub-0011"
    np.testing.assert_array_equal(ds[3]["image"][0].numpy(), _nifti_data(b, "sub-0011"))


def test_corrupt_tensor_read_in_a_worker_is_still_an_input_error(extracted) -> None:
    # DataLoader workers hand exceptions back as type(message): the error must stay an InputError
    # naming the file, without the worker's traceback (workers = 2 is the spec's default).
    data, frame = extracted
    ds = ImageDataset(frame, data.caps_dir, None, None, "reconstruction")
    ds.paths[1].write_bytes(ds.paths[1].read_bytes()[:200])
    with pytest.raises(InputError) as err:
        list(DataLoader(ds, batch_size=2, num_workers=1))
    message = str(err.value)
    assert message.startswith(f"{ds.paths[1]}: cannot load the tensor (corrupt or truncated file?)")
    assert "Traceback" not in message and "worker" not in message


@pytest.mark.parametrize("patch_index", [None, 3])
def test_batched_patch_fetch_equals_item_by_item(fresh_caps: GeneratedDataset, patch_index) -> None:
    """__getitems__ (what the DataLoader calls for a batch) gives what collating single items gives."""
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis").iloc[:3]
    run_extraction(plan_extraction(frame, fresh_caps.caps_dir, ExtractionMode.patch(10, 8)), normalize=False)
    code = encode_labels(frame.diagnosis)
    ds = PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", 10, 8, patch_index)
    indices = [len(ds) - 1, 0, 2]
    batched = ds.__getitems__(indices)
    single = torch.utils.data.default_collate([ds[i] for i in indices])
    assert torch.equal(batched["image"], single["image"]) and torch.equal(batched["label"], single["label"])
    assert torch.equal(batched["mode_id"], single["mode_id"])
    assert batched["participant_id"] == single["participant_id"]
    assert batched["session_id"] == single["session_id"]
    loader = DataLoader(ds, batch_size=2, collate_fn=ds.collate_fn)
    assert torch.equal(
        torch.cat([b["image"] for b in loader]), torch.stack([ds[i]["image"] for i in range(len(ds))])
    )


@pytest.mark.parametrize("layout", ["bundle", "clinicadl", "image-only"])
def test_normalize_gives_each_patch_its_own_min_max_as_clinicadl(fresh_caps: GeneratedDataset, layout: str):
    """ClinicaDL min-max normalises every item it loads: in patch mode, each patch. Whatever the source
    (bundles normalised at extraction, raw per-patch files, patches cut from raw images), batched or
    one by one, the patches delivered are (x - min) / (max - min) of the raw patch; a constant patch,
    where ClinicaDL would divide 0 by 0, is zeros."""
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis").iloc[:2]
    mode = "image" if layout == "image-only" else ExtractionMode.patch(10, 8)
    plan = plan_extraction(frame, fresh_caps.caps_dir, mode, layout=layout.replace("image-only", "bundle"))
    run_extraction(plan, normalize=layout == "bundle")  # raw tensors elsewhere: ClinicaDL's prepare-data
    code = encode_labels(frame.diagnosis)
    ds = PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", 10, 8, normalize=True)
    raw = [_nifti_data(fresh_caps, p).astype(np.float64) for p in frame.participant_id]
    batch = ds.__getitems__(list(range(len(ds))))["image"]
    for i in range(len(ds)):
        image, k = divmod(i, ds.n_patches)
        patch = _expected_patch(raw[image], k, 10, 8)
        span = patch.max() - patch.min()
        want = (patch - patch.min()) / span if span > 0 else np.zeros_like(patch)
        np.testing.assert_allclose(ds[i]["image"][0].numpy(), want, atol=1e-6, err_msg=f"item {i}")
        np.testing.assert_allclose(batch[i, 0].numpy(), want, atol=1e-6, err_msg=f"batched item {i}")
    plain = PatchDataset(frame, fresh_caps.caps_dir, "diagnosis", code, "classification", 10, 8)
    if layout != "bundle":  # without normalize: the stored values as they are
        np.testing.assert_array_equal(plain[1]["image"][0].numpy(), _expected_patch(raw[0], 1, 10, 8))


def test_minmax_items_leaves_normalised_items_alone_and_zeroes_constant_ones():
    from neuroexec.data.intensity import minmax_items_

    items = torch.stack([torch.linspace(0, 1, 27).view(1, 3, 3, 3), torch.full((1, 3, 3, 3), 7.0)])
    items = torch.cat([items, 5 + 2 * items[:1]])
    before = items[0].clone()
    minmax_items_(items)
    assert torch.equal(items[0], before)  # already [0, 1]: bit for bit
    assert torch.equal(items[1], torch.zeros(1, 3, 3, 3))
    torch.testing.assert_close(items[2], before)


@pytest.mark.parametrize("extracted_normalised", [False, True])
def test_image_items_are_normalised_as_the_model_expects(fresh_caps: GeneratedDataset, extracted_normalised):
    """normalize: an image extracted raw (as ClinicaDL's prepare-data writes it) is min-max normalised as
    it is read; one extracted normalised is handed over as it is, not copied (a cache stays shared)."""
    frame = load_participants(fresh_caps.participants_tsv, "diagnosis").iloc[:2]
    run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), normalize=extracted_normalised)
    ds = ImageDataset(frame, fresh_caps.caps_dir, None, None, "reconstruction", cache=True, normalize=True)
    # ClinicaDL's prepare-data saves tensors in the NIfTI's (Fortran) memory order: not contiguous
    saved = torch.load(ds.paths[1], weights_only=True)
    fortran = torch.empty(tuple(reversed(saved.shape))).permute(*reversed(range(saved.dim()))).copy_(saved)
    assert not fortran.is_contiguous()
    torch.save(fortran, ds.paths[1])
    raw = _nifti_data(fresh_caps, frame.participant_id.iloc[1]).astype(np.float64)
    want = (raw - raw.min()) / (raw.max() - raw.min())
    item = ds[1]["image"]
    np.testing.assert_allclose(item[0].numpy(), want, atol=1e-6)
    assert (item is ds._cache[1]) == extracted_normalised
    if not extracted_normalised:
        assert float(ds._cache[1].max()) == float(raw.max())  # the cached raw tensor is not modified
