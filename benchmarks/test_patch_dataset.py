"""The patch pipeline through neuroexec's real `PatchDataset` and a DataLoader (batches of 8, shuffled),
on a CAPS extracted by neuroexec (full-size synthetic images, 50^3 patches, stride 50), warm and cold.

Cold: before each round the files are evicted from the page cache with posix_fadvise(DONTNEED), which
needs no privileges (dropping the whole cache would need root), so every byte is read from disk again.
The cold group compares neuroexec's per-image bundle with ClinicaDL's one-file-per-patch layout.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from benchmarks.page_cache import evict
from neuroexec.data.datasets import PatchDataset
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.extraction_mode import ExtractionMode

PATCH, STRIDE, BATCH, N_IMAGES = 50, 50, 8, 4


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict:
    root: Path = tmp_path_factory.mktemp("patch_dataset")
    data = generate_atrophy_dataset(root / "caps", subjects=N_IMAGES, resolution_mm=1.0, seed=0)
    frame = pd.read_csv(data.participants_tsv, sep="\t", dtype=str)
    files = {}
    for layout in ("bundle", "clinicadl"):
        plan = plan_extraction(frame, data.caps_dir, ExtractionMode.patch(PATCH, STRIDE), layout=layout)
        run_extraction(plan, normalize=True)
    files["bundle"] = sorted(data.caps_dir.rglob("*_patches_T1w.pt"))
    files["clinicadl"] = sorted(data.caps_dir.rglob("*_patch-*_T1w.pt"))
    # As training reads them: each patch min-max normalised (ClinicaDL's rule). The bundles are written
    # normalised, so the dataset only checks each patch's range.
    dataset = PatchDataset(frame, data.caps_dir, size=PATCH, stride=STRIDE, normalize=True)
    n = len(dataset)
    return {"dataset": dataset, "files": files, "n": n, "bytes": n * PATCH**3 * 4}


def epoch(extracted: dict) -> int:
    """One shuffled pass in batches of 8, as training reads it (the dataset is built once per run)."""
    dataset = extracted["dataset"]
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0, collate_fn=dataset.collate_fn,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    return sum(batch["image"].shape[0] for batch in loader)


def per_patch_files_epoch(paths: list[Path]) -> int:
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0)).tolist()
    for start in range(0, len(order), BATCH):
        torch.stack([torch.load(paths[i], weights_only=True) for i in order[start : start + BATCH]])
    return len(order)


def timed(benchmark, fn, role: str, extracted: dict, before=None):
    benchmark.extra_info.update(role=role, bytes=2 * extracted["bytes"], items=extracted["n"], device="cpu")
    setup = (lambda: (before(), ((), {}))[1]) if before else None
    return benchmark.pedantic(fn, setup=setup, rounds=3, iterations=1, warmup_rounds=0 if before else 1)


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_e_neuroexec_patch_dataset_warm(benchmark, extracted):
    assert timed(benchmark, lambda: epoch(extracted), "variant", extracted) == extracted["n"]


@pytest.mark.benchmark(group="patch_pipeline_cold")
def test_cold_neuroexec_patch_dataset(benchmark, extracted):
    bundles = extracted["files"]["bundle"]

    def cold() -> None:
        extracted["dataset"].close()  # pages of a live mapping cannot be evicted
        evict(bundles)

    assert timed(benchmark, lambda: epoch(extracted), "neuroexec", extracted, cold) == extracted["n"]


@pytest.mark.benchmark(group="patch_pipeline_cold")
def test_cold_clinicadl_file_per_patch(benchmark, extracted):
    per_patch = extracted["files"]["clinicadl"]
    assert len(per_patch) == extracted["n"]
    evicting = lambda: evict(per_patch)  # noqa: E731
    assert timed(benchmark, lambda: per_patch_files_epoch(per_patch), "baseline", extracted, evicting) == len(
        per_patch
    )
