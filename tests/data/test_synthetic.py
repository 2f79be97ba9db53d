from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neuroexec.data.caps import CapsLayout
from neuroexec.data.participants import load_participants
from neuroexec.data.synthetic import GeneratedDataset, generate_atrophy_dataset
from neuroexec.progress import Reporter


def _images(data: GeneratedDataset) -> dict[tuple[str, str], np.ndarray]:
    caps = CapsLayout(data.caps_dir)
    return {
        (p, s): np.asarray(nib.load(caps.t1_linear_nifti(p, s)).get_fdata())
        for p, s in zip(data.participants.participant_id, data.participants.session_id)
    }


def test_writes_a_readable_caps(tiny_dataset: GeneratedDataset) -> None:
    frame = load_participants(tiny_dataset.participants_tsv, "diagnosis", ["AD", "CN"])
    assert list(frame.participant_id) == [f"sub-{i:04d}" for i in range(8)]
    assert set(frame.session_id) == {"ses-M000"}
    assert frame.diagnosis.value_counts().to_dict() == {"AD": 4, "CN": 4}
    assert {"age", "sex"} <= set(frame.columns)
    img = nib.load(CapsLayout(tiny_dataset.caps_dir).t1_linear_nifti("sub-0000", "ses-M000"))
    assert img.shape == (21, 26, 22) == tiny_dataset.shape
    # The affine spans the 1 mm MNI crop box: 169 x 208 x 179 mm starting at (-84, -119, -78).
    voxel = np.array([169 / 21, 208 / 26, 179 / 22])
    np.testing.assert_allclose(np.diag(img.affine)[:3], voxel)
    np.testing.assert_allclose(img.affine[:3, 3] - voxel / 2, [-84.5, -119.5, -78.5])
    mask = nib.load(tiny_dataset.mask)
    assert mask.shape == img.shape and np.allclose(mask.affine, img.affine)
    assert set(np.unique(mask.get_fdata())) == {0.0, 1.0}


@pytest.mark.parametrize(("resolution", "shape"), [(4.0, (42, 52, 45)), (1.0, (169, 208, 179))])
def test_grid_follows_resolution(tmp_path: Path, resolution: float, shape: tuple[int, int, int]) -> None:
    data = generate_atrophy_dataset(tmp_path, subjects=1, resolution_mm=resolution)
    assert data.shape == shape
    assert nib.load(CapsLayout(tmp_path).t1_linear_nifti("sub-0000", "ses-M000")).shape == shape


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path) -> None:
    a = generate_atrophy_dataset(tmp_path / "a", subjects=2, resolution_mm=8.0, seed=5)
    b = generate_atrophy_dataset(tmp_path / "b", subjects=2, resolution_mm=8.0, seed=5)
    c = generate_atrophy_dataset(tmp_path / "c", subjects=2, resolution_mm=8.0, seed=6)
    name = CapsLayout(a.caps_dir).t1_linear_nifti("sub-0001", "ses-M000").relative_to(a.root)
    assert (a.root / name).read_bytes() == (b.root / name).read_bytes()
    assert a.participants_tsv.read_bytes() == b.participants_tsv.read_bytes()
    ia, ic = _images(a), _images(c)
    assert not np.allclose(ia[("sub-0001", "ses-M000")], ic[("sub-0001", "ses-M000")])


def test_offset_ids_sessions_and_reporter(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    data = generate_atrophy_dataset(
        tmp_path,
        subjects=2,
        resolution_mm=8.0,
        sessions=2,
        subject_offset=100,
        reporter=Reporter(stream, live=True),
    )
    pairs = list(zip(data.participants.participant_id, data.participants.session_id))
    assert pairs == [
        ("sub-0100", "ses-M000"),
        ("sub-0100", "ses-M012"),
        ("sub-0101", "ses-M000"),
        ("sub-0101", "ses-M012"),
    ]
    assert "synthetic images 4/4" in stream.getvalue()
    images = _images(data)
    # Two sessions of one subject share an anatomy: closer to each other than to another subject.
    same = np.abs(images[pairs[0]] - images[pairs[1]]).mean()
    other = np.abs(images[pairs[0]] - images[pairs[2]]).mean()
    assert same < other


def test_atrophy_only_inside_the_mask(tmp_path: Path) -> None:
    data = generate_atrophy_dataset(tmp_path, subjects=16, resolution_mm=8.0, seed=11)
    mask = nib.load(data.mask).get_fdata() > 0
    images = _images(data)
    inside = {"AD": [], "CN": []}
    outside = {"AD": [], "CN": []}
    for (p, _), img in images.items():
        dx = data.participants.set_index("participant_id").loc[p, "diagnosis"]
        # Relative to the subject's own outside mean, which cancels the random global gain.
        inside[dx].append(img[mask].mean() / img[~mask].mean())
        outside[dx].append(img[~mask].mean())
    ad_in, cn_in = np.array(inside["AD"]), np.array(inside["CN"])
    assert ad_in.max() < cn_in.min()  # every AD subject darker inside the region than every CN
    ad_out, cn_out = np.array(outside["AD"]), np.array(outside["CN"])
    rel_in = (cn_in.mean() - ad_in.mean()) / cn_in.mean()
    rel_out = abs(cn_out.mean() - ad_out.mean()) / cn_out.mean()
    assert rel_in > 0.1
    assert rel_out < rel_in / 4


def test_ventricles_region_enlarges_ventricles(tmp_path: Path) -> None:
    data = generate_atrophy_dataset(tmp_path, subjects=6, resolution_mm=8.0, region="ventricles", seed=2)
    assert data.mask.name == "ventricles.nii.gz"
    mask = nib.load(data.mask).get_fdata() > 0
    dx = dict(zip(data.participants.participant_id, data.participants.diagnosis))
    ratio = {p: img[mask].mean() / img[~mask].mean() for (p, _), img in _images(data).items()}
    assert max(r for p, r in ratio.items() if dx[p] == "AD") < min(
        r for p, r in ratio.items() if dx[p] == "CN"
    )


def test_unknown_region(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="region must be one of"):
        generate_atrophy_dataset(tmp_path, subjects=2, resolution_mm=8.0, region="amygdala")


def test_make_tiny_caps_helper(tmp_path: Path) -> None:
    from neuroexec.data.datasets import ImageDataset
    from tests.helpers import make_tiny_caps

    caps, tsv = make_tiny_caps(tmp_path / "caps", n_subjects=6, shape=(12, 14, 12), seed=1, extract=True)
    frame = load_participants(tsv, "diagnosis")
    assert len(frame) == 6 and caps == tmp_path / "caps"
    assert ImageDataset(frame, caps).input_size == [1, 12, 14, 12]
