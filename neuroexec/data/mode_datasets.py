"""The torch dataset of a mode: the one place that maps an `ExtractionMode` to its dataset class, for
training (`training/setup.py`) and inference (`inference/model_io.py`) alike.

Every dataset has `mode` ('image', 'patch', 'roi' or 'slice'), `n_parts` (items per image) and
`input_size`; its items carry `mode_id`, the part index (ClinicaDL's `<mode>_id`). `part_index` (one
network per part) keeps that one part of each image.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from torch.utils.data import Dataset

from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode


def mode_dataset(
    mode: ExtractionMode,
    frame: pd.DataFrame,
    caps: Path | Mapping[str, Path],
    *,
    discarded: tuple[int, int] = (0, 0),
    part_index: int | None = None,
    cache: bool = False,
    roi_source=None,
    **common,
) -> Dataset:
    """The dataset of `frame`'s images read as `mode`. `common`: label, label_code, task, uncropped,
    normalize (as the image and patch datasets take them); `discarded`: slices left out at both ends;
    `cache`: whole images kept in memory (image mode); `roi_source`: where the ROI masks are (a
    `roi_extract.RoiSource`; by default the images' preprocessing's template); `size_reduction` (in
    `common`, None by default): ClinicaDL's reduced whole images (image mode only, data/size_reduction.py)."""
    from neuroexec.data import datasets

    size_reduction = common.pop("size_reduction", None)
    if size_reduction is not None and mode.has_parts:
        raise InputError(
            None,
            f"size_reduction_factor reduces whole images only, not {mode.kind}s",
            "size_reduction_factor",
        )

    if mode.is_patch:
        return datasets.PatchDataset(
            frame, caps, size=mode.size, stride=mode.stride, patch_index=part_index, **common
        )
    if mode.is_roi:
        from neuroexec.data.roi_dataset import RoiDataset

        return RoiDataset(
            frame,
            caps,
            rois=mode.rois,
            uncropped_roi=mode.uncropped_roi,
            part_index=part_index,
            source=roi_source,
            **common,
        )
    if mode.is_slice:
        from neuroexec.data.slice_dataset import SliceDataset

        return SliceDataset(
            frame,
            caps,
            direction=mode.direction,
            slice_mode=mode.slice_mode,
            discarded=discarded,
            part_index=part_index,
            **common,
        )
    images = datasets.ImageDataset(frame, caps, cache=cache, **common)
    images.size_reduction = size_reduction
    return images
