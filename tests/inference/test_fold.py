"""Parts placed back into image space (inference/fold.py): regions within their masks' boxes, cropped
or not, slices at their index, patches folded; each part's own NIfTI affine moved to where it starts."""

from __future__ import annotations

import numpy as np
import torch

from neuroexec.data.roi_extract import box_of, roi_masks_for
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.inference.fold import PartPlace, fold_parts, part_affine, part_volume

ROIS = ("leftHippocampus", "rightHippocampus")


def test_regions_cropped_or_not_fold_into_their_boxes_only(tmp_path):
    data = generate_atrophy_dataset(tmp_path / "caps", subjects=2, resolution_mm=4.0)
    shape = tuple(data.shape)
    place = PartPlace(caps=data.caps_dir)
    cropped, uncropped = ExtractionMode.roi(ROIS), ExtractionMode.roi(ROIS, uncropped=True)
    masks = roi_masks_for(data.caps_dir, cropped, False).arrays
    boxes = np.zeros(shape, dtype=bool)
    for mask in masks:
        boxes[np.ix_(*box_of(mask))] = True
    # a saliency map is non-zero everywhere, also where an uncropped region's input is zero
    full = {k: torch.ones((1, *shape)) for k in range(2)}
    folded = fold_parts(uncropped, full, shape, place)
    assert folded.shape == shape and np.array_equal(folded != 0, boxes)
    crops = {k: torch.ones((1, *(len(a) for a in box_of(m)))) for k, m in enumerate(masks)}
    assert np.array_equal(fold_parts(cropped, crops, shape, place), folded)
    # region 1's own NIfTI starts at its box's first voxel
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    start = np.array([axis[0] for axis in box_of(masks[1])], dtype=float)
    assert np.allclose(part_affine(cropped, affine, shape, 1, place)[:3, 3], 4.0 * start)


def test_slices_fold_at_their_index_and_their_nifti_is_one_voxel_thick():
    mode = ExtractionMode.slice(1, "rgb")
    shape = (5, 6, 7)
    parts = {2: torch.full((3, 5, 7), 2.0), 4: torch.full((3, 5, 7), 4.0)}
    folded = fold_parts(mode, parts, shape, PartPlace())
    assert (folded[:, 2, :] == 2).all() and (folded[:, 4, :] == 4).all()
    assert (np.delete(folded, [2, 4], axis=1) == 0).all()
    assert part_volume(mode, parts[2]).shape == (5, 1, 7)
    assert np.allclose(part_affine(mode, np.eye(4), shape, 4, PartPlace())[:3, 3], [0, 4, 0])
