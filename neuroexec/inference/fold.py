"""Parts back into image space: the one place that knows where a patch, a region or a slice of an
image sits, for the NIfTIs of save-tensors and interpret.

`fold_parts` turns the parts of one image (a dict part index -> tensor [C, ...]) into a 3D volume of
the image's shape; `part_affine` is the affine of one part's own NIfTI (the image's, moved to the
part's origin). Patches are folded by `ops.fold_patches` (overlaps averaged); regions and slices by
their mode's module (`data/roi_extract.py`, `data/slice_extract.py`).

>>> import torch
>>> from neuroexec.extraction_mode import ExtractionMode
>>> parts = {k: torch.full((1, 2, 2, 2), float(k)) for k in range(8)}
>>> float(fold_parts(ExtractionMode.patch(2, 2), parts, (4, 4, 4), PartPlace())[3, 3, 3])
7.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroexec import ops
from neuroexec.context import Kernels
from neuroexec.extraction_mode import ExtractionMode


@dataclass(frozen=True)
class PartPlace:
    """What placing parts needs beyond the parts: the step's kernels (patches), the CAPS whose masks
    locate the regions (roi), and whether the images are uncropped."""

    kernels: Kernels = "auto"
    caps: Path | None = None
    uncropped: bool = False


def fold_parts(
    mode: ExtractionMode, parts: dict[int, torch.Tensor], image_shape: tuple[int, ...], place: PartPlace
) -> np.ndarray:
    """The parts of one image as a 3D volume of `image_shape` (parts never given are zeros)."""
    shape = tuple(int(s) for s in image_shape[-3:])
    if not mode.has_parts:
        only = next(iter(parts.values()))
        return only.detach().float().cpu().reshape(only.shape[-3:]).numpy()
    if mode.is_patch:
        return _fold_patches(mode, parts, shape, place.kernels)
    if mode.is_roi:
        from neuroexec.data.roi_extract import fold_rois

        return fold_rois(mode, parts, shape, place)
    from neuroexec.data.slice_extract import fold_slices

    return fold_slices(mode, parts, shape)


def part_affine(
    mode: ExtractionMode, affine: np.ndarray, image_shape: tuple[int, ...], index: int, place: PartPlace
) -> np.ndarray:
    """The affine of part `index`'s own NIfTI: the image's, moved to where the part starts."""
    if not mode.has_parts:
        return np.asarray(affine, dtype=np.float64)
    if mode.is_patch:
        _, n_h, n_w = ops.patch_grid(tuple(image_shape[-3:]), mode.size, mode.stride)
        origin = np.array([index // (n_h * n_w), (index // n_w) % n_h, index % n_w], dtype=np.float64)
        return moved_affine(affine, origin * mode.stride)
    if mode.is_roi:
        from neuroexec.data.roi_extract import roi_origin

        return moved_affine(
            affine, np.asarray(roi_origin(mode, index, tuple(image_shape[-3:]), place), float)
        )
    origin = np.zeros(3)
    origin[mode.direction] = index
    return moved_affine(affine, origin)


def part_volume(mode: ExtractionMode, part: torch.Tensor) -> np.ndarray:
    """One part as a 3D array for its own NIfTI: a 2D slice [C, H, W] becomes [1, H, W] along its axis
    (first channel: rgb slices are three copies)."""
    t = part.detach().float().cpu()
    if mode.is_slice:
        plane = t.reshape(-1, *t.shape[-2:])[0].numpy()
        return np.expand_dims(plane, axis=mode.direction)
    return t.reshape(t.shape[-3:]).numpy()


def moved_affine(affine: np.ndarray, origin_voxels: np.ndarray) -> np.ndarray:
    """`affine` with its origin moved to voxel `origin_voxels`."""
    moved = np.array(affine, dtype=np.float64, copy=True)
    moved[:3, 3] = np.asarray(affine, dtype=np.float64)[:3, :3] @ origin_voxels + moved[:3, 3]
    return moved


def _fold_patches(
    mode: ExtractionMode, parts: dict[int, torch.Tensor], shape: tuple[int, int, int], kernels: Kernels
) -> np.ndarray:
    """Per-patch-index tensors -> one image (overlaps averaged; patch indices never given are zeros)."""
    n = int(np.prod(ops.patch_grid(shape, mode.size, mode.stride)))
    first = next(iter(parts.values()))
    patches = torch.zeros((n, *first.shape), dtype=torch.float32, device=first.device)
    for k, part in parts.items():
        patches[k] = part.float()
    folded = ops.fold_patches(patches, (1, first.shape[0], *shape), mode.size, mode.stride, kernels=kernels)
    return folded[0, 0].detach().cpu().numpy()
