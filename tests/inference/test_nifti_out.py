"""nifti_out: a written map keeps its source image's header (codes, units, voxel sizes, affine)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neuroexec.errors import InputError
from neuroexec.inference.fold import moved_affine
from neuroexec.inference.nifti_out import map_image, moved_image, save_map


def _source(tmp_path, qcode: int = 1, scode: int = 4):
    affine = np.array([[-1.5, 0, 0, 40.0], [0, 1.5, 0, -60.0], [0, 0, 2.0, -30.0], [0, 0, 0, 1]])
    image = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), affine)
    image.header.set_qform(affine, code=qcode)
    image.header.set_sform(affine, code=scode)
    image.header.set_xyzt_units("mm", "msec")
    path = tmp_path / "t1.nii.gz"
    nib.save(image, str(path))
    return path, affine


def test_map_keeps_the_source_header_codes_units_and_affine(tmp_path):
    path, affine = _source(tmp_path)
    out = tmp_path / "map.nii.gz"
    save_map(out, np.random.default_rng(0).random((3, 4, 5)), path)
    back = nib.load(str(out))
    q, qcode = back.header.get_qform(coded=True)
    s, scode = back.header.get_sform(coded=True)
    assert (int(qcode), int(scode)) == (1, 4)
    np.testing.assert_allclose(q, affine, atol=1e-5)
    np.testing.assert_allclose(s, affine)
    assert back.header.get_xyzt_units() == ("mm", "msec")
    assert back.header.get_zooms() == (1.5, 1.5, 2.0)
    assert back.get_data_dtype() == np.float32
    assert back.header.get_slope_inter() in ((1.0, 0.0), (None, None))


def test_a_moved_part_keeps_the_codes_with_its_own_affine(tmp_path):
    path, affine = _source(tmp_path, qcode=2, scode=3)
    part = moved_affine(affine, np.array([1.0, 2.0, 0.0]))
    image = moved_image(np.ones((2, 2, 5)), path, part)
    assert int(image.header.get_qform(coded=True)[1]) == 2
    assert int(image.header.get_sform(coded=True)[1]) == 3
    np.testing.assert_allclose(image.affine, part)
    assert image.header.get_xyzt_units() == ("mm", "msec")


def test_values_off_the_source_grid_are_refused(tmp_path):
    path, _ = _source(tmp_path)
    with pytest.raises(ValueError, match=r"not on the source image's grid \(3, 4, 5\)"):
        map_image(np.zeros((3, 4, 6)), path)


def test_an_unreadable_source_names_the_file(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="broken.nii.gz"):
        map_image(np.zeros((3, 4, 5)), bad)
