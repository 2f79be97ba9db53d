"""The anatomy generator (data/anatomy.py): images that are the MNI152 template (not ellipsoids), the
hippocampus mask in the template's grey matter at the hippocampi, AD subjects with less grey matter
intensity there than CN ones, and the same bytes from the same seed. At 4 mm (seconds)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neuroexec.data.anatomy import (
    GM_THRESHOLD,
    generate_anatomy_dataset,
    sample_template,
    template_file,
)
from neuroexec.data.caps import ROI_MASK_PATTERNS, ROI_TEMPLATES, CapsLayout
from neuroexec.data.synthetic import generate_atrophy_dataset, roi_names

# Centres of mass of the hippocampi in MNI space (mm), Harvard-Oxford / AAL: about (+-27, -21, -13)
ATLAS_CENTRES = {"left": np.array([-26.0, -21.0, -13.0]), "right": np.array([27.0, -21.0, -13.0])}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_anatomy_dataset(
        tmp_path_factory.mktemp("anatomy") / "caps", subjects=8, resolution_mm=4.0
    )


def _images(data):
    layout = CapsLayout(data.caps_dir)
    for row in data.participants.itertuples():
        img = nib.load(layout.t1_linear_nifti(row.participant_id, row.session_id))
        yield row.diagnosis, img


def _world_centre(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    ijk = np.argwhere(mask > 0).mean(axis=0)
    return affine[:3, :3] @ ijk + affine[:3, 3]


def test_the_template_files_are_those_nilearn_loads():
    from nilearn import datasets

    ours = nib.load(template_file("t1"))
    theirs = datasets.load_mni152_template(resolution=1)
    assert np.allclose(ours.affine, theirs.affine)
    assert np.allclose(ours.get_fdata() / ours.get_fdata().max(), theirs.get_fdata(), atol=1e-6)


def test_images_are_the_template_on_the_t1_linear_grid(data, tmp_path):
    template, _ = sample_template("t1", data.shape, data.affine)
    brain = template > 0.2 * template.max()  # inside the brain: its grey/white/CSF pattern
    phantom = generate_atrophy_dataset(tmp_path / "phantom", subjects=2, resolution_mm=4.0)
    old = nib.load(next(phantom.caps_dir.rglob("*_T1w.nii.gz"))).get_fdata()
    for _, img in _images(data):
        x = img.get_fdata()
        assert img.shape == data.shape == (42, 52, 45)
        assert np.allclose(img.affine, data.affine)
        assert np.corrcoef(x.ravel(), template.ravel())[0, 1] > 0.9
        assert np.corrcoef(x[brain], template[brain])[0, 1] > 0.5
    assert np.corrcoef(old[brain], template[brain])[0, 1] < 0.4  # the ellipsoids are not the anatomy


def test_the_mask_is_grey_matter_at_the_hippocampi_and_written_as_roi_masks(data):
    gm, _ = sample_template("gm", data.shape, data.affine)
    mask = nib.load(data.mask).get_fdata()
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert gm[mask > 0].mean() > GM_THRESHOLD + 0.1 and gm[mask > 0].min() > 0.1
    layout = CapsLayout(data.caps_dir)
    template, pattern = ROI_TEMPLATES["t1-linear"], ROI_MASK_PATTERNS["t1-linear"]
    halves = []
    for side, name in zip(("left", "right"), roi_names("hippocampus")):
        found = layout.find_roi_mask(template, pattern, name, cropped=True)
        half = nib.load(found).get_fdata()
        assert np.allclose(nib.load(found).affine, data.affine)
        assert np.linalg.norm(_world_centre(half, data.affine) - ATLAS_CENTRES[side]) < 8.0
        volume_cm3 = half.sum() * np.prod(data.voxel_mm) / 1000
        assert 1.5 < volume_cm3 < 6.0  # a hippocampus is about 3-4 cm3
        halves.append(half)
    assert np.array_equal(halves[0] + halves[1], mask)


def test_ad_subjects_have_less_grey_matter_intensity_in_the_mask(data):
    mask = nib.load(data.mask).get_fdata() > 0
    ratio = {"AD": [], "CN": []}
    for dx, img in _images(data):
        x = img.get_fdata()
        ratio[dx].append(x[mask].mean() / x[x > 0.2 * x.max()].mean())  # gain-free
    assert len(ratio["AD"]) == len(ratio["CN"]) == 4
    assert max(ratio["AD"]) < min(ratio["CN"])


def test_same_seed_same_bytes_another_seed_other_images(data, tmp_path):
    again = generate_anatomy_dataset(tmp_path / "again", subjects=8, resolution_mm=4.0)
    other = generate_anatomy_dataset(tmp_path / "other", subjects=8, resolution_mm=4.0, seed=1)
    for path in sorted(data.caps_dir.rglob("*.nii.gz")):
        relative = path.relative_to(data.caps_dir)
        assert (again.caps_dir / relative).read_bytes() == path.read_bytes(), relative
    first = sorted(data.caps_dir.rglob("*_T1w.nii.gz"))[0].relative_to(data.caps_dir)
    assert (other.caps_dir / first).read_bytes() != (data.caps_dir / first).read_bytes()
