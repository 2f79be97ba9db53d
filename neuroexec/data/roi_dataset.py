"""ROI mode's torch dataset: each image's regions, read from ClinicaDL's one file per region (what the
extract step writes), else cut from the image tensor on the fly (ClinicaDL's prepare_dl = false).

    >>> from neuroexec.data.extract import plan_extraction, run_extraction
    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.roi_extract import RoiExtraction, RoiSource
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset, roi_names
    >>> from neuroexec.extraction_mode import ExtractionMode
    >>> data = generate_atrophy_dataset(Path("data"), subjects=2, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> mode = ExtractionMode.roi(roi_names("hippocampus"))
    >>> roi = RoiExtraction(mode, RoiSource.of("t1-linear"))
    >>> _ = run_extraction(plan_extraction(frame, data.caps_dir, "roi", roi=roi), normalize=True)
    >>> regions = RoiDataset(frame, data.caps_dir, rois=mode.rois, normalize=True)
    >>> len(regions), regions.n_parts, regions.input_size, regions[1]["mode_id"]
    (4, 2, [1, 2, 5, 3], 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from neuroexec.data.datasets import ItemInputError, _CapsItems, load_tensor
from neuroexec.data.intensity import minmax_item
from neuroexec.data.roi_extract import (
    RoiSource,
    box_of,
    cut_roi,
    find_masks,
    preprocessing_name,
    single_network_refusal,
)
from neuroexec.errors import InputError

# The most bytes of regions a dataset keeps in memory after their first read (RoiDataset.region).
_CACHE_BYTES = 256 * 2**20


class RoiDataset(_CapsItems):
    """(image, region) pairs in part-index order (region k of image i at index i * n + k), or one region
    per image with `part_index` (one network per region: `mode_id` is that region's index). With
    `normalize`, each region is min-max normalised on its own, as ClinicaDL does. The masks are those
    of the first cohort's CAPS (as ClinicaDL reads them); regions of different box shapes need
    `part_index` or `uncropped_roi` (one network cannot read them all)."""

    mode = "roi"

    def __init__(
        self,
        frame: pd.DataFrame,
        caps_by_cohort: Path | Mapping[str, Path],
        rois: tuple[str, ...] = (),
        uncropped_roi: bool = False,
        part_index: int | None = None,
        normalize: bool = False,
        source: RoiSource | None = None,
        **items,
    ):
        # items: label, label_code, task and uncropped, as every dataset of data/datasets.py takes them
        super().__init__(frame, caps_by_cohort, **items)
        if not rois:
            raise InputError(None, "a ROI dataset needs at least one region (roi.list)", "roi.list")
        self.rois, self.uncropped_roi, self.normalize, self.part_index = (
            tuple(rois),
            uncropped_roi,
            normalize,
            part_index,
        )
        if part_index is not None and not 0 <= part_index < len(self.rois):
            raise InputError(
                None, f"part_index {part_index} out of range: {len(self.rois)} region(s)", "part_index"
            )
        if source is None:  # the template of the images' preprocessing (t1-linear's by default)
            source = RoiSource.of(
                preprocessing_name(getattr(self.layouts[0], "preprocessing", "t1-linear")), self.uncropped
            )
        self.masks = find_masks(next(iter(self.caps_by_cohort.values())), self.rois, source)
        refusal = single_network_refusal(self.masks, uncropped_roi, part_index is not None)
        if refusal:
            raise InputError(None, refusal, "roi.list")
        self.shapes = [(1, *self.masks.part_shape(k, uncropped_roi)) for k in range(len(self.rois))]
        self.boxes = [box_of(mask) for mask in self.masks.arrays]  # once, not per item (ms each)
        self.sources = [self._source(i) for i in range(len(self.participants))]
        self._cache: dict[tuple[int, int], torch.Tensor] = {}
        self._raise_missing(
            [
                f"{p} {s}: {layout.roi_tensor(p, s, self.masks.paths[0], uncropped_roi, self.uncropped)}"
                for p, s, layout, src in zip(self.participants, self.sessions, self.layouts, self.sources)
                if src is None
            ]
        )

    def _source(self, i: int) -> tuple[str, list[Path]] | None:
        """ClinicaDL's region files of image i when all are there, else its image tensor, else None."""
        layout, p, s = self.layouts[i], self.participants[i], self.sessions[i]
        files = [layout.roi_tensor(p, s, m, self.uncropped_roi, self.uncropped) for m in self.masks.paths]
        if all(f.is_file() for f in files):
            return ("files", files)
        image = layout.image_tensor(p, s, self.uncropped)
        return ("image", [image]) if image.is_file() else None

    @property
    def parts_per_image(self) -> int:
        return len(self.rois)

    @property
    def n_parts(self) -> int:
        """Items per image: the regions, or 1 with `part_index` (one network per region)."""
        return 1 if self.part_index is not None else len(self.rois)

    @property
    def input_size(self) -> list[int]:
        """[1, X, Y, Z] of the region a network reads (the first, or `part_index`'s)."""
        return list(self.shapes[self.part_index or 0])

    def __len__(self) -> int:
        return len(self.sources) * self.n_parts

    def __getitem__(self, i: int) -> dict:
        image, k = (i, self.part_index) if self.part_index is not None else divmod(i, len(self.rois))
        region = self.region(image, k)
        return self._item(image, minmax_item(region) if self.normalize else region, k)

    def region(self, image: int, k: int) -> torch.Tensor:
        """Region k [1, x, y, z] of image `image`, as extracted (not normalised here). Regions are small
        and a file's fixed cost of opening and unpickling dominates their reading (0.34 ms for 55 KB of
        data read in 0.02 ms), so when all the regions this dataset serves fit in `_CACHE_BYTES` each is
        kept after its first read (per process: a DataLoader worker keeps its own, across epochs)."""
        key = (image, k)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        tensor = self._read_region(image, k)
        if self._caching:
            self._cache[key] = tensor
        return tensor

    def close(self) -> None:
        """Drop the regions kept in memory (the next read of each is from disk again)."""
        self._cache.clear()

    @property
    def _caching(self) -> bool:
        parts = [self.part_index] if self.part_index is not None else range(len(self.rois))
        per_image = sum(math.prod(self.shapes[k]) for k in parts) * 4
        return per_image * len(self.sources) <= _CACHE_BYTES

    def _read_region(self, image: int, k: int) -> torch.Tensor:
        kind, paths = self.sources[image]
        if kind == "files":
            tensor = load_tensor(paths[k]).float()
            where = paths[k]
        else:
            # memory-mapped: a region reads its box, not the whole image (125 ms -> 4 ms per item)
            full = load_tensor(paths[0], mmap=True).float()
            self.masks.check_image_shape(tuple(full.shape), paths[0])
            cut = cut_roi(full, self.masks.arrays[k], self.uncropped_roi, self.boxes[k])
            tensor, where = cut, paths[0]
        if tuple(tensor.shape) != self.shapes[k]:
            raise ItemInputError(
                where,
                f"region {self.rois[k]} has shape {tuple(tensor.shape)}, its mask gives {self.shapes[k]} "
                "(extracted with another mask? run apply again: the extract step rewrites it)",
            )
        return tensor
