"""The ROI and slice pipelines: items/s delivered to training, on a CAPS extracted by neuroexec
(full-size synthetic images, resolution_mm 1.0, 169x208x179), warm and cold, in batches of 8, shuffled.

Per mode (groups `roi_pipeline` and `slice_pipeline`, and their `_cold` twins):
- neuroexec: the dataset training builds (`data.mode_datasets.mode_dataset`, so RoiDataset or
  SliceDataset) read through a DataLoader with the dataset's own collate_fn, as training reads it;
- baseline: ClinicaDL's prepare_dl = true path: one `torch.load` of the item's own file per item (the
  region file, or the slice file of the clinicadl layout), min-max normalised, stacked into batches;
- variant: ClinicaDL's prepare_dl = false path (CapsDatasetRoi/CapsDatasetSlice.__getitem__): the
  whole image tensor loaded for each item, the item cut from it (a region: image times the float64
  mask, cropped to the mask's box; a slice: indexed, repeated on 3 channels for rgb, cloned), then
  min-max normalised;
- floor (warm only): a memory copy of the same bytes.
Both ClinicaDL paths leave out its per-item glob (`clinicadl_file_reader`) and DataFrame look-ups, so
their times are a lower bound on ClinicaDL's. Each item is min-max normalised, as ClinicaDL's
`MinMaxNormalization` does and neuroexec's datasets do with `normalize`.

Regions: both hippocampi (the synthetic CAPS's ROI masks), cropped to their boxes, one network.
Slices: ClinicaDL's default direction (0, sagittal) and mode (rgb), 20 slices discarded at each end.
Cold: before each round every tensor of the CAPS is evicted from the page cache with
posix_fadvise(DONTNEED), after the neuroexec dataset has closed its memory maps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.page_cache import evict
from neuroexec.data.caps import CapsLayout
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.mode_datasets import mode_dataset
from neuroexec.data.roi_extract import RoiExtraction, RoiSource, find_masks
from neuroexec.data.synthetic import generate_atrophy_dataset, roi_names
from neuroexec.extraction_mode import ExtractionMode

BATCH, ROI_IMAGES, SLICE_IMAGES = 8, 8, 2
ROI_MODE = ExtractionMode.roi(roi_names("hippocampus"))
SLICE_MODE = ExtractionMode.slice(0, "rgb")
DISCARDED = (20, 20)


@dataclass
class Pipeline:
    """One mode's items, as neuroexec's dataset and ClinicaDL's two paths read them."""

    make_dataset: Callable[[], Dataset]
    files: list[Path]  # per item: ClinicaDL's own file of the item
    images: list[Path]  # per item: the image tensor ClinicaDL cuts it from with prepare_dl = false
    parts: list[int]  # per item: the region index or the absolute slice index
    cut: Callable[[torch.Tensor, int], torch.Tensor]  # ClinicaDL's cut of part k from an image tensor
    item_shape: tuple[int, ...]
    tensors: list[Path]  # every tensor of the CAPS (evicted for the cold rounds)
    dataset: Dataset | None = None

    @property
    def n(self) -> int:
        return len(self.files)

    @property
    def bytes(self) -> int:
        return self.n * int(np.prod(self.item_shape)) * 4

    def loaded(self) -> Dataset:
        """The neuroexec dataset, built once (as a training builds it once per run)."""
        if self.dataset is None:
            self.dataset = self.make_dataset()
        return self.dataset

    def close(self) -> None:
        """Drop the dataset's memory maps (pages of a live mapping cannot be evicted)."""
        if self.dataset is not None and hasattr(self.dataset, "close"):
            self.dataset.close()


@pytest.fixture(scope="module")
def caps(tmp_path_factory) -> dict:
    root: Path = tmp_path_factory.mktemp("roi_slice_pipeline")
    data = generate_atrophy_dataset(root / "caps", subjects=ROI_IMAGES, resolution_mm=1.0, seed=0)
    frame = pd.read_csv(data.participants_tsv, sep="\t", dtype=str)
    run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    roi = RoiExtraction(ROI_MODE, RoiSource.of("t1-linear"))
    run_extraction(plan_extraction(frame, data.caps_dir, "roi", roi=roi), normalize=True)
    slice_frame = frame.head(SLICE_IMAGES).reset_index(drop=True)
    for layout in ("bundle", "clinicadl"):
        plan = plan_extraction(slice_frame, data.caps_dir, SLICE_MODE, layout=layout)
        run_extraction(plan, normalize=True)
    return {"dir": data.caps_dir, "frame": frame, "slice_frame": slice_frame}


def _sessions(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["participant_id"], frame["session_id"]))


def _all_tensors(caps_dir: Path) -> list[Path]:
    return sorted(caps_dir.rglob("*.pt"))


@pytest.fixture(scope="module")
def roi(caps) -> Pipeline:
    layout, caps_dir = CapsLayout(caps["dir"]), caps["dir"]
    masks = find_masks(caps_dir, ROI_MODE.rois, RoiSource.of("t1-linear"))
    # ClinicaDL reads its masks with nibabel's get_fdata: float64 arrays of the image's shape
    masks64 = [m.astype(np.float64)[None] for m in masks.arrays]
    files, images, parts = [], [], []
    for p, s in _sessions(caps["frame"]):
        for k, mask_path in enumerate(masks.paths):
            files.append(layout.roi_tensor(p, s, mask_path, ROI_MODE.uncropped_roi))
            images.append(layout.image_tensor(p, s))
            parts.append(k)

    def cut(image: torch.Tensor, k: int) -> torch.Tensor:
        # ClinicaDL's extract_roi_tensor: image times the mask (float64), then per axis the planes where
        # the mask has a voxel set, found from the mask on every call
        mask = masks64[k]
        keep = [mask.any(tuple(b for b in range(4) if b != a)) for a in range(4)]
        return (image * torch.from_numpy(mask))[np.ix_(*keep)].float().clone()

    return Pipeline(
        lambda: mode_dataset(ROI_MODE, caps["frame"], caps_dir, normalize=True),
        files, images, parts, cut, (1, *masks.part_shape(0, False)), _all_tensors(caps_dir),
    )  # fmt: skip


@pytest.fixture(scope="module")
def slices(caps) -> Pipeline:
    layout, caps_dir = CapsLayout(caps["dir"]), caps["dir"]
    d, channels = SLICE_MODE.direction, SLICE_MODE.channels
    files, images, parts = [], [], []
    shape = None
    for p, s in _sessions(caps["slice_frame"]):
        image = layout.image_tensor(p, s)
        shape = torch.load(image, mmap=True, weights_only=True).shape
        for k in range(DISCARDED[0], shape[1 + d] - DISCARDED[1]):
            files.append(layout.slice_tensor(p, s, SLICE_MODE.axis_name, SLICE_MODE.slice_mode, k))
            images.append(image)
            parts.append(k)

    def cut(image: torch.Tensor, k: int) -> torch.Tensor:  # ClinicaDL's extract_slice_tensor
        plane = image[(slice(None),) * (d + 1) + (k,)]
        return (torch.cat([plane] * channels) if channels > 1 else plane).clone()

    item_shape = (channels, *(n for a, n in enumerate(shape[1:]) if a != d))
    return Pipeline(
        lambda: mode_dataset(SLICE_MODE, caps["slice_frame"], caps_dir, discarded=DISCARDED, normalize=True),
        files, images, parts, cut, item_shape, _all_tensors(caps_dir),
    )  # fmt: skip


def minmax(item: torch.Tensor) -> torch.Tensor:  # ClinicaDL's MinMaxNormalization
    return (item - item.min()) / (item.max() - item.min())


def _order(n: int) -> list[list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    return [order[i : i + BATCH] for i in range(0, n, BATCH)]


def neuroexec_epoch(pipeline: Pipeline) -> int:
    """One shuffled pass in batches of 8 over the dataset training builds, as training reads it."""
    dataset = pipeline.loaded()
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0,
                        collate_fn=getattr(dataset, "collate_fn", None),
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    n = 0
    for batch in loader:
        assert tuple(batch["image"].shape[1:]) == pipeline.item_shape
        n += batch["image"].shape[0]
    return n


def file_per_item_epoch(pipeline: Pipeline) -> int:
    """ClinicaDL with prepare_dl: one torch.load of the item's file per item."""
    for idx in _order(pipeline.n):
        torch.stack([minmax(torch.load(pipeline.files[i], weights_only=True)) for i in idx])
    return pipeline.n


def image_per_item_epoch(pipeline: Pipeline) -> int:
    """ClinicaDL without prepare_dl: the whole image loaded for each item, the item cut from it."""
    for idx in _order(pipeline.n):
        items = [
            pipeline.cut(torch.load(pipeline.images[i], weights_only=True), pipeline.parts[i]) for i in idx
        ]
        torch.stack([minmax(item) for item in items])
    return pipeline.n


def timed(benchmark, fn, role: str, pipeline: Pipeline, group: str, rounds: int, cold: bool) -> int:
    benchmark.group = group + ("_cold" if cold else "")
    benchmark.extra_info.update(role=role, bytes=2 * pipeline.bytes, items=pipeline.n, device="cpu")

    def before() -> None:
        pipeline.close()
        evict(pipeline.tensors)

    setup = (lambda: (before(), ((), {}))[1]) if cold else None
    return benchmark.pedantic(fn, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0 if cold else 1)


# group, rounds of the neuroexec dataset and the floor (milliseconds each: more rounds give a minimum
# that load on a shared machine disturbs less), rounds of ClinicaDL's file per item (seconds for slices)
MODES = {"roi": ("roi_pipeline", 10, 5), "slice": ("slice_pipeline", 7, 3)}


def _pipeline(request, kind: str) -> Pipeline:
    return request.getfixturevalue("roi" if kind == "roi" else "slices")


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize("kind", MODES)
def test_neuroexec_dataset(benchmark, request, kind, cold):
    pipeline = _pipeline(request, kind)
    group, rounds, _ = MODES[kind]
    pipeline.loaded()
    assert timed(
        benchmark, lambda: neuroexec_epoch(pipeline), "neuroexec", pipeline, group, rounds, cold
    ) == (pipeline.n)


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize("kind", MODES)
def test_clinicadl_file_per_item(benchmark, request, kind, cold):
    pipeline = _pipeline(request, kind)
    group, _, rounds = MODES[kind]
    assert all(path.is_file() for path in pipeline.files)
    epoch = lambda: file_per_item_epoch(pipeline)  # noqa: E731
    assert timed(benchmark, epoch, "baseline", pipeline, group, rounds, cold) == pipeline.n


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize("kind", MODES)
def test_clinicadl_image_per_item(benchmark, request, kind, cold):
    pipeline = _pipeline(request, kind)
    group, _, _ = MODES[kind]
    epoch = lambda: image_per_item_epoch(pipeline)  # noqa: E731
    # one round: a whole image read per item takes seconds per epoch (the spread is small against it)
    assert timed(benchmark, epoch, "variant", pipeline, group, 1, cold) == pipeline.n


@pytest.mark.parametrize("kind", MODES)
def test_copy_floor(benchmark, request, kind):
    pipeline = _pipeline(request, kind)
    group, rounds, _ = MODES[kind]
    src = torch.rand(pipeline.bytes // 4)
    dst = torch.empty_like(src)
    timed(benchmark, lambda: dst.copy_(src), "floor", pipeline, group, rounds, cold=False)
