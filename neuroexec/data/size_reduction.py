"""ClinicaDL's `size_reduction` of whole images (`models.<m>.size_reduction_factor` in the spec).

ClinicaDL 1.6.1 keeps, for a factor of 2 to 5, every factor-th voxel of a fixed box of the t1-linear
image (169 x 208 x 179 cropped, or 193 x 229 x 193), after the min-max normalisation of the whole
image, in training and in every later step (predict, save-tensors, interpret); the network takes the
smaller image, whose size maps.json's input_size records:

    factor   x              y              z              size
    2        4:164 step 2   8:200 step 2   8:168 step 2   80 x 96 x 80
    3        0:168 step 3   8:200 step 3   4:172 step 3   56 x 64 x 56
    4        4:164 step 4   8:200 step 4   8:168 step 4   40 x 48 x 40
    5        4:164 step 5   0:200 step 5   8:168 step 5   32 x 40 x 32

Its boxes are fixed, so an image must reach their ends (168 x 200 x 172 voxels at most); ClinicaDL
silently takes a smaller box of a smaller image, neuroexec refuses such images (at plan time when their
size is known then, naming the key). Only whole images are reduced: ClinicaDL's boxes are those of a
whole t1-linear image, and the parts of the other modes are no such images.

    >>> reduce_size(torch.zeros(1, 169, 208, 179), 2).shape
    torch.Size([1, 80, 96, 80])
"""

from __future__ import annotations

import numpy as np
import torch

from neuroexec.errors import InputError

# factor -> (start, stop) along x, y and z; the step is the factor
BOXES: dict[int, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    2: ((4, 164), (8, 200), (8, 168)),
    3: ((0, 168), (8, 200), (4, 172)),
    4: ((4, 164), (8, 200), (8, 168)),
    5: ((4, 164), (0, 200), (8, 168)),
}
KEY = "size_reduction_factor"


def _box(factor: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    if factor not in BOXES:
        raise InputError(None, f"size_reduction_factor must be 2, 3, 4 or 5, got {factor!r}", KEY)
    return BOXES[factor]


def needed_shape(factor: int) -> tuple[int, int, int]:
    """The smallest image (x, y, z) the box of `factor` fits.

    >>> needed_shape(3)
    (168, 200, 172)
    """
    return tuple(stop for _, stop in _box(factor))


def reduced_shape(factor: int) -> tuple[int, int, int]:
    """(x, y, z) of an image reduced by `factor`.

    >>> reduced_shape(5)
    (32, 40, 32)
    """
    return tuple(len(range(start, stop, factor)) for start, stop in _box(factor))


def fits(shape, factor: int) -> bool:
    """Whether a 3D image of `shape` reaches the ends of `factor`'s box."""
    return all(int(n) >= need for n, need in zip(tuple(shape)[-3:], needed_shape(factor)))


def reduce_size(image: torch.Tensor, factor: int, where=None) -> torch.Tensor:
    """Every `factor`-th voxel of ClinicaDL's box, of an image [C, X, Y, Z] (a new, contiguous tensor);
    an InputError naming `where` (the image's file) when the image does not reach the box's ends."""
    if image.dim() != 4 or not fits(image.shape, factor):
        need = " x ".join(map(str, needed_shape(factor)))
        raise InputError(
            where,
            f"size_reduction_factor {factor} takes ClinicaDL's fixed box of a t1-linear image, which needs "
            f"an image [C, X, Y, Z] of at least {need} voxels; this one is {tuple(image.shape)}",
            KEY,
        )
    (x0, x1), (y0, y1), (z0, z1) = _box(factor)
    return image[:, x0:x1:factor, y0:y1:factor, z0:z1:factor].contiguous()


def size_reduction_refusal(model, image_shape) -> str | None:
    """Why model `model` cannot reduce its images (known at plan time): a mode other than image, or
    images (of 3D `image_shape`, None when not known yet) too small for the factor's box."""
    factor = model.size_reduction_factor
    if factor is None:
        return None
    key = f"models.{model.name}.{KEY}"
    if model.mode != "image":
        return (
            f"{key}: ClinicaDL's size reduction crops whole t1-linear images, not {model.mode}s; "
            "use mode = 'image', or leave size_reduction_factor out"
        )
    if image_shape is not None and not fits(image_shape, factor):
        need = " x ".join(map(str, needed_shape(factor)))
        have = " x ".join(map(str, image_shape))
        return (
            f"{key}: a factor of {factor} keeps ClinicaDL's fixed box of a t1-linear image, which needs "
            f"images of at least {need} voxels, and the dataset's are {have}; use t1-linear images "
            "(169 x 208 x 179), or leave size_reduction_factor out"
        )
    return None


def reduce_volume(volume: np.ndarray, factor: int) -> np.ndarray:
    """A 3D volume of the image's grid (a mask) cut as `reduce_size` cuts the image."""
    (x0, x1), (y0, y1), (z0, z1) = _box(factor)
    return volume[x0:x1:factor, y0:y1:factor, z0:z1:factor]


def reduced_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    """The affine of the reduced grid: the image's, from the box's first voxel, `factor` voxels a step,
    so that a reduced map lies where its voxels were taken.

    >>> reduced_affine(np.eye(4), 2)[:3].tolist()
    [[2.0, 0.0, 0.0, 4.0], [0.0, 2.0, 0.0, 8.0], [0.0, 0.0, 2.0, 8.0]]
    """
    affine = np.asarray(affine, dtype=np.float64)
    start = np.array([start for start, _ in _box(factor)], dtype=np.float64)
    out = affine.copy()
    out[:3, :3] = affine[:3, :3] * factor
    out[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return out
