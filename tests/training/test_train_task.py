"""The train step's task (neuroexec/training/task.py): its input files, outputs and resume key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.spec.model import Cohort, Dataset, Model, Train
from neuroexec.training.task import TrainTask
from tests.training.training_specs import train_task, write_spec


def _dataset(tmp_path: Path) -> Dataset:
    return Dataset(name="d", cohorts=(Cohort("single", tmp_path / "caps", tmp_path / "p.tsv"),))


def test_a_transfer_source_trained_by_the_spec_is_a_dependency_its_file_the_resume_key(tmp_path: Path):
    path = write_spec(tmp_path, {"src": "", "dst": 'transfer = { model = "src" }'})
    step = next(p.step for p in make_plan(load_spec(path)).steps if p.step.id == "model.dst.train[split-0]")
    task = step.payload
    assert isinstance(task, TrainTask) and task.transfer_trained
    assert task.transfer_from == MapsLayout(tmp_path / "maps/src").best_model(0, "loss")
    assert step.inputs == () and "model.src.train[split-0]" in step.deps
    before = task.resume_key({})
    task.transfer_from.parent.mkdir(parents=True)
    task.transfer_from.write_bytes(b"weights")  # the source trained again: its interrupted run is not resumed
    assert task.resume_key({}) != before


def test_a_transfer_source_from_elsewhere_is_an_input(tmp_path: Path):
    source = tmp_path / "other/split-0/best-loss/model.pth.tar"
    model = Model(name="m", maps=tmp_path / "maps", dataset="d")
    task = TrainTask(model, _dataset(tmp_path), 0, source, tmp_path / "other")
    assert task.inputs() == (source,)
    assert TrainTask(model, _dataset(tmp_path), 0, None, None).inputs() == ()


def test_outputs_name_one_best_model_per_selection_metric(tmp_path: Path):
    train = Train(selection_metrics=("loss", "balanced_accuracy", "BA"))
    task = TrainTask(
        Model(name="m", maps=tmp_path, dataset="d", train=train), _dataset(tmp_path), 1, None, None
    )
    maps = MapsLayout(tmp_path)
    assert task.outputs() == [
        maps.maps_json,
        maps.training_tsv(1),
        maps.best_model(1, "loss"),
        maps.best_model(1, "BA"),
    ]


def test_the_config_slice_ignores_where_the_model_runs(tmp_path: Path):
    path = write_spec(tmp_path, {"cnn": ""})
    task = train_task(path, "cnn")
    moved = dataclasses.replace(
        task.model, compute=dataclasses.replace(task.model.compute, device="cpu", workers=7)
    )
    assert dataclasses.replace(task, model=moved).config() == task.config()
    reseeded = dataclasses.replace(task.model, compute=dataclasses.replace(task.model.compute, seed=3))
    assert dataclasses.replace(task, model=reseeded).config() != task.config()


def test_the_task_is_frozen(tmp_path: Path):
    task = TrainTask(Model(name="m", maps=tmp_path, dataset="d"), _dataset(tmp_path), 0, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.split = 1  # type: ignore[misc]
