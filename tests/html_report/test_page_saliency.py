"""The saliency part of the page: a MAPS with the map tensors only (as ClinicaDL's interpret writes
them, no NIfTI) is drawn on the grid and header of its group's CAPS image; the threshold and the
viewer hold no network address."""

from __future__ import annotations

import base64
import io
import json
import shutil

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from neuroexec.data.caps import CapsLayout
from neuroexec.html_report.saliency import coarse, mean_images, saliency_sections
from neuroexec.maps.layout import MapsLayout
from tests.html_report.conftest import Project, read_page


def test_a_maps_with_map_tensors_only_is_drawn_on_its_caps_image(project: Project, tmp_path):
    source = MapsLayout(project.root / "maps" / "cnn")
    maps = MapsLayout(tmp_path / "cnn")
    shutil.copytree(source.groups_dir, maps.groups_dir)
    where = (0, "loss", "test", "grad")
    shutil.copytree(source.interpret_dir(*where), maps.interpret_dir(*where))
    for kind in (maps.mean_map, maps.std_map):
        kind(*where, "image", 0, "nii.gz").unlink()
    mean, std, anatomy = mean_images(maps, where)
    tensor = torch.load(maps.mean_map(*where, "image", 0), weights_only=True)
    np.testing.assert_array_equal(mean.get_fdata(dtype=np.float32), tensor.reshape(tensor.shape[-3:]).numpy())
    caps = nib.load(str(CapsLayout(project.root / "data" / "other").first_nifti()))
    np.testing.assert_array_equal(mean.affine, caps.affine)
    assert mean.header.get_sform(coded=True)[1] == caps.header.get_sform(coded=True)[1]
    assert std is not None and anatomy is not None
    page = read_page("".join(saliency_sections(maps, where[:3])))
    title = "saliency grad: test, split-0, best-loss"
    assert [alt for _, alt in page.images] == [
        f"{title}: {kind} saliency map over the anatomy" for kind in ("mean", "std")
    ]
    assert len(page.viewers) == 1 and "https://" not in page.viewers[0]


def test_an_interpretation_without_maps_says_so(project: Project, tmp_path):
    source = MapsLayout(project.root / "maps" / "cnn")
    maps = MapsLayout(tmp_path / "cnn")
    where = (1, "loss", "test", "grad")
    maps.interpret_dir(*where).mkdir(parents=True)
    shutil.copy(source.interpret_summary(*where), maps.interpret_summary(*where))
    text = "".join(saliency_sections(maps, where[:3]))
    assert "No whole-image mean map" in text and "<img" not in text


def test_roi_and_slice_models_show_their_part_maps(project: Project, tmp_path):
    source = MapsLayout(project.root / "maps" / "cnn")
    where = (0, "loss", "test", "grad")
    for mode in ("roi", "slice"):
        maps = MapsLayout(tmp_path / mode)
        maps.interpret_dir(*where).mkdir(parents=True)
        summary = json.loads(source.interpret_summary(*where).read_text())
        maps.interpret_summary(*where).write_text(json.dumps({**summary, "mode": mode}))
        parts = (0,) if mode == "roi" else (0, 1)  # one region: each is drawn over the 1 mm template
        for k in parts:
            shutil.copy(source.mean_map(*where, "image", 0), maps.mean_map(*where, mode, k))
        if mode == "roi":  # each region's map as a NIfTI
            shutil.copy(
                source.mean_map(*where, "image", 0, "nii.gz"), maps.mean_map(*where, mode, 0, "nii.gz")
            )
        else:  # each slice's picture, as interpret draws it
            for k in (0, 1):
                Image.new("RGB", (40, 30), (200, 10 * k, 0)).save(maps.mean_map_figure(*where, mode, k))
        page = read_page("".join(saliency_sections(maps, where[:3])))
        alts = [alt for _, alt in page.images]
        if mode == "roi":
            assert alts == ["roi-0: mean saliency map over the anatomy"]
        else:
            assert alts == ["slice-0: mean saliency map", "slice-1: mean saliency map"]
            drawn = Image.open(io.BytesIO(base64.b64decode(page.images[1][0].split(",", 1)[1])))
            assert drawn.getpixel((0, 0)) == (200, 10, 0)


def test_the_viewer_gets_fine_grids_at_2_mm_and_coarse_ones_as_they_are():
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [30, -40, -20]
    fine = nib.Nifti1Image(np.random.default_rng(0).random((60, 80, 40), np.float32), affine)
    made = coarse(fine)
    assert made.header.get_zooms()[:3] == (2.0, 2.0, 2.0)
    assert np.sign(made.affine[0, 0]) == -1  # the orientation kept
    np.testing.assert_allclose(made.affine[:3, 3], affine[:3, 3])
    grid = nib.Nifti1Image(np.ones((10, 12, 10), np.float32), np.diag([8.0, 8.0, 8.0, 1.0]))
    assert coarse(grid) is grid
