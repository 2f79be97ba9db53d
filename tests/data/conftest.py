"""Fixtures of the data-layer tests: one tiny synthetic CAPS per module (read-only) and fresh copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from neuroexec.data.synthetic import GeneratedDataset, generate_atrophy_dataset

TINY_SHAPE = (21, 26, 22)  # 8 mm voxels over the MNI crop


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    """8 subjects (4 AD, 4 CN) at 8 mm; tests must not modify it (use `fresh_caps` for that)."""
    return generate_atrophy_dataset(tmp_path_factory.mktemp("caps"), subjects=8, resolution_mm=8.0, seed=3)


@pytest.fixture
def fresh_caps(tiny_dataset: GeneratedDataset, tmp_path: Path) -> GeneratedDataset:
    """A private copy of the tiny CAPS, free to modify."""
    root = tmp_path / "caps"
    shutil.copytree(tiny_dataset.root, root)
    d = tiny_dataset
    return GeneratedDataset(
        root, root, root / "participants.tsv", root / "masks" / f"{d.region}.nii.gz", d.region, d.shape,
        d.voxel_mm, d.affine, d.participants,
    )  # fmt: skip
