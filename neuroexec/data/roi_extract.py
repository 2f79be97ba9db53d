"""Regions of interest: the masks ClinicaDL finds, a region cut from an image, written to the CAPS, and
put back into image space (save-tensors and interpret NIfTIs).

A region is ClinicaDL's `extract_roi_tensor`: the image times its binary mask, cropped to the voxels
where the mask has any 1 along each axis (the mask's bounding box for a mask without empty planes
inside it), or left at full size with `uncropped_roi`. Masks live in `<CAPS>/masks/tpl-<template>/`
(paths in `data/caps.py`); a missing, non-binary or mis-shaped mask is an InputError naming the
pattern looked for and the folder.

    >>> mask = np.zeros((4, 4, 4), dtype=bool); mask[1:3, 0:2, 2:4] = True
    >>> cut_roi(torch.ones(1, 4, 4, 4), mask, uncropped_roi=False).shape
    torch.Size([1, 2, 2, 2])
    >>> float(fold_roi(torch.full((1, 2, 2, 2), 3.0), mask, False).sum())
    24.0
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from neuroexec.atomic import save_torch
from neuroexec.data.caps import ROI_MASK_PATTERNS, ROI_TEMPLATES, CapsLayout, roi_mask_glob
from neuroexec.data.intensity import minmax_items_
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.plan.fingerprint import content_hash

# What a mask's name must say of the crop, for cropped images, uncropped ones, or custom (either)
_CROP_NOTE = {
    True: " with '_desc-Crop_' in the name (cropped images)",
    False: " without '_desc-Crop_' in the name (uncropped images)",
    None: "",
}


@dataclass(frozen=True)
class RoiSource:
    """Where a dataset's ROI masks are found: ClinicaDL's template and mask-name pattern of the
    preprocessing (custom ones for `custom`), and whether the images are cropped (None for `custom`:
    ClinicaDL then takes masks with or without `_desc-Crop_`)."""

    template: str
    pattern: str
    cropped: bool | None

    @classmethod
    def of(
        cls,
        preprocessing: str = "t1-linear",
        uncropped: bool = False,
        custom_template: str | None = None,
        custom_mask_pattern: str | None = None,
    ) -> RoiSource:
        """The masks of a preprocessing (ClinicaDL's TEMPLATE_DICT / PATTERN_DICT), or the custom ones.

        >>> RoiSource.of("t1-linear")
        RoiSource(template='MNI152NLin2009cSym', pattern='res-1x1x1', cropped=True)
        """
        if preprocessing == "custom" or preprocessing not in ROI_TEMPLATES:
            if not custom_template:
                raise InputError(
                    None,
                    f"ROI masks of preprocessing {preprocessing!r} have no default template: set "
                    "roi.custom_template (the masks are in <CAPS>/masks/tpl-<custom_template>/)",
                    "roi.custom_template",
                )
            return cls(
                custom_template,
                custom_mask_pattern or "",
                None if preprocessing == "custom" else not uncropped,
            )
        return cls(ROI_TEMPLATES[preprocessing], ROI_MASK_PATTERNS[preprocessing], not uncropped)


def preprocessing_name(preprocessing: object) -> str:
    """The name of a preprocessing given as its name or as an object with a `name` ('t1-linear')."""
    return str(getattr(preprocessing, "name", preprocessing))


@dataclass(frozen=True)
class RoiExtraction:
    """What a ROI extraction needs beyond the image settings: its regions (the mode) and their masks.
    `custom`: the template and pattern are the spec's roi.custom_* (ClinicaDL's roi_custom_* keys)."""

    mode: ExtractionMode
    source: RoiSource
    custom: bool = False

    def masks(self, caps: Path) -> RoiMasks:
        return find_masks(caps, self.mode.rois, self.source)

    def record(self, caps: Path) -> dict:
        return roi_record(self.mode, self.source, caps, self.custom)


@dataclass(frozen=True)
class RoiMasks:
    """The binary masks of a mode's regions, in part-index order, and their content hashes (an
    extracted region depends on its mask: another mask is another region)."""

    names: tuple[str, ...]
    paths: tuple[Path, ...]
    arrays: tuple[np.ndarray, ...]  # bool [X, Y, Z]
    hashes: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.arrays[0].shape)

    def part_shape(self, k: int, uncropped_roi: bool) -> tuple[int, int, int]:
        """[X, Y, Z] of region k's tensor (without its channel)."""
        if uncropped_roi:
            return tuple(self.arrays[k].shape)
        return tuple(len(axis) for axis in box_of(self.arrays[k]))

    def check_image_shape(self, shape: tuple[int, ...], where: Path | str | None) -> None:
        """InputError when the masks and an image (`where`) are not on the same grid."""
        for name, path, array in zip(self.names, self.paths, self.arrays):
            if tuple(array.shape) != tuple(shape[-3:]):
                raise InputError(
                    path,
                    f"the mask of ROI {name!r} has shape {tuple(array.shape)}, the image {where} has "
                    f"{tuple(shape[-3:])}: masks must be on the images' grid (same template and resolution)",
                )


def box_of(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per axis, the indices where the mask has any voxel set (ClinicaDL's crop keeps exactly these)."""
    return tuple(np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != d))) for d in range(3))


def find_masks(caps: Path | CapsLayout, names: tuple[str, ...], source: RoiSource) -> RoiMasks:
    """The masks of `names` in `caps`, read and checked (all missing ones named together)."""
    layout = caps if isinstance(caps, CapsLayout) else CapsLayout(caps)
    folder = layout.roi_masks_dir(source.template)
    paths, missing = [], []
    for name in names:
        path = layout.find_roi_mask(source.template, source.pattern, name, source.cropped)
        if path is None:
            missing.append(name)
        paths.append(path)
    if missing:
        globs = ", ".join(roi_mask_glob(source.pattern, n) for n in missing)
        crop = _CROP_NOTE[source.cropped]
        raise InputError(
            folder,
            f"no mask for ROI {', '.join(map(repr, missing))}: looked for {globs}{crop}; add the mask "
            "there or fix roi.list",
        )
    arrays = tuple(read_mask(p, n) for p, n in zip(paths, names))
    return RoiMasks(tuple(names), tuple(paths), arrays, tuple(content_hash(p) for p in paths))


def read_mask(path: Path, name: str) -> np.ndarray:
    """A binary 3D mask (a 4D one with a single volume too) as bool; InputError otherwise."""
    st = path.stat()
    return _read_mask(str(path), name, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=32)
def _read_mask(path: str, name: str, _mtime_ns: int, _size: int) -> np.ndarray:
    import nibabel as nib

    try:
        data = np.asanyarray(nib.load(path).dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds on a damaged file
        raise InputError(path, f"cannot read the mask of ROI {name!r}: {exc}") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    elif data.ndim == 4 and data.shape[0] == 1:  # ClinicaDL's extract_roi_tensor accepts [1, X, Y, Z]
        data = data[0]
    if data.ndim != 3:
        raise InputError(path, f"the mask of ROI {name!r} must be a 3D image, got shape {data.shape}")
    values = set(np.unique(data).tolist())
    if values != {0, 1}:
        shown = ", ".join(f"{v:g}" for v in sorted(values)[:5]) + (" ..." if len(values) > 5 else "")
        raise InputError(
            path, f"the mask of ROI {name!r} must be binary (0 and 1, both present), it holds {shown}"
        )
    array = data.astype(bool)
    array.setflags(write=False)
    return array


def cut_roi(image: torch.Tensor, mask: np.ndarray, uncropped_roi: bool, box=None) -> torch.Tensor:
    """Region of `image` [C, X, Y, Z]: image * mask, cropped to the mask's box unless `uncropped_roi`
    (`box`: the mask's `box_of`, when the caller keeps it). The box is cut first and multiplied by the
    mask's box: the same values, without reading or multiplying the whole image (a region read from a
    memory-mapped image tensor touches only its box)."""
    if uncropped_roi:
        return (image * torch.from_numpy(mask.astype(np.float32))).float().contiguous()
    box = box_of(mask) if box is None else box
    ix, iy, iz = (torch.from_numpy(a) for a in box)
    region = image.index_select(1, ix).index_select(2, iy).index_select(3, iz)
    return (region * torch.from_numpy(mask[np.ix_(*box)].astype(np.float32))).float().contiguous()


def fold_roi(part: torch.Tensor, mask: np.ndarray, uncropped_roi: bool) -> np.ndarray:
    """One region's tensor [C, ...] (first channel) back at its place in a zero volume of the mask's shape."""
    values = part.detach().float().cpu().reshape(-1, *part.shape[-3:])[0].numpy()
    volume = np.zeros(mask.shape, dtype=np.float32)
    if uncropped_roi:
        volume[...] = values
    else:
        volume[np.ix_(*box_of(mask))] = values
    return volume


def roi_masks_for(caps: Path | CapsLayout | None, mode: ExtractionMode, uncropped: bool) -> RoiMasks:
    """The masks of a mode's regions for images of a CAPS (t1-linear's template)."""
    if caps is None:
        raise InputError(None, "placing regions back into image space needs the CAPS holding their masks")
    return find_masks(caps, mode.rois, RoiSource.of("t1-linear", uncropped))


def fold_rois(
    mode: ExtractionMode, parts: dict[int, torch.Tensor], shape: tuple[int, ...], place
) -> np.ndarray:
    """The regions of one image (part index -> tensor) as one volume of `shape`: each region within its
    mask's box (uncropped regions too), averaged where boxes overlap, zeros elsewhere and for regions
    never given. `place`: inference.fold.PartPlace."""
    masks = roi_masks_for(place.caps, mode, place.uncropped)
    masks.check_image_shape(tuple(shape), "being folded")
    total = np.zeros(tuple(shape[-3:]), dtype=np.float64)
    count = np.zeros(tuple(shape[-3:]), dtype=np.int32)
    for k, part in sorted(parts.items()):
        mask = masks.arrays[k]
        placed = np.zeros(mask.shape, dtype=bool)
        placed[np.ix_(*box_of(mask))] = True
        # An uncropped region is the whole image with zeros outside its mask: only its box is the
        # region's (a map there and beyond would show saliency where the input is always zero).
        total += np.where(placed, fold_roi(part, mask, mode.uncropped_roi), 0.0)
        count += placed
    return (total / np.maximum(count, 1)).astype(np.float32)


def roi_origin(mode: ExtractionMode, index: int, shape: tuple[int, ...], place) -> tuple[int, int, int]:
    """The voxel where region `index`'s tensor starts in the image (0, 0, 0 with uncropped_roi)."""
    if mode.uncropped_roi:
        return (0, 0, 0)
    mask = roi_masks_for(place.caps, mode, place.uncropped).arrays[index]
    return tuple(int(axis[0]) for axis in box_of(mask))


def extract_rois_to(
    image: torch.Tensor,
    caps: CapsLayout,
    participant: str,
    session: str,
    masks: RoiMasks,
    mode: ExtractionMode,
    uncropped: bool,
    normalize: bool,
) -> list[Path]:
    """Write ClinicaDL's one file per region of an image tensor [1, X, Y, Z] (not normalised); with
    `normalize`, each region is min-max normalised on its own, as ClinicaDL feeds it to a model."""
    paths = []
    for path, mask in zip(masks.paths, masks.arrays):
        region = cut_roi(image, mask, mode.uncropped_roi)
        if normalize:
            minmax_items_(region[None])
        out = caps.roi_tensor(participant, session, path, mode.uncropped_roi, uncropped)
        save_torch(out, region)
        paths.append(out)
    return paths


def roi_record(mode: ExtractionMode, source: RoiSource, caps: Path, custom: bool) -> dict:
    """The ROI keys of ClinicaDL's `extract_roi.json` (prepare_data's parameters for mode roi)."""
    return {
        "roi_list": list(mode.rois),
        "uncropped_roi": mode.uncropped_roi,
        "roi_custom_template": source.template if custom else "",
        "roi_custom_mask_pattern": source.pattern if custom else "",
        "roi_template": source.template,
        "roi_mask_pattern": source.pattern,
        "masks_location": str(CapsLayout(caps).roi_masks_dir(source.template)),
    }


def single_network_refusal(masks: RoiMasks, uncropped_roi: bool, multi_network: bool) -> str | None:
    """Why one network cannot read every region (their tensors differ in shape), or None."""
    if multi_network or uncropped_roi:
        return None
    shapes = {name: masks.part_shape(k, False) for k, name in enumerate(masks.names)}
    if len(set(shapes.values())) <= 1:
        return None
    listed = ", ".join(f"{n} {'x'.join(map(str, s))}" for n, s in shapes.items())
    return (
        f"the regions' boxes differ in shape ({listed}), so one network cannot read them all: set "
        "multi_network = true (one network per region) or roi.uncropped = true (full-size regions)"
    )


def masks_refusal(
    caps: Path, extraction: RoiExtraction, first_image: Path | None, single_network: tuple[str, ...] = ()
) -> str | None:
    """Plan time: why the regions cannot be extracted from `caps` (a mask missing, not binary, not on the
    grid of the CAPS's `first_image`), or why the `single_network` models cannot read them; else None."""
    try:
        masks = extraction.masks(caps)
        if first_image is not None:
            import nibabel as nib

            masks.check_image_shape(tuple(nib.load(str(first_image)).shape), first_image)
    except InputError as exc:
        return str(exc)
    except OSError as exc:
        return f"{first_image}: cannot read the image's header: {exc}"
    refusal = single_network_refusal(masks, extraction.mode.uncropped_roi, not single_network)
    return f"models.{', models.'.join(single_network)}: {refusal}" if refusal else None
