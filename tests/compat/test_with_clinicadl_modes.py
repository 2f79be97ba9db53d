"""ROI, slice (single and rgb) and multi-network (patch, roi, slice) both ways with ClinicaDL itself: ClinicaDL
predicts on neuroexec's MAPS, neuroexec predicts and interprets ClinicaDL's. Runs only where
NEUROEXEC_CLINICADL names a ClinicaDL executable (tests/compat/test_with_clinicadl.py, README)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.compat.test_with_clinicadl import CLINICADL, _clinicadl_split
from tests.compat.test_with_clinicadl import pytestmark as pytestmark

# Both CAPS are read as real data (no generate table): a generated dataset takes only the hippocampus
# halves its generation writes, and those are 2x5x3 voxels at 8 mm, smaller than ClinicaDL's Conv4_FC3
# can build on (its poolings must leave more than one value per channel).
DATA = """
version = 1
[compute]
workers = 0
batch_size = 4
deterministic = true
[datasets.demo]
caps = "data/demo"
participants = "data/demo/participants.tsv"
[datasets.other]
caps = "data/other"
participants = "data/other/participants.tsv"
"""
MODEL = """[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "Conv4_FC3"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
"""
BOXES = ("leftBox", "rightBox")
MULTI = "multi_network = true\n"


def _slice(direction: int, mode: str, begin: int, end: int) -> str:
    return f'mode = "slice"\nslice = {{ direction = {direction}, mode = "{mode}", discarded = [{begin}, {end}] }}\n'


ROI_BOXES = 'mode = "roi"\nroi = { list = ["leftBox", "rightBox"] }\n'
ROI_HIPPOCAMPI_UNCROPPED = (
    'mode = "roi"\nroi = { list = ["leftHippocampus", "rightHippocampus"], uncropped = true }\n'
)

# neuroexec-trained: (model lines, mode, parts per image of the 21x26x22 grid of 8 mm)
NX_TRAINED = {
    "roi": (ROI_BOXES, "roi", 2),
    "slice-single": (_slice(2, "single", 9, 10), "slice", 3),  # axial slices 9, 10, 11 of 22
    "slice-rgb": (_slice(0, "rgb", 9, 9), "slice", 3),  # sagittal slices 9, 10, 11 of 21
    "multi-patch": ('mode = "patch"\npatch = { size = 17, stride = 9 }\n' + MULTI, "patch", 2),
    "multi-roi": (ROI_HIPPOCAMPI_UNCROPPED + MULTI, "roi", 2),
    "multi-slice": (_slice(1, "single", 12, 12) + MULTI, "slice", 2),  # coronal slices 12, 13 of 26
}

# ClinicaDL-trained: (prepare-data arguments, extra train flags, mode, parts per image). --save_features
# writes ClinicaDL's one file per part (prepare_dl); without it ClinicaDL cuts the parts from the images.


def _prepare_slices(direction: int, mode: str, begin: int, end: int) -> list[str]:
    """prepare-data slice's arguments (its --discarded_slices takes one number per occurrence)."""
    return ["slice", "--slice_direction", str(direction), "--slice_mode", mode,
            "--discarded_slices", str(begin), "--discarded_slices", str(end)]  # fmt: skip


HIPPOCAMPI = ["--roi_list", "leftHippocampus", "--roi_list", "rightHippocampus"]
CLINICADL_TRAINED = {
    "roi": (["roi", "--roi_list", "leftBox", "--roi_list", "rightBox", "--save_features"], [], "roi", 2),
    # discarded_slices begins at 0: ClinicaDL 1.6.1's interpret indexes its mean maps by the slice index
    "slice-single": (_prepare_slices(2, "single", 0, 19), [], "slice", 3),
    "slice-rgb": (_prepare_slices(0, "rgb", 9, 9) + ["--save_features"], [], "slice", 3),
    "multi-patch": (["patch", "--patch_size", "17", "--stride_size", "9"], ["--multi_network"], "patch", 2),
    "multi-roi": (["roi", *HIPPOCAMPI, "--roi_uncrop_output"], ["--multi_network"], "roi", 2),
    "multi-slice": (_prepare_slices(1, "single", 12, 12), ["--multi_network"], "slice", 2),
}
INTERPRETED = ("roi", "slice-single")  # ClinicaDL 1.6.1 does not interpret multi-network models
INTERPRET = 'interpret = [{ name = "nx", method = "gradients", absolute = false, save_individual = true }]\n'


def _synthetic_caps(root: Path) -> None:
    """demo (12 subjects) and other (6) at 8 mm, each with two ROI masks as ClinicaDL finds them:
    17x22x19 boxes at both sides of the 21x26x22 grid (they overlap), each with a hole, since a region
    is the image times its mask."""
    for name, subjects, seed, offset in (("demo", 12, 1, 0), ("other", 6, 2, 500)):
        data = generate_atrophy_dataset(
            root / "data" / name, subjects=subjects, resolution_mm=8.0, seed=seed, subject_offset=offset
        )
        folder = data.caps_dir / "masks/tpl-MNI152NLin2009cSym"
        for roi, start in zip(BOXES, (0, 4)):
            mask = np.zeros(data.shape, np.uint8)
            mask[start : start + 17, 2:24, 2:21] = 1
            mask[start + 7 : start + 10, 10:13, 9:12] = 0
            path = folder / f"tpl-MNI152NLin2009cSym_desc-Crop_res-1x1x1_roi-{roi}_mask.nii.gz"
            nib.save(nib.Nifti1Image(mask, data.affine), path)


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _apply(spec_path: Path, text: str) -> None:
    spec_path.write_text(text)
    apply(make_plan(load_spec(spec_path)), RunContext(reporter=Reporter(quiet=True)))


def _tables(folder: Path, group: str, mode: str) -> dict[str, pd.DataFrame]:
    """The group's prediction and metrics tables at the mode's level and the image level."""
    return {
        f"{level}_{kind}": pd.read_csv(folder / f"{group}_{level}_level_{kind}.tsv", sep="\t")
        for level in (mode, "image")
        for kind in ("prediction", "metrics")
    }


def _same_predictions(theirs: pd.DataFrame, ours: pd.DataFrame, keys: list[str], rows: int) -> float:
    """The same rows and columns, the same predicted labels, probabilities to 1e-5; the largest difference."""
    assert list(theirs.columns) == list(ours.columns)
    both = theirs.merge(ours, on=keys, suffixes=("_cdl", "_nx"))
    assert len(both) == len(ours) == len(theirs) == rows
    assert (both["predicted_label_cdl"] == both["predicted_label_nx"]).all()
    probas = [c for c in ours.columns if c.startswith("proba")]
    gap = max(float((both[f"{c}_cdl"] - both[f"{c}_nx"]).abs().max()) for c in probas)
    assert gap < 1e-5
    print(f"{keys[-1]}: largest probability difference {gap:.1e}")  # the README records them
    return gap


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    """The metric values, one row per network: the `Values` rows of a table with confidence intervals
    (ClinicaDL writes one such block per network of a multi-network model, then a row of its index),
    or the plain rows (ClinicaDL's soft-voted image level; neuroexec's networks, keyed by `<mode>_id`)."""
    if "Metrics" in frame.columns:
        frame = frame[frame["Metrics"] == "Values"].drop(columns="Metrics")
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("_id")])
    return frame.apply(pd.to_numeric, errors="coerce").reset_index(drop=True)


def _same_metrics(theirs: pd.DataFrame, ours: pd.DataFrame, items: list[int], batch: int = 8) -> None:
    """The same metrics (the bootstrap intervals are random). A metric neuroexec leaves undefined (N/A)
    is not compared: ClinicaDL writes 0 for the PPV of a model that never predicts 0, and an MK from it.
    neuroexec's loss is the mean over the row's `items`, ClinicaDL's the sum of the means of its
    batches (its predict's are of 8, its training's of its batch size): the same up to the number of
    batches when they are all full."""
    theirs, ours = _values(theirs), _values(ours)
    if "AUC" in ours.columns:  # neuroexec's AUC, from the probabilities, follows ClinicaDL's columns
        assert list(ours.columns)[-1] == "AUC" and "AUC" not in theirs.columns
        ours = ours.drop(columns="AUC")
    assert list(theirs.columns) == list(ours.columns) and len(theirs) == len(ours) == len(items)
    for i, n in enumerate(items):
        a, b = theirs.loc[i].to_numpy(), ours.loc[i].to_numpy()
        full = n <= batch or n % batch == 0
        b = np.where(ours.columns == "loss", math.ceil(n / batch) * b if full else a, b)
        same = (np.abs(a - b) <= 1e-4 * np.maximum(1.0, np.abs(b))) | np.isnan(b)
        assert same.all(), (i, list(ours.columns), a, b)


@pytest.mark.parametrize("variant", list(NX_TRAINED))
def test_clinicadl_predicts_on_a_neuroexec_maps_of_every_mode(tmp_path, variant):
    """ClinicaDL's predict on neuroexec's roi / slice / multi-network MAPS: its part-level and soft-voted
    image-level tables (voted with neuroexec's validation tables) equal neuroexec's test group's."""
    lines, mode, parts = NX_TRAINED[variant]
    _synthetic_caps(tmp_path)
    _apply(
        tmp_path / "spec.toml", DATA + MODEL + lines + '[groups.test]\ndataset = "other"\nmodels = ["cnn"]\n'
    )
    maps = tmp_path / "maps/cnn"
    _run([CLINICADL, "predict", "maps/cnn", "cdl", "--caps_directory", "data/other", "--participants_tsv",
          "data/other/participants.tsv", "--no-gpu", "--n_proc", "0"], tmp_path)  # fmt: skip
    result = maps / "split-0/best-loss"
    theirs, ours = _tables(result / "cdl", "cdl", mode), _tables(result / "test", "test", mode)
    keys = ["participant_id", "session_id"]
    _same_predictions(
        theirs[f"{mode}_prediction"], ours[f"{mode}_prediction"], keys + [f"{mode}_id"], 6 * parts
    )
    _same_predictions(theirs["image_prediction"], ours["image_prediction"], keys, 6)
    items = [6] * parts if MULTI in lines else [6 * parts]  # each network's loader, or the one loader
    _same_metrics(theirs[f"{mode}_metrics"], ours[f"{mode}_metrics"], items)
    _same_metrics(theirs["image_metrics"], ours["image_metrics"], [6])


COMPARED_KEYS = ("mode", "network_task", "architecture", "multi_network", "num_networks", "input_size")
# prepare_dl is neuroexec's own: true where it writes ClinicaDL's one file per part (regions always)
PREPROCESSING_KEYS = ("mode", "roi_list", "uncropped_roi", "slice_direction", "slice_mode",
                      "discarded_slices", "patch_size", "stride_size")  # fmt: skip


@pytest.mark.parametrize("variant", list(CLINICADL_TRAINED))
def test_neuroexec_predicts_and_interprets_a_clinicadl_maps_of_every_mode(tmp_path, variant):
    """A model ClinicaDL trained in roi / slice / multi-network mode: neuroexec's predictions on its
    validation group (ClinicaDL's own tensors) equal those ClinicaDL wrote when training, its gradients
    equal ClinicaDL's `interpret` map by map, and neuroexec's `train` given the same command line writes
    the same maps.json settings."""
    prepare_args, train_flags, mode, parts = CLINICADL_TRAINED[variant]
    _synthetic_caps(tmp_path)
    if mode == "slice" and "--save_features" in prepare_args:
        # ClinicaDL counts the slices of an image from its image tensor, which --save_features omits
        _run([CLINICADL, "prepare-data", "image", "data/demo", "t1-linear", "-np", "1"], tmp_path)
    _run([CLINICADL, "prepare-data", prepare_args[0], "data/demo", "t1-linear", *prepare_args[1:], "-ej",
          "extract.json", "-np", "1"], tmp_path)  # fmt: skip
    split = _clinicadl_split(tmp_path / "data/demo/participants.tsv", tmp_path / "split")
    train = [CLINICADL, "train", "classification", "data/demo", "extract.json", str(split), "maps_cdl",
             "--architecture", "Conv4_FC3", *train_flags, "--epochs", "1", "--batch_size", "4", "--no-gpu",
             "--n_proc", "0", "--split", "0"]  # fmt: skip
    _run(train, tmp_path)
    result = tmp_path / "maps_cdl/split-0/best-loss/validation"
    theirs = _tables(result, "validation", mode)
    for table in result.glob("validation_*.tsv"):
        table.unlink()  # neuroexec writes them again
    group = '[groups.validation]\nfrom_training = "validation"\nmodels = ["cdl"]\n'
    group += INTERPRET if variant in INTERPRETED else ""
    _apply(tmp_path / "spec.toml", DATA + '[models.cdl]\nmaps = "maps_cdl"\n' + group)
    ours = _tables(result, "validation", mode)
    keys = ["participant_id", "session_id"]
    rows = len(pd.read_csv(split / "validation_baseline.tsv", sep="\t"))
    _same_predictions(
        theirs[f"{mode}_prediction"], ours[f"{mode}_prediction"], keys + [f"{mode}_id"], rows * parts
    )
    _same_predictions(theirs["image_prediction"], ours["image_prediction"], keys, rows)
    items = [rows] * parts if "--multi_network" in train_flags else [rows * parts]
    _same_metrics(theirs[f"{mode}_metrics"], ours[f"{mode}_metrics"], items, batch=4)
    _same_metrics(theirs["image_metrics"], ours["image_metrics"], [rows], batch=4)
    if variant in INTERPRETED:
        _same_gradients(tmp_path, Path("maps_cdl"), "validation", mode, parts, rows)
    train_nx = [sys.executable, "-m", "neuroexec", *train[1:], "--quiet"]
    train_nx[train_nx.index("maps_cdl")] = "maps_nx"
    _run(train_nx, tmp_path)
    cdl_json, nx_json = (
        json.loads((tmp_path / m / "maps.json").read_text()) for m in ("maps_cdl", "maps_nx")
    )
    for key in COMPARED_KEYS:
        assert cdl_json.get(key) == nx_json.get(key), key
    for key in PREPROCESSING_KEYS:
        assert cdl_json["preprocessing_dict"].get(key) == nx_json["preprocessing_dict"].get(key), key


def _same_gradients(home: Path, maps: Path, group: str, mode: str, parts: int, images: int) -> None:
    """ClinicaDL's `interpret ... gradients` (signed) equals neuroexec's absolute = false map by map; its
    means divide by the number of parts of the group, neuroexec's by the number of images."""
    _run([CLINICADL, "interpret", str(maps), group, "cdl", "gradients", "--selection_metrics", "loss",
          "--save_individual", "--no-gpu", "-np", "0"], home)  # fmt: skip
    result = home / maps / "split-0/best-loss" / group
    theirs = sorted(p.name for p in (result / "interpret-cdl").glob("*.pt"))
    ours = sorted(
        p.name for p in (result / "interpret-nx").glob(f"*_{mode}-*_map.pt") if not p.name.startswith("std_")
    )
    assert len(theirs) == (images + 1) * parts and theirs == ours
    for name in theirs:
        a = torch.load(result / "interpret-cdl" / name, weights_only=True)
        b = torch.load(result / "interpret-nx" / name, weights_only=True)
        scale = parts if name.startswith("mean_") else 1
        assert a.shape == b.shape and float((a * scale - b).abs().max()) <= 1e-6 * float(b.abs().max()), name


# neuroexec-trained and interpreted: (model lines, mode, parts per image)
NX_INTERPRETED = {
    "roi": (ROI_BOXES, "roi", 2),
    "slice-rgb": (_slice(1, "rgb", 0, 23), "slice", 3),  # coronal slices 0, 1, 2 of 26
}


@pytest.mark.parametrize("variant", list(NX_INTERPRETED))
def test_clinicadl_interprets_a_neuroexec_roi_or_slice_model_as_neuroexec_does(tmp_path, variant):
    """ClinicaDL's `interpret` of a neuroexec roi or rgb slice model: its maps are neuroexec's."""
    lines, mode, parts = NX_INTERPRETED[variant]
    _synthetic_caps(tmp_path)
    group = '[groups.test]\ndataset = "other"\nmodels = ["cnn"]\n' + INTERPRET
    _apply(tmp_path / "spec.toml", DATA + MODEL + lines + group)
    _same_gradients(tmp_path, Path("maps/cnn"), "test", mode, parts, 6)
