"""2D slices of extracted images: (image, slice) pairs, ClinicaDL's CapsDatasetSlice.

The slices of one axis are read from neuroexec's per-image bundle (memory-mapped), else from ClinicaDL's
one file per slice, else cut from the image tensor (ClinicaDL's prepare_dl = false). The slices a model
discards at both ends are left out here, not at extraction: item k of an image is slice `discarded[0] + k`
(ClinicaDL's `slice_id`, the item's `mode_id`). An item is a function of its index alone.

    >>> from neuroexec.data.extract import plan_extraction, run_extraction
    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> from neuroexec.extraction_mode import ExtractionMode
    >>> data = generate_atrophy_dataset(Path("data"), subjects=2, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> mode = ExtractionMode.slice(2, "rgb")
    >>> _ = run_extraction(plan_extraction(frame, data.caps_dir, mode), normalize=True)
    >>> slices = SliceDataset(frame, data.caps_dir, direction=2, slice_mode="rgb", discarded=(3, 4))
    >>> slices.n_parts, slices.input_size, slices[0]["mode_id"]  # 22 axial slices, 3 + 4 left out
    (15, [3, 21, 26], 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import torch

from neuroexec.data.caps import CapsLayout
from neuroexec.data.datasets import ItemInputError, MemoryMaps, _CapsItems, load_tensor
from neuroexec.data.intensity import minmax_item, minmax_items_
from neuroexec.data.slice_extract import cut_slices, slice_count, slice_range
from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode


class SliceDataset(_CapsItems):
    """(image, slice) pairs along `direction`, the slices `discarded` = (begin, end) left out; one slice
    per image with `part_index` (network `part_index` of a multi-network model: slice begin +
    part_index). rgb slices are three identical channels. With `normalize`, each slice is min-max
    normalised on its own, as ClinicaDL does (bundles are extracted so already: only range-checked)."""

    mode = "slice"

    def __init__(
        self,
        frame: pd.DataFrame,
        caps_by_cohort: Path | Mapping[str, Path],
        direction: int = 2,
        slice_mode: str = "rgb",
        discarded: tuple[int, int] = (0, 0),
        part_index: int | None = None,
        normalize: bool = False,
        **items,
    ):
        # items: label, label_code, task and uncropped, as every dataset of data/datasets.py takes them
        super().__init__(frame, caps_by_cohort, **items)
        self.extraction = ExtractionMode.slice(direction, slice_mode)
        self.direction, self.slice_mode, self.normalize = direction, slice_mode, normalize
        self._maps = MemoryMaps()
        self.sources = [self._source(i) for i in range(len(self.participants))]
        self._raise_missing(
            [
                f"{p} {s}: {self._bundle(i)}"
                for i, (p, s, src) in enumerate(zip(self.participants, self.sessions, self.sources))
                if src is None
            ]
        )
        self.n_all, self.plane = self._geometry() if self.sources else (0, (0, 0))
        self.indices = slice_range(self.n_all, discarded) if self.sources else range(0)
        self.part_index = part_index
        if part_index is not None and not 0 <= part_index < len(self.indices):
            raise InputError(
                None,
                f"part_index {part_index} out of range: images have {len(self.indices)} slices once "
                f"{tuple(discarded)} are discarded",
                "part_index",
            )

    def _bundle(self, i: int) -> Path:
        axis = self.extraction.axis_name
        return self.layouts[i].slice_bundle(
            self.participants[i], self.sessions[i], axis, self.slice_mode, self.uncropped
        )

    def _source(self, i: int) -> tuple[str, Path] | None:
        layout, p, s = self.layouts[i], self.participants[i], self.sessions[i]
        bundle = self._bundle(i)
        if bundle.is_file():
            return ("bundle", bundle)
        first = layout.slice_tensor(p, s, self.extraction.axis_name, self.slice_mode, 0, self.uncropped)
        if first.is_file():
            return ("clinicadl", first)
        image = layout.image_tensor(p, s, self.uncropped)
        return ("image", image) if image.is_file() else None

    def _geometry(self) -> tuple[int, tuple[int, int]]:
        """(slices of the axis, (H, W) of a slice), from the first image's tensors."""
        kind, path = self.sources[0]
        tensor = self._mapped(path)
        if kind == "bundle":
            return int(tensor.shape[0]), (int(tensor.shape[-2]), int(tensor.shape[-1]))
        if kind == "image":
            shape = [int(v) for v in tensor.shape[-3:]]
            n = slice_count(tuple(shape), self.direction)
            del shape[self.direction]
            return n, (shape[0], shape[1])
        n = 0  # ClinicaDL's files slice-0, slice-1, ... of the first image
        while CapsLayout.sibling_part(path, n, "slice").is_file():
            n += 1
        return n, (int(tensor.shape[-2]), int(tensor.shape[-1]))

    def _mapped(self, path: Path) -> torch.Tensor:
        return self._maps.get(path)

    def close(self) -> None:
        """Drop the memory maps this dataset holds open (the next read opens them again)."""
        self._maps.clear()

    @property
    def parts_per_image(self) -> int:
        """The slices left once the discarded ones are out."""
        return len(self.indices)

    @property
    def n_parts(self) -> int:
        """Items per image: the slices left once the discarded ones are out, or 1 with `part_index`."""
        return 1 if self.part_index is not None else len(self.indices)

    @property
    def input_size(self) -> list[int]:
        """[C, H, W] of a slice (C = 3 for rgb)."""
        return [self.extraction.channels, *self.plane]

    def __len__(self) -> int:
        return len(self.sources) * self.n_parts

    def _locate(self, i: int) -> tuple[int, int]:
        """(image, slice index in ClinicaDL's numbering) of item `i`."""
        if self.part_index is not None:
            return i, self.indices[self.part_index]
        image, k = divmod(i, len(self.indices))
        return image, self.indices[k]

    def __getitem__(self, i: int) -> dict:
        image, index = self._locate(i)
        tensor = self.slice(image, index)  # may be a view of a mapped file: minmax_item never writes into it
        return self._item(image, minmax_item(tensor) if self.normalize else tensor, index)

    def __getitems__(self, indices: list[int]) -> dict:
        """A whole batch at once (the DataLoader calls this with the batch's indices): each slice is
        copied once, from its memory-mapped bundle into the batch tensor, and normalised there; the
        same batch as collating the items one by one."""
        images = torch.empty((len(indices), *self.input_size), dtype=torch.float32)
        rows = [self._locate(i) for i in indices]
        for j, (image, index) in enumerate(rows):
            images[j] = self.slice(image, index)
        if self.normalize:
            minmax_items_(images)
        return self._batch(images, rows)

    def slice(self, image: int, index: int) -> torch.Tensor:
        """Slice `index` (ClinicaDL's numbering, discarded ones included) [C, H, W] of image `image`."""
        kind, path = self.sources[image]
        want = (self.extraction.channels, *self.plane)
        if kind == "bundle":
            bundle = self._mapped(path)
            if tuple(bundle.shape) != (self.n_all, *want):
                raise ItemInputError(
                    path, f"expected a slice bundle {[self.n_all, *want]}, found {list(bundle.shape)}"
                )
            return bundle[index].float()
        if kind == "clinicadl":
            tensor = load_tensor(CapsLayout.sibling_part(path, index, "slice")).float()
        else:
            full = self._mapped(path)
            if full.dim() != 4 or slice_count(tuple(full.shape), self.direction) != self.n_all:
                raise ItemInputError(
                    path, f"image of shape {tuple(full.shape)} has not the {self.n_all} slices of the others"
                )
            # the one plane, not the whole image: a view of the mapped file, cut (and copied) once
            plane = full.narrow(self.direction + 1, index, 1)
            tensor = cut_slices(plane, self.direction, self.slice_mode)[0].float()
        if tuple(tensor.shape) != want:
            raise ItemInputError(path, f"expected a slice {list(want)}, found {list(tensor.shape)}")
        return tensor
