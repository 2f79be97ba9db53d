"""Tests of neuroexec/data/extract.py (named apart from the extract step's tests)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from neuroexec.atomic import save_nifti
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import extract_image, plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.data.patch_extract import PatchCut, extract_patches_to
from neuroexec.data.synthetic import GeneratedDataset
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode


def _nifti(data: GeneratedDataset, i: int) -> Path:
    return CapsLayout(data.caps_dir).t1_linear_nifti(f"sub-{i:04d}", "ses-M000")


def _reference_patches(volume: np.ndarray, size: int, stride: int) -> list[np.ndarray]:
    # ClinicaDL's numbering: k-th of unfold(1).unfold(2).unfold(3) flattened in C order.
    out = []
    for a in range(0, volume.shape[0] - size + 1, stride):
        for b in range(0, volume.shape[1] - size + 1, stride):
            for c in range(0, volume.shape[2] - size + 1, stride):
                out.append(volume[a : a + size, b : b + size, c : c + size])
    return out


def test_extract_image_equals_nifti_data(tiny_dataset: GeneratedDataset, tmp_path: Path) -> None:
    nifti = _nifti(tiny_dataset, 1)
    expected = np.asarray(nib.load(nifti).dataobj, dtype=np.float64)
    assert extract_image(nifti, tmp_path / "raw.pt", normalize=False) == expected.shape
    raw = torch.load(tmp_path / "raw.pt", weights_only=True)
    assert raw.dtype == torch.float32 and raw.shape == (1, *expected.shape)
    np.testing.assert_array_equal(raw[0].numpy(), expected.astype(np.float32))
    extract_image(nifti, tmp_path / "norm.pt", normalize=True)
    norm = torch.load(tmp_path / "norm.pt", weights_only=True)[0].numpy()
    reference = (expected - expected.min()) / (expected.max() - expected.min())
    np.testing.assert_allclose(norm, reference, atol=1e-6)
    assert norm.min() == 0.0 and norm.max() == pytest.approx(1.0)


@pytest.mark.parametrize("layout", ["bundle", "clinicadl"])
def test_patches_match_direct_slicing(tmp_path: Path, layout: str) -> None:
    volume = torch.randn(1, 13, 11, 12)
    caps = CapsLayout(tmp_path)
    paths = extract_patches_to(volume, caps, "sub-01", "ses-M000", PatchCut(size=5, stride=3, layout=layout))
    reference = _reference_patches(volume[0].numpy(), 5, 3)
    assert len(reference) == 3 * 3 * 3  # (13-5)//3+1, (11-5)//3+1, (12-5)//3+1
    if layout == "bundle":
        assert paths == [caps.patch_bundle("sub-01", "ses-M000", 5, 3)]
        patches = torch.load(paths[0], weights_only=True)
        assert patches.shape == (27, 1, 5, 5, 5) and patches.is_contiguous()
        got = [p[0].numpy() for p in patches]
    else:
        assert paths == [caps.patch_tensor("sub-01", "ses-M000", 5, 3, k) for k in range(27)]
        got = []
        for p in paths:
            t = torch.load(p, weights_only=True)
            assert (
                t.shape == (1, 5, 5, 5) and t.untyped_storage().nbytes() == 4 * 125
            )  # not a view of the bundle
            got.append(t[0].numpy())
    assert len(got) == len(reference)
    for k, (a, b) in enumerate(zip(got, reference)):
        np.testing.assert_array_equal(a, b, err_msg=f"patch {k}")


def _frame(data: GeneratedDataset):
    return load_participants(data.participants_tsv, "diagnosis")


def test_incremental_extraction_redoes_only_changed_images(fresh_caps: GeneratedDataset) -> None:
    frame = _frame(fresh_caps)
    plan = plan_extraction(frame, fresh_caps.caps_dir, "image", normalize=True)
    assert {i.reason for i in plan.items} == {"missing"}
    assert run_extraction(plan, normalize=True) == (8, 0)
    assert run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), normalize=True) == (0, 8)

    nifti = _nifti(fresh_caps, 3)
    st = nifti.stat()
    os.utime(nifti, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched (or copied): same bytes
    assert plan_extraction(frame, fresh_caps.caps_dir, "image", normalize=True).todo == []
    image = nib.load(nifti)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 0.5, image.affine), nifti)  # other content
    plan = plan_extraction(frame, fresh_caps.caps_dir, "image", normalize=True)
    assert [(i.participant, i.reason) for i in plan.todo] == [("sub-0003", "changed")]
    tensors = [CapsLayout(fresh_caps.caps_dir).image_tensor(f"sub-{i:04d}", "ses-M000") for i in range(8)]
    before = {p: p.stat().st_mtime_ns for p in tensors}
    assert run_extraction(plan, normalize=True) == (1, 7)
    changed = [p for p in tensors if p.stat().st_mtime_ns != before[p]]
    assert changed == [tensors[3]]

    # Another normalisation makes every tensor stale.
    assert run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), normalize=False) == (8, 0)

    record = json.loads(CapsLayout(fresh_caps.caps_dir).extract_json("image").read_text())
    assert record["preprocessing"] == "t1-linear" and record["mode"] == "image"
    assert record["use_uncropped_image"] is False
    assert record["file_type"]["pattern"] == "*space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.nii.gz"
    assert record["file_type"]["needed_pipeline"] == "t1-linear"


@pytest.mark.parametrize("layout", ["bundle", "clinicadl"])
def test_patch_extraction_records_and_is_incremental(
    fresh_caps: GeneratedDataset, layout: str, tmp_path: Path
) -> None:
    frame = _frame(fresh_caps).iloc[:3]
    plan = plan_extraction(frame, fresh_caps.caps_dir, ExtractionMode.patch(8, 6), layout=layout)
    assert run_extraction(plan, normalize=True) == (3, 0)
    caps = CapsLayout(fresh_caps.caps_dir)
    n = 3 * 4 * 3  # (21-8)//6+1, (26-8)//6+1, (22-8)//6+1
    for participant in frame["participant_id"]:  # each image's own patches (one buffer serves them all)
        i = int(participant.removeprefix("sub-"))
        extract_image(_nifti(fresh_caps, i), tmp_path / f"{participant}.pt", normalize=True)
        image = torch.load(tmp_path / f"{participant}.pt", weights_only=True)[0].numpy()
        if layout == "clinicadl":
            paths = [caps.patch_tensor(participant, "ses-M000", 8, 6, k) for k in range(n)]
            got = [torch.load(path, weights_only=True)[0].numpy() for path in paths]
        else:
            got = [
                p[0].numpy()
                for p in torch.load(caps.patch_bundle(participant, "ses-M000", 8, 6), weights_only=True)
            ]
        for k, (a, b) in enumerate(zip(got, _reference_patches(image, 8, 6), strict=True)):
            # each patch min-max normalised on its own, as ClinicaDL feeds patches (a constant one: 0s)
            span = float(b.max()) - float(b.min())
            want = (b.astype(np.float64) - b.min()) / span if span > 0 else np.zeros_like(b)
            np.testing.assert_allclose(a, want, atol=1e-6, err_msg=f"{participant} patch {k}")
    if layout == "clinicadl":
        assert caps.patch_tensor("sub-0002", "ses-M000", 8, 6, n - 1).is_file()
        assert not caps.patch_tensor("sub-0002", "ses-M000", 8, 6, n).exists()
    else:
        assert torch.load(caps.patch_bundle("sub-0002", "ses-M000", 8, 6), weights_only=True).shape[0] == n
    again = plan_extraction(frame, fresh_caps.caps_dir, ExtractionMode.patch(8, 6), layout=layout)
    if layout == "clinicadl":
        assert len(again.items[0].outputs) == n
    assert run_extraction(again, normalize=True) == (0, 3)
    record = json.loads(caps.extract_json("patch").read_text())
    assert (record["patch_size"], record["stride_size"], record["prepare_dl"]) == (
        8,
        6,
        layout == "clinicadl",
    )


def test_corrupt_nifti_is_named_and_earlier_tensors_stay(fresh_caps: GeneratedDataset) -> None:
    frame = _frame(fresh_caps)
    bad = _nifti(fresh_caps, 5)
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="corrupt or truncated") as err:
        run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), normalize=True)
    assert str(bad) in str(err.value)
    plan = plan_extraction(frame, fresh_caps.caps_dir, "image", normalize=True)
    assert [i.participant for i in plan.todo] == ["sub-0005", "sub-0006", "sub-0007"]
    bad.write_bytes(raw)
    assert run_extraction(plan, normalize=True) == (3, 5)


def _replace(data: GeneratedDataset, i: int, array: np.ndarray) -> Path:
    path = _nifti(data, i)
    save_nifti(path, array, data.affine)
    return path


def test_nan_voxels_are_refused(fresh_caps: GeneratedDataset) -> None:
    array = np.ones(fresh_caps.shape, np.float32)
    array[1, 2, 3] = np.nan
    path = _replace(fresh_caps, 2, array)
    with pytest.raises(InputError, match="1 voxel\\(s\\) are NaN or infinite") as err:
        run_extraction(plan_extraction(_frame(fresh_caps), fresh_caps.caps_dir, "image"), normalize=False)
    assert str(path) in str(err.value)


def test_shape_must_match_first_image(fresh_caps: GeneratedDataset) -> None:
    path = _replace(fresh_caps, 4, np.random.rand(20, 26, 22))
    with pytest.raises(InputError, match=r"shape \(20, 26, 22\) differs .* \(21, 26, 22\)") as err:
        run_extraction(plan_extraction(_frame(fresh_caps), fresh_caps.caps_dir, "image"), normalize=True)
    assert str(path) in str(err.value)


def test_constant_and_4d_images(tiny_dataset: GeneratedDataset, tmp_path: Path) -> None:
    constant = tmp_path / "c.nii.gz"
    save_nifti(constant, np.full((4, 5, 6), 7.0), np.eye(4))
    with pytest.raises(InputError, match="constant image"):
        extract_image(constant, tmp_path / "c.pt", normalize=True)
    extract_image(constant, tmp_path / "c.pt", normalize=False)  # fine without normalisation
    four = tmp_path / "f.nii.gz"
    save_nifti(four, np.zeros((4, 5, 6, 2)), np.eye(4))
    with pytest.raises(InputError, match="expected a 3D image, got shape \\(4, 5, 6, 2\\)"):
        extract_image(four, tmp_path / "f.pt", normalize=False)


def test_missing_image_is_reported_at_planning(fresh_caps: GeneratedDataset) -> None:
    _nifti(fresh_caps, 6).unlink()
    with pytest.raises(InputError, match="1 session\\(s\\) without a t1-linear image:\n  sub-0006 ses-M000"):
        plan_extraction(_frame(fresh_caps), fresh_caps.caps_dir, "image")


def test_extraction_reports_progress_over_the_images_to_do(fresh_caps: GeneratedDataset) -> None:
    import io

    from neuroexec.progress import Reporter

    frame = _frame(fresh_caps)
    stream = io.StringIO()
    run_extraction(
        plan_extraction(frame.iloc[:5], fresh_caps.caps_dir, "image"), True, Reporter(stream, live=True)
    )
    assert "extract image 5/5" in stream.getvalue()
    stream = io.StringIO()  # incremental: the bar counts only the 3 images not yet extracted
    run_extraction(plan_extraction(frame, fresh_caps.caps_dir, "image"), True, Reporter(stream, live=True))
    assert "extract image 3/3" in stream.getvalue() and "/8" not in stream.getvalue()


def test_patches_extracted_before_per_patch_normalisation_are_extracted_again(fresh_caps: GeneratedDataset):
    frame = _frame(fresh_caps).iloc[:2]
    plan = plan_extraction(frame, fresh_caps.caps_dir, ExtractionMode.patch(8, 6))
    assert run_extraction(plan, normalize=True) == (2, 0)
    caps = CapsLayout(fresh_caps.caps_dir)
    manifest = caps.manifest_json("patch")
    record = json.loads(manifest.read_text())
    for entry in record["entries"].values():  # as an earlier neuroexec recorded them
        entry["params"].pop("patch_normalization")
    manifest.write_text(json.dumps(record))
    again = plan_extraction(frame, fresh_caps.caps_dir, ExtractionMode.patch(8, 6), normalize=True)
    assert {item.reason for item in again.items} == {"parameters changed"}
    assert run_extraction(again, normalize=True) == (2, 0)
    bundle = torch.load(caps.patch_bundle("sub-0000", "ses-M000", 8, 6), weights_only=True)
    ranges = bundle.flatten(1).aminmax(dim=1)
    assert set(ranges.min.tolist()) == {0.0} and set(ranges.max.tolist()) <= {0.0, 1.0}
