"""The anatomy generator (data/anatomy.py): images that are the MNI152 template (not ellipsoids), the
hippocampus mask in the template's grey matter at the hippocampi, AD subjects with less grey matter
intensity there than CN ones, and the same bytes from the same seed. At 4 mm (seconds)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neuroexec.cli import main
from neuroexec.data.anatomy import (
    GM_THRESHOLD,
    VENTRICLES_MM,
    _displacement,
    _world,
    generate_anatomy_dataset,
    sample_template,
    template_file,
)
from neuroexec.data.caps import ROI_MASK_PATTERNS, ROI_TEMPLATES, CapsLayout
from neuroexec.data.synthetic import XFORM_CODE, generate_atrophy_dataset, roi_names

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


def test_images_and_masks_say_mm_and_mni_space(data, tmp_path):
    phantom = generate_atrophy_dataset(tmp_path / "phantom", subjects=2, resolution_mm=8.0)
    files = [*data.caps_dir.rglob("*.nii.gz"), *phantom.caps_dir.rglob("*.nii.gz")]
    assert len(files) == 8 + 3 + 2 + 3  # images, the mask and its two halves, of each generator
    for path in files:
        img = nib.load(path)
        assert img.get_qform(coded=True)[1] == img.get_sform(coded=True)[1] == XFORM_CODE == 4, path
        assert np.allclose(img.get_qform(), img.affine) and np.allclose(img.get_sform(), img.affine)
        assert img.header.get_xyzt_units()[0] == "mm", path


def test_anatomy_resolution_below_1_mm_is_refused(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'version = 1\n[datasets.d]\ncaps = "out"\n'
        'generate = { kind = "anatomy", subjects = 4, resolution_mm = 0.5 }\n'
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "datasets.d.generate.resolution_mm" in err and "at least 1, not 0.5" in err
    assert "Traceback" not in err
    spec.write_text(spec.read_text().replace("0.5", "1"))
    assert main(["validate", str(spec)]) == 0


def _dark_near_ventricles(data, img) -> int:
    """Voxels within 20 mm of the ventricles' centres darker than half the brain's mean (CSF-like)."""
    world = _world(data.shape, data.affine).reshape(*data.shape, 3)
    near = np.zeros(data.shape, bool)
    for centre in VENTRICLES_MM:
        near |= np.linalg.norm(world - np.array(centre), axis=-1) < 20.0
    x = img.get_fdata()
    return int((x[near] < 0.5 * x[x > 0.2 * x.max()].mean()).sum())


def test_ad_subjects_have_larger_ventricles(data):
    dark = {"AD": [], "CN": []}
    for dx, img in _images(data):
        dark[dx].append(_dark_near_ventricles(data, img))
    assert np.mean(dark["AD"]) > 1.4 * np.mean(dark["CN"]), dark


def test_subjects_differ_by_a_smooth_bounded_deformation(data):
    template, _ = sample_template("t1", data.shape, data.affine)
    cn = [img.get_fdata() for dx, img in _images(data) if dx == "CN"][:2]
    assert not np.allclose(cn[0], cn[1], atol=1.0)  # another anatomy, not only other noise
    assert np.corrcoef(cn[0].ravel(), cn[1].ravel())[0, 1] < 0.99
    for x in cn:
        assert np.corrcoef(x.ravel(), template.ravel())[0, 1] > 0.9
    world = _world(data.shape, data.affine)
    for index in (1, 2):
        shift = (_displacement(np.random.default_rng([0, index, 3]), world) - world).reshape(*data.shape, 3)
        assert 1.0 < np.abs(shift).max() < 15.0  # mm
        gradients = [np.gradient(shift[..., k], *data.voxel_mm) for k in range(3)]
        jacobian = np.stack([np.stack(g, -1) for g in gradients], -2) + np.eye(3)
        det = np.linalg.det(jacobian)
        assert 0.5 < det.min() and det.max() < 2.0  # smooth: no folding, no voxel doubles or halves
