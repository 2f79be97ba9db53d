"""The result steps' task (neuroexec/inference/task.py): the checkpoint it reads is the step's input, and
the participants it evaluates come from the MAPS."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.errors import InputError
from neuroexec.inference.task import GroupTask, group_participants
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Group, Model


def _task(root: Path, group: Group, split: int = 0, metric: str = "loss") -> GroupTask:
    return GroupTask(group, Model(name="m", maps=root, dataset=None), None, split, metric)


def test_the_checkpoint_read_is_the_input_in_either_maps_generation(tmp_path: Path):
    group = Group(name="test", models=("m",), dataset="d")
    task = _task(tmp_path / "new", group)
    assert task.inputs() == (task.checkpoint,) == (MapsLayout(tmp_path / "new").best_model(0, "loss"),)
    legacy = tmp_path / "old/fold-1/models/best_balanced_accuracy/model_best.pth.tar"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"weights")
    assert _task(tmp_path / "old", group, split=1, metric="BA").inputs() == (legacy,)


def test_config_names_the_group_model_split_and_metric(tmp_path: Path):
    config = _task(tmp_path, Group(name="test", models=("m",), dataset="d"), 2, "BA").config()
    assert (config["model"], config["split"], config["metric"]) == ("m", 2, "BA")
    assert config["group"]["dataset"] == "d"


def test_participants_of_a_group_and_of_a_training_group(tmp_path: Path):
    maps = MapsLayout(tmp_path)
    test = Group(name="test", models=("m",), dataset="d")
    with pytest.raises(InputError, match=r"groups/test/data\.tsv.*data group 'test' has no data\.tsv"):
        group_participants(_task(tmp_path, test))
    maps.split_group_tsv("validation", 1).parent.mkdir(parents=True)
    maps.split_group_tsv("validation", 1).write_text("participant_id\tsession_id\n007\tM000\n")
    frame = group_participants(
        _task(tmp_path, Group(name="validation", models=("m",), from_training="validation"), 1)
    )
    assert frame.to_dict("records") == [{"participant_id": "007", "session_id": "M000"}]  # ids kept as text
