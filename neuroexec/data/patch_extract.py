"""Patch cutting: how many patches an image holds, and one image tensor cut into patches and written to
the CAPS (one bundle per image, or ClinicaDL's one file per patch). `data/extract.py` calls it per image.

    >>> patch_counts((1, 32, 32, 32), 16, 8)
    (3, 3, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroexec.atomic import save_torch
from neuroexec.context import Kernels
from neuroexec.data.caps import CapsLayout
from neuroexec.data.intensity import minmax_items_
from neuroexec.errors import InputError

LAYOUTS = ("bundle", "clinicadl")


def patch_counts(shape, size: int, stride: int) -> tuple[int, int, int]:
    """Patches per axis over the last three dimensions (ops.patch_grid, after a check naming the shape)."""
    *_, d, h, w = shape
    if size > min(d, h, w) or size < 1 or stride < 1:
        raise InputError(
            None, f"patch size {size} / stride {stride} do not fit an image of shape {tuple(shape)}"
        )
    from neuroexec import ops

    return ops.patch_grid(tuple(shape), size, stride)


@dataclass(frozen=True)
class PatchCut:
    """How an image is cut into patches and written.

    layout="bundle" (default) writes one contiguous [n, 1, s, s, s] tensor per image: a training epoch
    then opens one file per image and reads patches from one memory-mapped block, instead of opening,
    unzipping and unpickling n small files (n = 8..1000s), which dominates data loading on most disks.
    layout="clinicadl" writes ClinicaDL's one file [1, s, s, s] per patch. With `normalize`, each patch
    is min-max normalised on its own, as ClinicaDL feeds patches to a model."""

    size: int
    stride: int
    layout: str = "bundle"
    uncropped: bool = False
    normalize: bool = False


def extract_patches_to(
    image: torch.Tensor,
    caps: CapsLayout,
    participant: str,
    session: str,
    cut: PatchCut,
    out: torch.Tensor | None = None,
    kernels: Kernels = "auto",
) -> list[Path]:
    """Cut an image tensor [1, X, Y, Z] into patches (ClinicaDL order) and write them; returns the paths.
    `out` [n, 1, s, s, s], when given, holds the patches (one buffer recycled over a dataset, on the
    image's device). `kernels` is the step's compute.kernels, handed to `ops.extract_patches`
    ("auto": the torch fallback for a CPU image, as ops decides).

    >>> [path] = extract_patches_to(torch.rand(1, 32, 32, 32), CapsLayout(Path("caps")), "sub-01", "ses-M000", PatchCut(16, 16))
    >>> torch.load(path).shape  # 2 x 2 x 2 patches
    torch.Size([8, 1, 16, 16, 16])
    """
    size, stride, uncropped = cut.size, cut.stride, cut.uncropped
    if cut.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {cut.layout!r}")
    from neuroexec import ops

    n = int(np.prod(patch_counts(image.shape, size, stride)))
    # [n, 1, s, s, s]
    patches = ops.extract_patches(image.unsqueeze(0), size, stride, kernels=kernels, out=out)
    patches = patches.cpu()  # cut on a GPU (kernels = "triton"): written from host memory
    if patches.shape[0] != n:
        raise RuntimeError(f"extract_patches returned {patches.shape[0]} patches, expected {n}")
    if cut.normalize:
        minmax_items_(patches)
    if cut.layout == "bundle":
        path = caps.patch_bundle(participant, session, size, stride, uncropped)
        save_torch(path, patches)
        return [path]
    paths = []
    for k in range(n):
        path = caps.patch_tensor(participant, session, size, stride, k, uncropped)
        save_torch(path, patches[k].clone())  # a view would drag the whole bundle's storage along
        paths.append(path)
    return paths


def patch_refusal(model, ds) -> str | None:
    """Why model `model` (patch mode) of dataset `ds` cannot train, known at plan time: its patches do
    not fit the images, or one network per patch finds a single patch; None otherwise, or when the
    images' size is not known yet."""
    from neuroexec.data.slice_extract import planned_image_shape

    if model.mode != "patch" or model.patch is None:
        return None
    shape = planned_image_shape(ds)
    if shape is None:
        return None
    size, stride = model.patch.size, model.patch.stride
    if size > min(shape):
        return (
            f"models.{model.name}.patch.size: patches of {size} voxels do not fit the images of dataset "
            f"{ds.name} ({' x '.join(map(str, shape))} voxels); choose a size of {min(shape)} or less"
        )
    n = int(np.prod(patch_counts((1, *shape), size, stride)))
    if model.multi_network and n < 2:
        return (
            f"models.{model.name}.multi_network: one network per patch needs 2 patches or more, and patches "
            f"of {size} every {stride} voxels give {n} per image of {' x '.join(map(str, shape))}; choose a "
            "smaller patch or stride, or leave multi_network out"
        )
    return None
