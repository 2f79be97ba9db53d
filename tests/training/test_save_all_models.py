"""train.save_all_models: every epoch's model in `split-<i>/all_models/model_epoch_<e>.pth.tar`
(ClinicaDL's place and names), staged in tmp/ until the training finishes, bit-identical after an
interruption, and replaced (or removed) when the split is trained again."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.steps import train
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import run_apply, write_spec


def _body(epochs: int = 3, save: bool = True, lr: str = "1e-3") -> str:
    flag = ", save_all_models = true" if save else ""
    return f'task = "classification"\ntrain = {{ epochs = {epochs}, learning_rate = {lr}{flag} }}'


def test_every_epoch_is_kept_and_published_with_the_split(tmp_path):
    run_apply(write_spec(tmp_path, {"cnn": _body()}))
    maps = MapsLayout(tmp_path / "maps/cnn")
    files = sorted(maps.all_models_dir(0).iterdir())
    assert [f.name for f in files] == [f"model_epoch_{e}.pth.tar" for e in range(3)]
    states = [load_model_state(maps.epoch_model(0, e)) for e in range(3)]  # weights_only
    assert [(epoch, name) for _, epoch, name in states] == [(0, "TinyCNN"), (1, "TinyCNN"), (2, "TinyCNN")]
    assert any((states[0][0][k] != states[2][0][k]).any() for k in states[0][0])  # the weights moved on
    _, best_epoch, _ = load_model_state(maps.best_model(0, "loss"))
    assert maps.epoch_model(0, best_epoch).read_bytes() == maps.best_model(0, "loss").read_bytes()
    assert not maps.tmp_dir(0).exists()
    assert json.loads(maps.maps_json.read_text())["save_all_models"] is True


def test_they_wait_in_tmp_and_an_interrupted_run_gives_the_same_files(tmp_path):
    path = write_spec(tmp_path, {"a": _body(), "b": _body()})
    run_apply(path, target="model.a.train*")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target="model.b.train*")
    b = MapsLayout(tmp_path / "maps/b")
    assert [p.name for p in b.staged_epoch_models(0)] == ["model_epoch_0.pth.tar"]
    assert not b.all_models_dir(0).exists()  # nothing in place before the training finishes
    run_apply(path, target="model.b.train*")  # resumes after epoch 0
    a = MapsLayout(tmp_path / "maps/a")
    for epoch in range(3):
        assert b.epoch_model(0, epoch).read_bytes() == a.epoch_model(0, epoch).read_bytes()


def test_a_retraining_replaces_them_and_says_so(tmp_path):
    path = write_spec(tmp_path, {"cnn": _body()})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")
    before = maps.epoch_model(0, 0).read_bytes()
    path = write_spec(tmp_path, {"cnn": _body(epochs=2, lr="3e-4")})
    step = next(p.step for p in make_plan(load_spec(path)).steps if p.step.kind == "train")
    assert "3 models of every epoch" in " ".join(train.notes(step))
    run_apply(path)
    assert sorted(p.name for p in maps.all_models_dir(0).iterdir()) == [
        "model_epoch_0.pth.tar",
        "model_epoch_1.pth.tar",
    ]
    assert maps.epoch_model(0, 0).read_bytes() != before  # another learning rate, other weights


def test_a_retraining_without_the_option_removes_the_old_ones(tmp_path):
    path = write_spec(tmp_path, {"cnn": _body(epochs=2)})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/cnn")
    assert maps.all_models_dir(0).is_dir()
    run_apply(write_spec(tmp_path, {"cnn": _body(epochs=2, save=False)}))
    assert not maps.all_models_dir(0).exists()  # they were another training's weights
    assert maps.best_model(0, "loss").is_file()


def test_the_option_enters_the_fingerprint_only_when_set(tmp_path):
    from neuroexec.training.task import training_config

    spec = load_spec(write_spec(tmp_path, {"on": _body(), "off": _body(save=False)}))
    assert training_config(spec.models["on"])["train"]["save_all_models"] is True
    assert "save_all_models" not in training_config(spec.models["off"])["train"]


def test_each_network_of_a_multi_network_model_keeps_its_epochs(tmp_path):
    body = (
        'task = "classification"\nmode = "patch"\npatch = { size = 12, stride = 10 }\nmulti_network = true\n'
        "train = { epochs = 2, learning_rate = 1e-3, save_all_models = true, evaluation_steps = 1 }"
    )
    run_apply(write_spec(tmp_path, {"multi": body}))
    maps = MapsLayout(tmp_path / "maps/multi")
    names = sorted(p.name for p in maps.all_models_dir(0).iterdir())
    assert names == sorted(f"network-{k}_model_epoch_{e}.pth.tar" for k in range(4) for e in range(2))
    for k, best in maps.best_network_models(0, "loss"):
        _, epoch, _ = load_model_state(best)
        assert maps.epoch_model(0, epoch, k).read_bytes() == best.read_bytes()
    log = pd.read_csv(maps.training_tsv(0, 3), sep="\t")  # 6 patches of network 3 in batches of 4
    assert list(zip(log["epoch"], log["iteration"])) == [(0, 0), (0, 1), (0, 1), (1, 0), (1, 1), (1, 1)]
