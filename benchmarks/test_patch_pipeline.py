"""Patch pipeline: patches/s delivered as batches of 8 (50^3 patches, stride 50, full-size images).

(a) ClinicaDL's layout: one .pt file per patch, torch.load of each;
(b) one .pt per image, cut with neuroexec.ops.extract_patches at load (image-major order);
(c) one .pt per image holding all its patches contiguous [n, 1, 50, 50, 50], loaded once with
    torch.load(mmap=True, weights_only=True), batches gathered by index (shuffled order);
(d) a plain memory copy of the same bytes (the floor); TorchIO's Queue when installed.
Files live in a temporary folder, so reads come from the page cache (warm): this measures the
software path, not the disk.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from neuroexec import ops

IMAGE = (169, 208, 179)
PATCH, STRIDE, BATCH, N_IMAGES = 50, 50, 8, 4


@pytest.fixture(scope="module")
def caps(tmp_path_factory) -> dict:
    root: Path = tmp_path_factory.mktemp("patch_pipeline")
    g = torch.Generator().manual_seed(0)
    per_patch, per_image, contiguous = [], [], []
    for i in range(N_IMAGES):
        image = torch.rand(1, *IMAGE, generator=g)
        patches = ops.extract_patches(image[None], PATCH, STRIDE, kernels="torch")  # [n, 1, s, s, s]
        torch.save(image, root / f"sub-{i}_image.pt")
        per_image.append(root / f"sub-{i}_image.pt")
        torch.save(patches, root / f"sub-{i}_patches.pt")
        contiguous.append(root / f"sub-{i}_patches.pt")
        for k, patch in enumerate(patches):
            path = root / f"sub-{i}_patchsize-{PATCH}_stride-{STRIDE}_patch-{k}_T1w.pt"
            torch.save(patch.clone(), path)  # clone: save the patch alone, not the whole storage
            per_patch.append(path)
    n_total = len(per_patch)
    order = list(range(n_total))
    random.Random(0).shuffle(order)
    return {
        "per_patch": per_patch,
        "per_image": per_image,
        "contiguous": contiguous,
        "n": n_total,
        "per_image_n": n_total // N_IMAGES,
        "order": order,
        "bytes": n_total * PATCH**3 * 4,
    }


def _batches(order: list[int]) -> list[list[int]]:
    return [order[i : i + BATCH] for i in range(0, len(order), BATCH)]


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_a_clinicadl_file_per_patch(run, caps):
    def epoch():
        for idx in _batches(caps["order"]):
            torch.stack([torch.load(caps["per_patch"][i], weights_only=True) for i in idx])

    run(epoch, "baseline", bytes=2 * caps["bytes"], items=caps["n"], rounds=3)


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_b_image_file_cut_at_load(run, caps):
    def epoch():
        pending = []
        for path in caps["per_image"]:
            image = torch.load(path, weights_only=True)
            pending.extend(ops.extract_patches(image[None], PATCH, STRIDE))
            while len(pending) >= BATCH:
                torch.stack(pending[:BATCH])
                pending = pending[BATCH:]
        if pending:
            torch.stack(pending)

    run(epoch, "variant", bytes=2 * caps["bytes"], items=caps["n"], rounds=3)


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_c_contiguous_patches_mmap(run, caps):
    per = caps["per_image_n"]

    def epoch():
        files = [torch.load(p, mmap=True, weights_only=True) for p in caps["contiguous"]]
        for idx in _batches(caps["order"]):
            torch.stack([files[i // per][i % per] for i in idx])

    run(epoch, "neuroexec", bytes=2 * caps["bytes"], items=caps["n"], rounds=3)


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_d_memory_copy_floor(run, caps):
    src = torch.rand(caps["bytes"] // 4)
    dst = torch.empty_like(src)
    run(lambda: dst.copy_(src), "floor", bytes=2 * caps["bytes"], items=caps["n"], rounds=3)


@pytest.mark.benchmark(group="patch_pipeline")
def test_pipeline_torchio_queue(run, caps):
    tio = pytest.importorskip("torchio")
    subjects = tio.SubjectsDataset(
        [tio.Subject(t1=tio.ScalarImage(tensor=torch.load(p, weights_only=True))) for p in caps["per_image"]]
    )
    per = caps["per_image_n"]

    def epoch():
        queue = tio.Queue(subjects, max_length=caps["n"], samples_per_volume=per, num_workers=0,
                          sampler=tio.UniformSampler(PATCH), shuffle_subjects=False)  # fmt: skip
        loader = torch.utils.data.DataLoader(queue, batch_size=BATCH, num_workers=0)
        for batch in loader:
            batch["t1"]["data"]

    run(epoch, "peer", bytes=2 * caps["bytes"], items=caps["n"], rounds=3)
