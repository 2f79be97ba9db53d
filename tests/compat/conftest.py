"""Tiny CAPS, split directories and hand-built MAPS of both ClinicaDL generations (FORMATS.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import make_tiny_caps

SHAPE = (20, 20, 20)
ARCH = "Conv4_FC3"  # ClinicaDL's own network; 20^3 is the smallest grid comfortable for its 5 poolings


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    """8 training subjects (sub-0000..7) with a 2-fold split directory, and 4 test subjects."""
    root = tmp_path_factory.mktemp("data")
    caps, tsv = make_tiny_caps(root / "caps", n_subjects=8, shape=SHAPE, extract=True)
    frame = pd.read_csv(tsv, sep="\t", dtype=str)
    split_root = root / "split"
    kfold = split_root / "2_fold"
    for i in range(2):
        folder = kfold / f"split-{i}"
        folder.mkdir(parents=True)
        valid = frame.iloc[[i, i + 2]]  # one AD and one CN (the generator labels pairs AD, AD, CN, CN, ...)
        train = frame.drop(valid.index)
        for name, f in (
            ("train", train),
            ("train_baseline", train),
            ("validation", valid),
            ("validation_baseline", valid),
        ):
            f.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
    frame.to_csv(split_root / "train.tsv", sep="\t", index=False)
    test_caps, test_tsv = _caps_with_offset(root / "test_caps", subjects=4, offset=100)
    test = pd.read_csv(test_tsv, sep="\t", dtype=str)
    diag_dir = root / "test_by_diagnosis"
    diag_dir.mkdir()
    for d, part in test.groupby("diagnosis"):
        part.to_csv(diag_dir / f"{d}.tsv", sep="\t", index=False)
        part.iloc[:1].to_csv(diag_dir / f"{d}_baseline.tsv", sep="\t", index=False)
    return {"caps": caps, "tsv": tsv, "split": split_root, "kfold": kfold, "test_caps": test_caps,
            "test_tsv": test_tsv, "test_by_diagnosis": diag_dir, "root": root}  # fmt: skip


def _caps_with_offset(root: Path, subjects: int, offset: int) -> tuple[Path, Path]:
    from neuroexec.data.extract import plan_extraction, run_extraction
    from neuroexec.data.participants import load_participants
    from neuroexec.data.synthetic import generate_atrophy_dataset

    data = generate_atrophy_dataset(root, subjects=subjects, resolution_mm=8.0, seed=3, subject_offset=offset,
                                    shape=SHAPE)  # fmt: skip
    run_extraction(
        plan_extraction(load_participants(data.participants_tsv), data.caps_dir, "image"), normalize=True
    )
    return data.caps_dir, data.participants_tsv


def clinicadl_state(seed: int = 0) -> dict[str, torch.Tensor]:
    from neuroexec.nn.networks import build_network

    torch.manual_seed(seed)
    return build_network(ARCH, (1, *SHAPE), 2).state_dict()


def make_clinicadl_maps(root: Path, data: dict[str, Path], splits=(0, 1), metrics=("loss", "BA")) -> Path:
    """A MAPS with ClinicaDL 1.x's layout, maps.json keys and values (an unused transfer_path is "", as
    its writer turns False into), groups/<train|validation>/split-<i>/{data.tsv, maps.json} and checkpoint
    keys, written by hand."""
    root.mkdir(parents=True)
    params = {
        "architecture": ARCH, "multi_network": False, "dropout": 0.0, "latent_space_size": 2, "feature_size": 1024,
        "n_conv": 4, "io_layer_channels": 8, "normalization": "BatchNorm", "selection_metrics": list(metrics),
        "label": "diagnosis", "label_code": {"AD": 0, "CN": 1}, "selection_threshold": 0.0,
        "loss": "CrossEntropyLoss", "gpu": False, "n_proc": 2, "batch_size": 2, "evaluation_steps": 0,
        "amp": False, "seed": 0, "deterministic": False, "compensation": "memory", "transfer_path": "",
        "transfer_selection_metric": "loss", "nb_unfrozen_layer": 0, "multi_cohort": False,
        "diagnoses": ["AD", "CN"], "baseline": False, "normalize": True, "data_augmentation": False,
        "sampler": "random", "size_reduction": False, "n_splits": len(splits), "optimizer": "Adam",
        "epochs": 3, "learning_rate": 1e-4, "weight_decay": 1e-4, "patience": 0, "tolerance": 0.0,
        "accumulation_steps": 1, "network_task": "classification", "caps_directory": str(data["caps"]),
        "tsv_path": str(data["kfold"]),
        "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "image", "use_uncropped_image": False,
                               "prepare_dl": True, "extract_json": "extract_image.json",
                               "file_type": {"pattern": "*_T1w_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt",
                                             "description": "T1W Image registered using t1-linear and cropped",
                                             "needed_pipeline": "t1-linear"}},
        "mode": "image", "split": list(splits), "validation": "KFoldSplit", "num_networks": 1, "output_size": 2,
        "input_size": [1, *SHAPE],
    }  # fmt: skip
    (root / "maps.json").write_text(json.dumps(params, indent=4))
    (root / "environment.txt").write_text("torch==1.13\n")
    groups = root / "groups"
    frame = pd.read_csv(data["tsv"], sep="\t", dtype=str)
    (groups).mkdir()
    frame[["participant_id", "session_id", "diagnosis"]].to_csv(
        groups / "train+validation.tsv", sep="\t", index=False
    )
    for i in splits:
        for side, name in (("train", "train.tsv"), ("validation", "validation_baseline.tsv")):
            part = pd.read_csv(data["kfold"] / f"split-{i}" / name, sep="\t", dtype=str)
            (groups / side / f"split-{i}").mkdir(parents=True, exist_ok=True)
            part.assign(cohort="single")[["participant_id", "session_id", "cohort", "diagnosis"]].to_csv(
                groups / side / f"split-{i}" / "data.tsv", sep="\t", index=False
            )
            record = {"caps_directory": str(data["caps"]), "multi_cohort": False}
            (groups / side / f"split-{i}" / "maps.json").write_text(json.dumps(record, indent=4))
        for j, metric in enumerate(metrics):
            best = root / f"split-{i}" / f"best-{metric}"
            best.mkdir(parents=True)
            torch.save(
                {"model": clinicadl_state(10 * i + j), "epoch": 2 - j, "name": ARCH}, best / "model.pth.tar"
            )
    return root


def make_legacy_model(
    root: Path, data: dict[str, Path], folds=(0,), with_tsvs: bool = True, mode: str = "image"
) -> Path:
    """A model folder of the older generation: commandline.json, fold-<i>/models/best_<metric>/model_best.pth.tar."""
    root.mkdir(parents=True)
    cmd = {
        "network_type": "cnn", "mode": mode, "model": ARCH, "input_dir": str(data["test_caps"]),
        "tsv_path": str(data["test_by_diagnosis"]), "diagnoses": ["AD", "CN"], "baseline": False, "dropout": 0.0,
        "preprocessing": "t1-linear", "n_splits": len(folds), "epochs": 3, "batch_size": 2, "learning_rate": 1e-4,
        "input_size": [1, *SHAPE],  # not written by the older generation (it used 169x208x179); tiny here
    }  # fmt: skip
    (root / "commandline.json").write_text(json.dumps(cmd))
    (root / "environment.txt").write_text("torch==1.4\n")
    for i in folds:
        for j, metric in enumerate(("loss", "balanced_accuracy")):
            folder = root / f"fold-{i}" / "models" / f"best_{metric}"
            folder.mkdir(parents=True)
            ckpt = {"model": clinicadl_state(100 + 10 * i + j), "epoch": 4 + j, "valid_loss": np.float64(0.5),
                    "valid_acc": np.float64(0.75)}  # fmt: skip
            torch.save(ckpt, folder / "model_best.pth.tar")
            if with_tsvs:
                out = root / f"fold-{i}" / "cnn_classification" / f"best_{metric}"
                out.mkdir(parents=True)
                (out / f"validation_{mode}_level_prediction.tsv").write_text("participant_id\tsession_id\n")
    return root


@pytest.fixture
def clinicadl_maps(tmp_path, tiny_data) -> Path:
    return make_clinicadl_maps(tmp_path / "maps", tiny_data)


@pytest.fixture
def legacy_model(tmp_path, tiny_data) -> Path:
    return make_legacy_model(tmp_path / "model", tiny_data)


def _two_fold(frame: pd.DataFrame, folder: Path) -> Path:
    """ClinicaDL's `tsvtools kfold` layout: <folder>/train.tsv and <folder>/2_fold/split-<i>/ files."""
    kfold = folder / "2_fold"
    for i in range(2):
        (kfold / f"split-{i}").mkdir(parents=True)
        valid = frame.iloc[[i, i + 2]]  # one AD and one CN (the generator labels pairs AD, AD, CN, CN, ...)
        for name, part in (("train", frame.drop(valid.index)), ("validation_baseline", valid)):
            part.to_csv(kfold / f"split-{i}" / f"{name}.tsv", sep="\t", index=False)
    frame.to_csv(folder / "train.tsv", sep="\t", index=False)
    return folder


@pytest.fixture(scope="session")
def cohort_tables(tmp_path_factory) -> Path:
    """Cohorts `adni` (AD and CN) and `aibl` (its table lists AD only) of 8 subjects each, each with its CAPS
    and split directory; CAPS_DIRECTORY and TSV_DIRECTORY tables with relative paths, in `root`."""
    from neuroexec.data.extract import plan_extraction, run_extraction
    from neuroexec.data.participants import load_participants
    from neuroexec.data.synthetic import generate_atrophy_dataset

    root = tmp_path_factory.mktemp("cohorts")
    for name, offset in (("adni", 0), ("aibl", 300)):
        data = generate_atrophy_dataset(root / f"caps_{name}", subjects=8, resolution_mm=8.0, seed=offset + 1,
                                        subject_offset=offset, shape=SHAPE)  # fmt: skip
        frame = load_participants(data.participants_tsv)
        run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
        _two_fold(pd.read_csv(data.participants_tsv, sep="\t", dtype=str), root / f"split_{name}")
    (root / "caps.tsv").write_text("cohort\tpath\nadni\tcaps_adni\naibl\tcaps_aibl\n")
    (root / "tsv.tsv").write_text(
        "cohort\tpath\tdiagnoses\nadni\tsplit_adni/2_fold\tAD,CN\naibl\tsplit_aibl/2_fold\tAD\n"
    )
    return root
