"""Before the first epoch: the compile pre-check, the regression label check, the in-memory cache."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from neuroexec.errors import DeviceError, InputError
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Compute, Model
from neuroexec.training import setup
from neuroexec.training.task import split_frames
from tests.training.training_specs import run_apply, train_task, write_spec


def test_compile_on_the_cpu_without_a_cpp_compiler_is_a_clear_error(monkeypatch):
    from torch._inductor import config

    cpu = torch.device("cpu")
    setup.check_compile(Compute(device="cpu", compile=True), cpu)  # g++ is here
    monkeypatch.setattr(config.cpp, "cxx", ("/nowhere/g++",))
    with pytest.raises(DeviceError, match=r"C\+\+ compiler.*/nowhere/g\+\+.*compute.compile = false"):
        setup.check_compile(Compute(device="cpu", compile=True), cpu)
    setup.check_compile(Compute(device="cpu", compile=False), cpu)


def write_labels(tmp_path, ages) -> MapsLayout:
    maps = MapsLayout(tmp_path)
    maps.train_validation_tsv.parent.mkdir(parents=True)
    frame = pd.DataFrame(
        {"participant_id": [f"sub-{i}" for i in range(len(ages))], "session_id": "ses-M000", "age": ages}
    )
    frame.to_csv(maps.train_validation_tsv, sep="\t", index=False)
    return maps


def test_regression_label_must_be_numeric(tmp_path):
    model = Model(name="reg", maps=tmp_path, dataset="demo", task="regression", label="age")
    assert setup.label_code_of(model, write_labels(tmp_path / "a", [71.5, 60, None])) is None
    with pytest.raises(InputError, match=r"train\+validation.tsv.*'age' holds 'old' \(2 non-numeric"):
        setup.label_code_of(model, write_labels(tmp_path / "b", [71.5, "old", "young"]))


@pytest.fixture
def frames(tmp_path):
    path = write_spec(tmp_path, {"cnn": 'task = "classification"'})
    run_apply(path, target="dataset.demo.extract*")  # generates and extracts the data
    run_apply(path, target="model.cnn.split")
    task = train_task(path, "cnn")
    return task, split_frames(task.model.maps, 0)[0]


def test_cache_reads_every_image_up_front(frames):
    task, frame = frames
    code = {"AD": 0, "CN": 1}
    reference = setup.make_dataset(task.model, task.dataset, frame, code, cache=False)
    expected = [reference[i]["image"].clone() for i in range(len(reference))]
    cached = setup.make_dataset(task.model, task.dataset, frame, code, cache=True)
    for path in cached.paths:
        path.unlink()  # the disk copies go: training still sees every image
    assert len(cached) == len(expected) > 0
    for i, image in enumerate(expected):
        assert torch.equal(cached[i]["image"], image)


def test_cache_that_does_not_fit_is_turned_off_with_a_warning(frames, monkeypatch):
    task, frame = frames
    monkeypatch.setattr(setup, "available_memory", lambda: 1000)
    warnings: list[str] = []
    data = setup.make_dataset(task.model, task.dataset, frame, {"AD": 0, "CN": 1}, True, warnings.append)
    assert not data.cache and len(warnings) == 1 and "compute.cache" in warnings[0]
    data.paths[0].unlink()
    with pytest.raises(InputError):  # not cached: read from disk
        data[0]


def test_cache_budget_is_shared_by_the_processes_on_the_machine(frames, monkeypatch):
    task, frame = frames
    code = {"AD": 0, "CN": 1}
    need = len(frame) * math.prod(setup.make_dataset(task.model, task.dataset, frame, code).input_size) * 4
    monkeypatch.setattr(setup, "available_memory", lambda: 3 * need)  # the dataset takes 1/3 of it
    alone = setup.make_dataset(task.model, task.dataset, frame, code, True, processes=1)
    assert alone.cache  # 1/3 <= 1/2
    warnings: list[str] = []
    shared = setup.make_dataset(task.model, task.dataset, frame, code, True, warnings.append, processes=2)
    assert not shared.cache and "25% of the" in warnings[0] and "its own copy" in warnings[0]


def test_channels_last_auto_follows_the_image_size():
    from neuroexec.spec.model import Compute
    from neuroexec.training.setup import channels_last_for

    assert channels_last_for(Compute(), [1, 169, 208, 179]) is True
    assert channels_last_for(Compute(), [1, 42, 52, 45]) is False
    assert channels_last_for(Compute(channels_last=True), [1, 8, 8, 8]) is True
    assert channels_last_for(Compute(channels_last=False), [1, 169, 208, 179]) is False
