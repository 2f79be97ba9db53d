"""The saliency part of the page: a MAPS with the map tensors only (as ClinicaDL's interpret writes
them, no NIfTI) is drawn on the grid and header of its group's CAPS image; the threshold and the
viewer hold no network address."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.html_report.saliency import mean_images, saliency_sections
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
    assert [alt for _, alt in page.images] == [
        "saliency grad: test, split-0, best-loss: mean and std saliency maps over the anatomy"
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
