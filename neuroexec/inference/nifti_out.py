"""NIfTIs written from a source image: a map or a tensor keeps the header of the image it came from.

A saliency map, a saved tensor or a folded part is written with the source image's header: its qform
and sform with their codes (scanner, aligned, MNI...), its xyzt units and its voxel sizes, so a viewer
places it exactly where the source lies. Only the data type changes (float32, no scaling).

    map_image(values, source)             values on the source's own grid (same 3D shape)
    moved_image(values, source, affine)   values on another grid of the same space (a part, a reduced
                                          image): the source's codes and units, the given affine
    save_image(path, image)               written atomically (.nii or .nii.gz)

>>> import nibabel as nib
>>> source = nib.Nifti1Image(np.zeros((2, 3, 4), np.int16), np.diag([2.0, 2.0, 2.0, 1.0]))
>>> source.header.set_sform(source.affine, code=4)
>>> image = map_image(np.ones((2, 3, 4)), source)
>>> int(image.header.get_sform(coded=True)[1]), image.get_data_dtype().name
(4, 'float32')
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from neuroexec.atomic import atomic_open
from neuroexec.errors import InputError


def load_source(source: Path | nib.Nifti1Image) -> nib.Nifti1Image:
    """The source image (a path is read; its header only, the data stays on disk)."""
    if isinstance(source, nib.Nifti1Image):
        return source
    try:
        image = nib.load(str(source))
    except Exception as err:  # nibabel raises several unrelated types for a bad file
        raise InputError(Path(source), f"cannot read the NIfTI header: {err}") from None
    if not isinstance(image, nib.Nifti1Image):
        raise InputError(Path(source), "is not a NIfTI-1 image: give the .nii or .nii.gz it was read from")
    return image


def map_image(values: np.ndarray, source: Path | nib.Nifti1Image) -> nib.Nifti1Image:
    """`values` (3D, or 4D with the source's 3D grid first) as a float32 NIfTI on `source`'s grid, with
    `source`'s header: qform and sform and their codes, xyzt units, voxel sizes.

    A ValueError when `values` is not on the source's grid (another shape): an image of another grid
    is `moved_image`'s.
    """
    src = load_source(source)
    data = np.asarray(values, dtype=np.float32)
    grid = tuple(int(s) for s in src.shape[:3])
    if data.shape[:3] != grid:
        raise ValueError(f"values of shape {data.shape} are not on the source image's grid {grid}")
    return _with_header(data, src, np.asarray(src.affine, dtype=np.float64))


def moved_image(values: np.ndarray, source: Path | nib.Nifti1Image, affine: np.ndarray) -> nib.Nifti1Image:
    """`values` as a float32 NIfTI of voxel-to-world `affine` (a part of the source image, or the
    source on a coarser grid) with `source`'s qform/sform codes and xyzt units; the voxel sizes are
    the affine's."""
    return _with_header(np.asarray(values, dtype=np.float32), load_source(source), affine)


def _with_header(data: np.ndarray, src: nib.Nifti1Image, affine: np.ndarray) -> nib.Nifti1Image:
    header = src.header.copy()
    _, qcode = src.header.get_qform(coded=True)
    _, scode = src.header.get_sform(coded=True)
    affine = np.asarray(affine, dtype=np.float64)
    image = nib.Nifti1Image(data, affine, header=header)
    image.set_data_dtype(np.float32)
    image.header.set_slope_inter(1.0, 0.0)
    # a new affine resets the codes (qform unknown, sform aligned): the source's are put back
    image.set_qform(affine, code=int(qcode))
    # a source without codes: its affine (from the voxel sizes) is kept as an aligned sform
    image.set_sform(affine, code=int(scode) if scode or qcode else 2)
    return image


def save_image(path: str | Path, image: nib.Nifti1Image) -> None:
    """Write `image` atomically; gzip-compressed when `path` ends with .gz."""
    raw = image.to_bytes()
    with atomic_open(path, "wb") as f:
        f.write(gzip.compress(raw, compresslevel=1, mtime=0) if str(path).endswith(".gz") else raw)


def save_map(
    path: str | Path, values: np.ndarray, source: Path | nib.Nifti1Image, affine: np.ndarray | None = None
) -> None:
    """`values` written at `path` with `source`'s header: on the source's grid (`affine` None) or on
    the grid of `affine` (a part, a reduced image)."""
    image = map_image(values, source) if affine is None else moved_image(values, source, affine)
    save_image(path, image)
