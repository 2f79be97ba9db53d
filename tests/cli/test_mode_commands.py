"""The ClinicaDL-style predict, save-tensor and interpret on MAPS of the part modes (regions, 2D slices,
one network per patch) that a spec trained: each writes ClinicaDL's files for its mode, with the
tensors' NIfTIs and the maps folded back into the source image's grid."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pandas as pd
import pytest
import torch

from neuroexec.cli import main
from neuroexec.data.caps import CapsLayout

SPEC = """version = 1
[compute]
workers = 0
batch_size = 4
[datasets.train]
caps = "data/train"
generate = { subjects = 8, resolution_mm = 4, seed = 1 }
[datasets.test]
caps = "data/test"
generate = { subjects = 4, resolution_mm = 4, seed = 2, subject_offset = 100 }
[models.roi]
maps = "maps/roi"
dataset = "train"
mode = "roi"
roi = { list = ["leftHippocampus", "rightHippocampus"] }
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[models.slices]
maps = "maps/slices"
dataset = "train"
mode = "slice"
slice = { direction = 1, mode = "rgb", discarded = [10, 12] }
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[models.patches]
maps = "maps/patches"
dataset = "train"
mode = "patch"
patch = { size = 24, stride = 20 }
multi_network = true
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
"""
PARTS = {"roi": ("roi", 2), "slices": ("slice", 52 - 10 - 12), "patches": ("patch", 4)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("modes")
    (root / "spec.toml").write_text(SPEC)
    assert main(["apply", str(root / "spec.toml"), "--quiet"]) == 0
    return root


def data_flags(root: Path) -> list[str]:
    caps = root / "data" / "test"
    return ["--caps_directory", str(caps), "--participants_tsv", str(caps / "participants.tsv"), "--no-gpu",
            "--n_proc", "0", "--quiet"]  # fmt: skip


@pytest.mark.parametrize("model", sorted(PARTS))
def test_predict_save_tensor_and_interpret_of_a_part_model(trained, model):
    mode, n = PARTS[model]
    maps = trained / "maps" / model
    assert main(["predict", str(maps), "test", *data_flags(trained)]) == 0
    results = maps / "split-0" / "best-loss" / "test"
    parts = pd.read_csv(results / f"test_{mode}_level_prediction.tsv", sep="\t")
    images = pd.read_csv(results / "test_image_level_prediction.tsv", sep="\t")
    assert len(images) == 4 and len(parts) == 4 * n and parts.groupby("participant_id").size().eq(n).all()
    if mode == "slice":  # ClinicaDL's slice_id: the slice's index in the image, after the discarded ones
        assert sorted(parts[f"{mode}_id"].unique()) == list(range(10, 52 - 12))
    else:
        assert sorted(parts[f"{mode}_id"].unique()) == list(range(n))

    # save-tensor and interpret re-use the group (no data flags), then write per-part files.
    assert main(["save-tensor", str(maps), "test", "--save_nifti", "--no-gpu", "--quiet"]) == 0
    tensors = sorted((results / "tensors").glob(f"*_{mode}-*_input.pt"))
    assert len(tensors) == 4 * n
    source = CapsLayout(trained / "data" / "test").t1_linear_nifti("sub-0100", "ses-M000")
    image = nib.load(source)
    folded = nib.load(results / "nifti_images" / "sub-0100_ses-M000_image_input.nii.gz")
    assert folded.shape == image.shape and (folded.affine == image.affine).all()
    assert main(["interpret", str(maps), "test", "grad", "--no-gpu", "--n_proc", "0", "--quiet"]) == 0
    maps_dir = results / "interpret-grad"
    part_maps = sorted(maps_dir.glob(f"mean_{mode}-*_map.pt"))
    assert len(part_maps) == n
    whole = nib.load(maps_dir / "mean_image-0_map.nii.gz")
    assert whole.shape == image.shape
    assert torch.load(part_maps[0], weights_only=True).abs().sum() > 0


def test_a_group_of_training_participants_names_the_commands_flag(trained, capsys):
    caps = trained / "data" / "train"
    argv = ["predict", str(trained / "maps" / "roi"), "again", "--caps_directory", str(caps),
            "--participants_tsv", str(caps / "participants.tsv"), "--no-gpu", "--n_proc", "0", "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "data leakage" in err and "--skip_leak_check" in err and "Traceback" not in err
