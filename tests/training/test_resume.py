"""Resumable training: interrupted-then-resumed == uninterrupted, bit for bit; never resumed on other data;
a failed apply says how to continue."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from neuroexec.errors import StepFailed
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.report import report
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import run_apply, write_spec

EPOCHS = 4
BODY = (
    'task = "classification"\n'
    f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss", "BA"] }}'
)


def interrupted(path, target: str, after_epoch: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, str(after_epoch))
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target=target)


def plan_reasons(path, step_id: str) -> list[str]:
    return next(p.reasons for p in make_plan(load_spec(path)).steps if p.step.id == step_id)


def test_interrupted_then_resumed_run_gives_identical_weights(tmp_path):
    # Two identical models (same data, same split seed): "a" runs straight through, "b" is stopped after
    # epoch 1 and resumed. Both are stopped after the last epoch so its tmp/ checkpoint (the final
    # weights, which training otherwise deletes) can be compared.
    path = write_spec(tmp_path, {"a": BODY, "b": BODY})
    interrupted(path, "model.a.train*", EPOCHS - 1)
    interrupted(path, "model.b.train*", 1)
    b = MapsLayout(tmp_path / "maps/b")
    assert "stopped after 2 epochs waits in" in report(load_spec(path))
    assert "no training of this split has finished yet" in report(load_spec(path))
    assert load_checkpoint(b.checkpoint(0))["epoch"] == 1
    resume = load_checkpoint(b.resume_state(0))  # weights_only: plain tensors and numbers only
    assert resume["progress"]["epoch"] == 1 and len(resume["progress"]["rows"]) == 2
    assert set(resume["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert load_checkpoint(b.optimizer_checkpoint(0))["name"] == "Adam"
    assert plan_reasons(path, "model.b.train[split-0]") == [
        f"interrupted after epoch 2 of {EPOCHS}: apply resumes there"
    ]
    interrupted(path, "model.b.train*", EPOCHS - 1)
    assert "split-0: training resumed after epoch 1" in b.staged_information_log(0).read_text()

    a = MapsLayout(tmp_path / "maps/a")
    final_a = load_checkpoint(a.checkpoint(0))
    final_b = load_checkpoint(b.checkpoint(0))
    assert final_a["epoch"] == final_b["epoch"] == EPOCHS - 1
    assert final_a["model"].keys() == final_b["model"].keys()
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    optimizer_a = load_checkpoint(a.optimizer_checkpoint(0))["optimizer"]["state"]
    optimizer_b = load_checkpoint(b.optimizer_checkpoint(0))["optimizer"]["state"]
    for index, state in optimizer_a.items():
        assert torch.equal(state["exp_avg"], optimizer_b[index]["exp_avg"])
    # Stopped before the end, neither training has published anything: log and best models wait in tmp/.
    for maps in (a, b):
        assert not maps.training_tsv(0).exists() and not maps.best_dir(0, "loss").exists()
        assert maps.staged_best_model(0, "loss").is_file()
    log_a = pd.read_csv(a.staged_training_tsv(0), sep="\t").drop(columns="time")
    log_b = pd.read_csv(b.staged_training_tsv(0), sep="\t").drop(columns="time")
    pd.testing.assert_frame_equal(log_a, log_b)
    assert len(log_b) == EPOCHS

    # A last, uninterrupted apply finishes both: results written, tmp/ removed.
    run_apply(path)
    for maps in (a, b):
        assert not maps.tmp_dir(0).exists()
        assert maps.metrics_tsv(0, "BA", "validation", "image").is_file()
        assert len(pd.read_csv(maps.training_tsv(0), sep="\t")) == EPOCHS
        assert load_checkpoint(maps.best_model(0, "loss"))["epoch"] <= EPOCHS - 1


def test_an_interrupted_run_is_not_resumed_on_other_data(tmp_path):
    # "a" is interrupted on one synthetic dataset, then the dataset is generated anew (another seed): the
    # same training config, other images and split tables. Resuming would finish, on the new data, a model
    # started on the old one. "a" must start over and end exactly as "b", trained on the new data only.
    path = write_spec(tmp_path, {"a": BODY, "b": BODY})
    interrupted(path, "model.a.train*", 1)
    a = MapsLayout(tmp_path / "maps/a")
    assert load_checkpoint(a.resume_state(0))["progress"]["epoch"] == 1
    text = path.read_text()
    assert "seed = 1 }" in text
    path.write_text(text.replace("seed = 1 }", "seed = 2 }"))
    assert not any("resumes" in reason for reason in plan_reasons(path, "model.a.train[split-0]"))

    interrupted(path, "model.a.train*", EPOCHS - 1)
    interrupted(path, "model.b.train*", EPOCHS - 1)
    assert "resumed" not in a.staged_information_log(0).read_text()
    b = MapsLayout(tmp_path / "maps/b")
    final_a, final_b = load_checkpoint(a.checkpoint(0)), load_checkpoint(b.checkpoint(0))
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    log_a = pd.read_csv(a.staged_training_tsv(0), sep="\t").drop(columns="time")
    log_b = pd.read_csv(b.staged_training_tsv(0), sep="\t").drop(columns="time")
    pd.testing.assert_frame_equal(log_a, log_b)


def test_a_corrupt_tensor_names_the_file_and_the_way_back(tmp_path):
    path = write_spec(tmp_path, {"cnn": 'task = "classification"\ntrain = { epochs = 1 }'})
    run_apply(path, target="dataset.demo.extract*")
    tensor = sorted((tmp_path / "data/demo/subjects").rglob("*.pt"))[0]
    tensor.write_bytes(tensor.read_bytes()[:300])
    with pytest.raises(StepFailed) as err:
        run_apply(path)
    message = str(err.value)
    assert str(tensor) in message and "delete the file and run apply again" in message
    assert "\n" not in message  # torch's paragraphs of advice about checkpoints are left out
    tensor.unlink()  # what the message says to do
    run_apply(path)
    assert {p.action for p in make_plan(load_spec(path)).steps} == {"="}


def test_an_interrupted_retraining_leaves_the_finished_training_in_place(tmp_path):
    # Retraining with other settings is stopped halfway: until it finishes, the MAPS keeps the last
    # finished training's log and models, which its results were computed with, and report says so.
    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path)
    a = MapsLayout(tmp_path / "maps/a")
    finished = [a.training_tsv(0), a.best_model(0, "loss"), a.best_model(0, "BA")]
    before = [f.read_bytes() for f in finished]
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 2e-3"))
    interrupted(path, "model.a.train*", 1)
    assert [f.read_bytes() for f in finished] == before
    assert f"a training stopped after 2 epochs waits in {a.tmp_dir(0)}" in report(load_spec(path))

    run_apply(path)
    assert a.best_model(0, "loss").read_bytes() != before[1]  # the new training, published
    assert "waits in" not in report(load_spec(path)) and not a.tmp_dir(0).exists()


def test_the_resume_key_notices_a_transfer_source_changed_with_its_mtime_put_back(tmp_path):
    import os
    import time

    from neuroexec.training.resume import run_key

    source = tmp_path / "model.pth.tar"
    source.write_bytes(b"0123456789")
    before = run_key({"a": 1}, 0, {}, [source])
    stat = source.stat()
    time.sleep(0.01)
    with open(source, "r+b") as f:
        f.write(b"X")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.stat().st_size == stat.st_size and source.stat().st_mtime_ns == stat.st_mtime_ns
    assert run_key({"a": 1}, 0, {}, [source]) != before
    assert run_key({"a": 1}, 0, {}, [source]) == run_key({"a": 1}, 0, {}, [source])
