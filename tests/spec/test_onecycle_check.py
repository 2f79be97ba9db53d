"""validate refuses a OneCycleLR whose steps end before train.epochs (the scheduler steps once per
epoch, and OneCycleLR raises at the step after its last: the training would fail part-way)."""

from __future__ import annotations

import pytest
import torch

from neuroexec.errors import SpecError
from neuroexec.optim import make_optimizer, make_scheduler, step
from neuroexec.spec import load_spec
from tests.training.training_specs import write_spec


def _load(tmp_path, scheduler: str, epochs: int):
    body = f'task = "classification"\ntrain = {{ epochs = {epochs}, scheduler = {{ name = "OneCycleLR", {scheduler} }} }}'
    return load_spec(write_spec(tmp_path, {"m": body}))


@pytest.mark.parametrize(
    "scheduler", ["max_lr = 0.01, total_steps = 3", "max_lr = 0.01, epochs = 1, steps_per_epoch = 3"]
)
def test_too_few_steps_for_the_epochs_is_refused(tmp_path, scheduler):
    with pytest.raises(SpecError) as err:
        _load(tmp_path, scheduler, epochs=4)
    said = str(err.value)
    assert "models.m.train.scheduler" in said
    assert "OneCycleLR steps 3 times" in said and "4 times (train.epochs)" in said
    assert "give train.scheduler total_steps >= 4" in said


def test_as_many_steps_as_epochs_is_accepted_and_runs_every_epoch(tmp_path):
    spec = _load(tmp_path, "max_lr = 0.01, total_steps = 4", epochs=4)
    options = spec.models["m"].train.scheduler.options
    optimizer = make_optimizer("Adam", torch.nn.Linear(2, 1).parameters(), 1e-3, 0.0)
    scheduler = make_scheduler(optimizer, name="OneCycleLR", options=options)
    for _ in range(4):  # the epochs' steps, as training/loop.Trainer.end_epoch takes them
        optimizer.step()
        step(scheduler, 0.0)
    with pytest.raises(ValueError, match="Tried to step 5 times"):  # what validate now guards against
        step(scheduler, 0.0)
