"""Tiny MAPS for the inference tests (helpers imported by the test modules; fixtures in conftest.py), written by hand: a maps.json, a (seeded, untrained) TinyCNN or
autoencoder saved with checkpoints.save_model, and a data group's data.tsv — so predict, save-tensors
and interpret are tested without running a training."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.data.extract import plan_extraction, run_extraction
from neuroexec.data.participants import load_participants
from neuroexec.data.synthetic import GeneratedDataset, generate_atrophy_dataset
from neuroexec.inference.task import GroupTask
from neuroexec.maps.checkpoints import save_model
from neuroexec.maps.layout import MapsLayout
from neuroexec.progress import Reporter
from neuroexec.spec.model import Cohort, Compute, Dataset, Group, Interpretation, Model, SaveTensors

SHAPE = (12, 14, 12)  # ~14 mm voxels over the MNI crop: a few ms per forward pass


def extract(data: GeneratedDataset) -> None:
    frame = load_participants(data.participants_tsv)
    run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)


@pytest.fixture(scope="session")
def cohort_a(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    data = generate_atrophy_dataset(tmp_path_factory.mktemp("caps_a"), subjects=8, resolution_mm=8.0, seed=5,
                                    shape=SHAPE)  # fmt: skip
    extract(data)
    return data


@pytest.fixture(scope="session")
def cohort_b(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDataset:
    data = generate_atrophy_dataset(tmp_path_factory.mktemp("caps_b"), subjects=4, resolution_mm=8.0, seed=6,
                                    shape=SHAPE, subject_offset=100)  # fmt: skip
    extract(data)
    return data


def write_maps(
    root: Path,
    caps: Path,
    task: str = "classification",
    mode: str = "image",
    patch: int | None = None,
    seed: int = 0,
    model: torch.nn.Module | None = None,
) -> torch.nn.Module:
    """A MAPS with one best-loss model for split 0 (a seeded TinyCNN unless `model` is given)."""
    from neuroexec.nn.autoencoder import build_autoencoder
    from neuroexec.nn.networks import build_network

    if mode == "patch":
        input_size = [1, patch, patch, patch]
    else:
        input_size = list(model.input_size) if model is not None else [1, *SHAPE]
    torch.manual_seed(seed)
    if model is None:
        if task == "reconstruction":
            model = build_autoencoder("TinyCNN", tuple(input_size), 0.0)
        else:
            model = build_network("TinyCNN", tuple(input_size), 2 if task == "classification" else 1, 0.0)
    name = "AE_TinyCNN" if task == "reconstruction" else "TinyCNN"
    pre = {"preprocessing": "t1-linear", "mode": mode, "use_uncropped_image": False, "prepare_dl": True}
    if patch:
        pre.update(patch_size=patch, stride_size=patch)
    config = {
        "architecture": name, "network_task": task, "mode": mode, "dropout": 0.0, "input_size": input_size,
        "label": "diagnosis" if task == "classification" else ("age" if task == "regression" else None),
        "label_code": {"AD": 0, "CN": 1} if task == "classification" else None,
        "output_size": 2 if task == "classification" else 1, "caps_directory": str(caps),
        "preprocessing_dict": pre, "selection_metrics": ["loss"],
    }  # fmt: skip
    layout = MapsLayout(root)
    layout.best_dir(0, "loss").mkdir(parents=True)
    layout.maps_json.write_text(json.dumps(config))
    save_model(layout.best_model(0, "loss"), model.state_dict(), 0, name)
    return model.eval()


def write_group(root: Path, name: str, cohorts: list[tuple[str, GeneratedDataset]]) -> pd.DataFrame:
    frames = [d.participants.assign(cohort=c) for c, d in cohorts]
    frame = pd.concat(frames, ignore_index=True)
    path = MapsLayout(root).group_data_tsv(name)
    path.parent.mkdir(parents=True)
    frame.to_csv(path, sep="\t", index=False)
    return frame


@dataclass
class Bench:
    """A MAPS, its model and what a result step needs to run on a group."""

    root: Path
    model: torch.nn.Module
    frame: pd.DataFrame
    dataset: Dataset
    ctx: RunContext

    def task(self, interpretation: Interpretation | None = None, save_tensors: SaveTensors | None = None,
             use_labels: bool = True, batch_size: int = 3) -> GroupTask:  # fmt: skip
        group = Group(name="test", models=("m",), dataset=self.dataset.name, use_labels=use_labels,
                      save_tensors=save_tensors, compute=Compute(device="cpu", workers=0, batch_size=batch_size),
                      interpret=(interpretation,) if interpretation else ())  # fmt: skip
        model = Model(name="m", maps=self.root, dataset=None)
        return GroupTask(group, model, self.dataset, 0, "loss", interpretation)

    @property
    def maps(self) -> MapsLayout:
        return MapsLayout(self.root)


def make_bench(tmp_path: Path, cohorts: list[tuple[str, GeneratedDataset]], **maps_kwargs) -> Bench:
    root = tmp_path / "maps"
    first = cohorts[0][1]
    model = write_maps(root, first.caps_dir, **maps_kwargs)
    frame = write_group(root, "test", cohorts)
    dataset = Dataset(
        name="ds", cohorts=tuple(Cohort(c, d.caps_dir, d.participants_tsv) for c, d in cohorts),
        multi_cohort=len(cohorts) > 1,
    )  # fmt: skip
    return Bench(root, model, frame, dataset, RunContext(reporter=Reporter(quiet=True)))


@pytest.fixture
def bench(tmp_path: Path, cohort_a: GeneratedDataset) -> Bench:
    """An image-mode TinyCNN classifier and a group of the 8 subjects of cohort A."""
    return make_bench(tmp_path, [("A", cohort_a)])


def minmax(t: torch.Tensor) -> torch.Tensor:
    """ClinicaDL's MinMaxNormalization of one item, written out (zeros for a constant item): what a
    patch-mode model sees of each patch."""
    span = t.max() - t.min()
    return (t - t.min()) / span if span > 0 else torch.zeros_like(t)


def image_tensor(data: GeneratedDataset, participant: str, session: str) -> torch.Tensor:
    from neuroexec.data.caps import CapsLayout

    return torch.load(CapsLayout(data.caps_dir).image_tensor(participant, session), weights_only=True)
