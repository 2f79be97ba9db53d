"""Numbers that are not numbers are errors: a training whose loss becomes NaN or infinite stops at that
epoch with the way out, and applying again repeats that sentence (never "checkpoint not found")."""

from __future__ import annotations

import pytest

from neuroexec.errors import StepFailed
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.training import loop
from tests.training.training_specs import run_apply, write_spec

STEP = "model.a.train[split-0]"


def body(learning_rate: str) -> str:
    return f'task = "classification"\ntrain = {{ epochs = 3, learning_rate = {learning_rate} }}'


def failure(path) -> str:
    with pytest.raises(StepFailed) as err:
        run_apply(path)
    return str(err.value)


def test_a_huge_learning_rate_stops_with_the_epoch_and_the_way_out(tmp_path):
    # lr 1e8: the weights blow up during the first epoch, its validation loss is NaN. Before, training went
    # on, saved no best model (NaN never improves) and failed on "checkpoint not found", then every apply
    # said "resuming after epoch 2 of 3" and failed the same way.
    path = write_spec(tmp_path, {"a": body("1e8")})
    message = failure(path)
    assert "training diverged at epoch 1 (validation loss nan)" in message
    assert "lower train.learning_rate (now 1e+08)" in message
    maps = MapsLayout(tmp_path / "maps/a")
    assert not maps.best_dir(0, "loss").exists() and not maps.maps_json.exists()
    assert failure(path) == message  # applying again: the same sentence, no resume of a broken run

    path.write_text(path.read_text().replace("learning_rate = 1e8", "learning_rate = 1e-3"))
    run_apply(path)
    assert {p.action for p in make_plan(load_spec(path)).steps} == {"="}
    assert maps.best_model(0, "loss").is_file()


def test_a_loss_that_becomes_nan_stops_at_its_epoch(tmp_path, monkeypatch):
    # From the second epoch (index 1) the loss is NaN, so the weights become NaN after its first step.
    epoch_now = {"epoch": 0}
    train_epoch, task_loss = loop.Trainer.train_epoch, loop.task_loss

    def tracked(self, loader, epoch, desc, *hooks):
        epoch_now["epoch"] = epoch
        return train_epoch(self, loader, epoch, desc, *hooks)

    def poisoned(*args, **kwargs):
        loss = task_loss(*args, **kwargs)
        return loss * float("nan") if epoch_now["epoch"] >= 1 else loss

    monkeypatch.setattr(loop.Trainer, "train_epoch", tracked)
    monkeypatch.setattr(loop, "task_loss", poisoned)
    path = write_spec(tmp_path, {"a": body("1e-3")})
    message = failure(path)
    maps = MapsLayout(tmp_path / "maps/a")
    assert "training diverged at epoch 2 (train loss nan)" in message
    assert f"the epochs before it wait in {maps.tmp_dir(0)}" in message
    # Nothing of the diverged epoch was kept: the resume point is the last epoch with numbers.
    reasons = next(p.reasons for p in make_plan(load_spec(path)).steps if p.step.id == STEP)
    assert reasons == ["interrupted after epoch 1 of 3: apply resumes there"]
    assert failure(path) == message
