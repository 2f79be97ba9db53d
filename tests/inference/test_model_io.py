"""Loading the best model of a MAPS: eval mode, same weights, clear errors for a missing or unfitting file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from inference_bench import SHAPE, write_maps

from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.inference.fold import PartPlace, part_affine
from neuroexec.inference.model_io import load_model
from neuroexec.maps.layout import MapsLayout


def test_load_model_gives_the_saved_network_in_eval_mode(tmp_path):
    saved = write_maps(tmp_path / "maps", tmp_path / "caps", seed=3)
    model, info = load_model(tmp_path / "maps", 0, "loss", "cpu")
    assert not model.training and info.task == "classification" and info.label_code == {"AD": 0, "CN": 1}
    x = torch.rand(2, 1, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(model(x), saved(x))


def test_autoencoder_maps_loads_an_autoencoder(tmp_path):
    write_maps(tmp_path / "maps", tmp_path / "caps", task="reconstruction")
    model, _ = load_model(tmp_path / "maps", 0, "loss")
    assert model(torch.rand(1, 1, *SHAPE)).shape == (1, 1, *SHAPE)


def test_missing_best_model_lists_what_exists(tmp_path):
    write_maps(tmp_path / "maps", tmp_path / "caps")
    with pytest.raises(InputError, match=r"selection metric 'BA'.*best-loss") as err:
        load_model(tmp_path / "maps", 0, "BA")
    assert "split-0/best-BA/model.pth.tar" in str(err.value)


def test_weights_for_another_input_size_are_refused(tmp_path):
    write_maps(tmp_path / "maps", tmp_path / "caps")
    maps_json = MapsLayout(tmp_path / "maps").maps_json
    config = json.loads(maps_json.read_text())
    config["input_size"] = [1, 30, 30, 30]
    maps_json.write_text(json.dumps(config))
    with pytest.raises(InputError, match="do not fit"):
        load_model(tmp_path / "maps", 0, "loss")


def test_patch_affine_moves_the_origin_to_the_patch_corner():
    affine = np.array([[2.0, 0, 0, -10], [0, 3.0, 0, -20], [0, 0, 4.0, -30], [0, 0, 0, 1]])
    # image 12 x 14 x 12, patches of 6 every 6 -> grid 2 x 2 x 2; patch 5 = (1, 0, 1)
    moved = part_affine(ExtractionMode.patch(6, 6), affine, (12, 14, 12), 5, PartPlace())
    np.testing.assert_allclose(moved[:3, 3], [-10 + 2 * 6, -20, -30 + 4 * 6])
    np.testing.assert_allclose(moved[:3, :3], affine[:3, :3])


def test_training_group_of_a_multi_cohort_model_is_refused_clearly(tmp_path):
    # maps.json of a multi-cohort model naming one CAPS: reading every cohort's images from it would
    # fail later with misleading "tensor not found" paths; the error names maps.json and the fix.
    from neuroexec.inference.model_io import group_caps
    from neuroexec.inference.task import GroupTask
    from neuroexec.maps.info import read_maps_info
    from neuroexec.spec.model import Group, Model

    write_maps(tmp_path / "maps", tmp_path / "caps")
    path = tmp_path / "maps" / "maps.json"
    task = GroupTask(
        Group(name="validation", models=("m",), from_training="validation"),
        Model(name="m", maps=tmp_path / "maps", dataset=None), None, 0, "loss",
    )  # fmt: skip
    assert group_caps(task, read_maps_info(tmp_path / "maps")) == {"single": tmp_path / "caps"}
    path.write_text(json.dumps({**json.loads(path.read_text()), "multi_cohort": True}))
    with pytest.raises(InputError, match="multi-cohort dataset but caps_directory names one CAPS") as err:
        group_caps(task, read_maps_info(tmp_path / "maps"))
    assert str(path) in str(err.value)
    # What neuroexec writes for such a model: caps_directory names ClinicaDL's cohort table.
    table = tmp_path / "maps" / "caps_cohorts.tsv"
    table.write_text(f"cohort\tpath\nA\t{tmp_path}/caps-a\nB\t{tmp_path}/caps-b\n")
    path.write_text(json.dumps({**json.loads(path.read_text()), "caps_directory": str(table)}))
    caps = group_caps(task, read_maps_info(tmp_path / "maps"))
    assert caps == {"A": tmp_path / "caps-a", "B": tmp_path / "caps-b"}
