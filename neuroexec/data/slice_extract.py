"""2D slices: an image tensor cut into the slices of one axis and written to the CAPS (one bundle per
image and axis, or ClinicaDL's one file per slice), and slices put back into a volume.

Slice `k` of direction `d` is ClinicaDL's `image[:, k]` (d = 0, sagittal), `image[:, :, k]` (1, coronal)
or `image[:, :, :, k]` (2, axial) of the image tensor [1, X, Y, Z]; rgb slices repeat it on 3 channels.
Every slice of the axis is extracted: the slices a model discards at both ends are left out when its
dataset reads them (`data/slice_dataset.py`), so models differing only there share the tensors.

    >>> image = torch.arange(24.0).reshape(1, 2, 3, 4)
    >>> cut_slices(image, 2, "rgb").shape  # 4 axial slices of 3 channels, 2 x 3 voxels each
    torch.Size([4, 3, 2, 3])
    >>> bool((cut_slices(image, 0, "single")[1, 0] == image[0, 1]).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuroexec.atomic import save_torch
from neuroexec.data.caps import CapsLayout, preprocessing_record
from neuroexec.data.intensity import minmax_items_
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode


def slice_count(image_shape: tuple[int, ...], direction: int) -> int:
    """Slices of an image of shape (X, Y, Z) (or [1, X, Y, Z]) along `direction`, discarded ones included."""
    return int(tuple(image_shape)[-3:][direction])


def slice_range(n_all: int, discarded: tuple[int, int], where: str = "slice.discarded") -> range:
    """ClinicaDL's slice indices left once `discarded` = (begin, end) are left out: begin .. n_all - end - 1.
    An InputError for the field `where` when none is left.

    >>> slice_range(10, (2, 3))
    range(2, 7)
    >>> slice_range(4, (2, 2))
    Traceback (most recent call last):
    ...
    neuroexec.errors.InputError: [slice.discarded]: discarding 2 slice(s) at the beginning and 2 at the end of the 4 slices of the axis leaves none; discard fewer
    """
    why = _leaves_none(n_all, discarded)
    if why:
        raise InputError(None, why, where)
    return range(int(discarded[0]), n_all - int(discarded[1]))


def _leaves_none(n_all: int, discarded: tuple[int, int]) -> str | None:
    begin, end = int(discarded[0]), int(discarded[1])
    if begin < 0 or end < 0 or begin + end >= n_all:
        return (
            f"discarding {begin} slice(s) at the beginning and {end} at the end of the {n_all} slices "
            "of the axis leaves none; discard fewer"
        )
    return None


def cut_slices(image: torch.Tensor, direction: int, slice_mode: str) -> torch.Tensor:
    """Every slice of `image` [1, X, Y, Z] along `direction`, as one contiguous [n, C, H, W] tensor
    (C = 3 identical channels for rgb, 1 for single: ClinicaDL's extract_slice_tensor, stacked)."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"expected an image tensor [1, X, Y, Z], got shape {tuple(image.shape)}")
    planes = image[0].movedim(direction, 0).unsqueeze(1)  # [n, 1, H, W]
    channels = ExtractionMode.slice(direction, slice_mode).channels
    return planes.expand(-1, channels, -1, -1).contiguous()


@dataclass(frozen=True)
class SliceCut:
    """How an image is cut into slices and written: layout "bundle" (one contiguous [n, C, H, W] tensor
    per image and axis, read memory-mapped) or "clinicadl" (one [C, H, W] file per slice). With
    `normalize`, each slice is min-max normalised on its own, as ClinicaDL feeds slices to a model."""

    direction: int
    slice_mode: str
    layout: str = "bundle"
    uncropped: bool = False
    normalize: bool = False

    @property
    def mode(self) -> ExtractionMode:
        return ExtractionMode.slice(self.direction, self.slice_mode)


def slice_outputs(
    caps: CapsLayout, participant: str, session: str, cut: SliceCut, n: int | None
) -> tuple[Path, ...]:
    """The slice tensors extraction writes for a session (`n` slices per image, when known; slice 0
    stands for ClinicaDL's files when not)."""
    axis, channel = cut.mode.axis_name, cut.slice_mode
    if cut.layout == "bundle":
        return (caps.slice_bundle(participant, session, axis, channel, cut.uncropped),)
    count = 1 if n is None else n
    return tuple(
        caps.slice_tensor(participant, session, axis, channel, k, cut.uncropped) for k in range(count)
    )


def extract_slices_to(
    image: torch.Tensor, caps: CapsLayout, participant: str, session: str, cut: SliceCut
) -> list[Path]:
    """Cut `image` [1, X, Y, Z] into its slices along the cut's direction and write them; returns the
    paths (the bundle, or one file per slice, ClinicaDL's names and numbering).

    >>> paths = extract_slices_to(torch.rand(1, 5, 6, 7), CapsLayout(Path("caps")), "sub-01", "ses-M000",
    ...                           SliceCut(1, "rgb", layout="clinicadl"))
    >>> len(paths), paths[2].name
    (6, 'sub-01_ses-M000_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_axis-cor_channel-rgb_slice-2_T1w.pt')
    >>> torch.load(paths[2]).shape
    torch.Size([3, 5, 7])
    """
    slices = cut_slices(image.float().cpu(), cut.direction, cut.slice_mode)
    if cut.normalize:
        minmax_items_(slices)
    if cut.layout == "bundle":
        [path] = slice_outputs(caps, participant, session, cut, None)
        save_torch(path, slices)
        return [path]
    paths = list(slice_outputs(caps, participant, session, cut, slices.shape[0]))
    for k, path in enumerate(paths):
        save_torch(path, slices[k].clone())  # a view would drag the whole bundle's storage along
    return paths


def slice_record(cut: SliceCut, preprocessing: str = "t1-linear") -> dict:
    """ClinicaDL's `tensor_extraction/extract_slice.json` of this extraction: every slice of the axis
    (`discarded_slices` [0, 0]; a model discards its own at read time), `prepare_dl` true only where
    ClinicaDL can read one file per slice (the clinicadl layout; otherwise it cuts the image tensors).

    >>> record = slice_record(SliceCut(2, "single"))
    >>> record["slice_direction"], record["slice_mode"], record["discarded_slices"], record["prepare_dl"]
    (2, 'single', [0, 0], False)
    """
    settings = {"slice_direction": cut.direction, "slice_mode": cut.slice_mode, "discarded_slices": [0, 0]}
    return preprocessing_record(
        "slice", cut.uncropped, cut.layout == "clinicadl", None, preprocessing, settings
    )


def fold_slices(mode: ExtractionMode, parts: dict[int, torch.Tensor], shape: tuple[int, ...]) -> np.ndarray:
    """Slices back into image space: slice k ([C, H, W] or [H, W]; the first channel of an rgb one) at
    index k along the mode's direction of a zero volume of `shape` (X, Y, Z).

    >>> volume = fold_slices(ExtractionMode.slice(0, "rgb"), {1: torch.ones(3, 4, 5)}, (3, 4, 5))
    >>> volume.shape, float(volume[1].sum()), float(volume[0].sum())
    ((3, 4, 5), 20.0, 0.0)
    """
    volume = np.zeros(tuple(int(s) for s in shape[-3:]), dtype=np.float32)
    planes = np.moveaxis(volume, mode.direction, 0)  # a view: writing it writes the volume
    for k, part in parts.items():
        plane = part.detach().float().cpu()
        plane = plane.reshape(-1, *plane.shape[-2:])[0]
        if tuple(plane.shape) != planes.shape[1:] or not 0 <= int(k) < planes.shape[0]:
            raise ValueError(
                f"slice {k} of shape {tuple(plane.shape)} does not fit axis {mode.direction} of {shape}"
            )
        planes[int(k)] = plane.numpy()
    return volume


def planned_image_shape(ds) -> tuple[int, int, int] | None:
    """The 3D shape of a spec dataset's images, known before extraction: the grid a generated dataset
    will have, else the header of the first image of the dataset's preprocessing in its first CAPS that
    has one (None when there is none yet, or it cannot be read)."""
    if ds.generate is not None:
        from neuroexec.data.synthetic import grid_for

        return tuple(grid_for(ds.generate.resolution_mm)[0][:3])
    import nibabel as nib

    for cohort in ds.cohorts:
        found = CapsLayout.of(cohort.caps, ds).first_nifti(ds.uncropped)
        if found is None:
            continue
        try:
            shape = tuple(int(n) for n in nib.load(str(found)).shape)
        except (OSError, ValueError, IndexError, nib.filebasedimages.ImageFileError):
            return None  # the extract step names what is unreadable
        return shape[:3] if len(shape) >= 3 else None
    return None


def axis_length(ds, direction: int) -> int | None:
    """Slices along `direction` of a spec dataset's images, known before extraction (planned_image_shape)."""
    shape = planned_image_shape(ds)
    return None if shape is None else shape[direction]


def discarded_refusal(model, ds) -> str | None:
    """Why model `model` (slice mode) of dataset `ds` cannot train: the slices it discards leave none of
    the axis, or a single one for one network per slice; None when they leave enough, or the images'
    size is not known yet."""
    if model.mode != "slice" or model.slice is None:
        return None
    n_all = axis_length(ds, model.slice.direction)
    if n_all is None:
        return None
    why = _leaves_none(n_all, model.slice.discarded)
    if why:
        return f"models.{model.name}.slice.discarded: {why}"
    left = n_all - sum(model.slice.discarded)
    if model.multi_network and left < 2:
        return (
            f"models.{model.name}.multi_network: one network per slice needs 2 slices or more, and the "
            f"discarded slices leave {left} of the {n_all}; discard fewer, or leave multi_network out"
        )
    return None
