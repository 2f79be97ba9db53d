"""Learning-rate schedules: ClinicaDL's adaptive_learning_rate (ReduceLROnPlateau, mode min, factor 0.1,
torch's other defaults, stepped after each epoch on its validation loss) and train.scheduler (a
torch.optim.lr_scheduler class, stepped once per epoch); both together, an unknown class or arguments it
refuses are refused by validate; an interrupted run with a scheduler resumes bit-identically."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.optim import lr_scheduler

from neuroexec.context import RunContext
from neuroexec.errors import SpecError
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.optim import make_scheduler
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute, Model, Scheduler, Train
from neuroexec.training.loop import Trainer
from neuroexec.training.resume import INTERRUPT_ENV
from neuroexec.training.task import training_config
from tests.training.training_specs import run_apply, write_spec


def sgd(lr: float = 1.0) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def trainer_with(optimizer, scheduler) -> Trainer:
    net = torch.nn.Linear(1, 1)
    compute = Compute(device="cpu", workers=0, seed=0)
    ctx = RunContext(reporter=Reporter(quiet=True))
    return Trainer(net, optimizer, "regression", "image", compute, 1, ctx, scheduler=scheduler)


def test_adaptive_learning_rate_is_clinicadls_plateau_on_the_validation_loss():
    optimizer = sgd()
    scheduler = make_scheduler(optimizer, adaptive=True)
    assert isinstance(scheduler, lr_scheduler.ReduceLROnPlateau)
    assert (scheduler.mode, scheduler.factor, scheduler.patience) == ("min", 0.1, 10)
    t = trainer_with(optimizer, scheduler)
    for _ in range(11):  # the first sets the best; 10 epochs without progress are tolerated
        optimizer.step()
        t.end_epoch(0.5)
    assert optimizer.param_groups[0]["lr"] == 1.0
    t.end_epoch(0.5)  # the 11th epoch without progress
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    t.end_epoch(0.01)  # an improving loss keeps it
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_a_scheduler_steps_once_per_epoch_with_its_arguments():
    optimizer = sgd()
    t = trainer_with(
        optimizer, make_scheduler(optimizer, name="MultiStepLR", options=[("milestones", (1, 3))])
    )
    rates = []
    for _ in range(4):
        optimizer.step()
        t.end_epoch(1.0)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([0.1, 0.1, 0.01, 0.01])


def problems(tmp_path, train: str) -> list[str]:
    path = write_spec(tmp_path, {"m": f'task = "classification"\ntrain = {{ {train} }}'})
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [f"{p.key}: {p.message}" for p in info.value.problems]


@pytest.mark.parametrize(
    "train, why",
    [
        ('adaptive_learning_rate = true, scheduler = { name = "StepLR", step_size = 2 }', "not both"),
        ('scheduler = { name = "StepLRR" }', "'StepLRR' is not a scheduler it can build; expected one of"),
        ('scheduler = { name = "LambdaLR" }', "'LambdaLR' is not a scheduler it can build"),
        ('scheduler = { name = "StepLR", stepsize = 2 }', "StepLR refuses these arguments"),
        # tried with the training's optimizer: Adagrad has no momentum for CyclicLR to cycle
        (
            'optimizer = "Adagrad", scheduler = { name = "CyclicLR", base_lr = 1e-4, max_lr = 1e-2 }',
            "momentum",
        ),
    ],
)
def test_a_scheduler_that_cannot_be_built_is_refused_by_validate(tmp_path, train, why):
    found = problems(tmp_path, train)
    assert len(found) == 1 and found[0].startswith("models.m.train.scheduler: ") and why in found[0]


EPOCHS = 4
# threshold 0.5: no epoch after the first improves on it by half, so the rate halves after the 3rd (the
# 2nd bad epoch); the count of bad epochs must survive the interruption for the same rates.
SCHEDULED = (
    'task = "classification"\n'
    f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss"], '
    'scheduler = { name = "ReduceLROnPlateau", threshold = 0.5, patience = 1, factor = 0.5 } }'
)


def interrupted(path, target: str, after_epoch: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, str(after_epoch))
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target=target)


def test_an_interrupted_run_with_a_scheduler_resumes_bit_identically(tmp_path):
    path = write_spec(tmp_path, {"a": SCHEDULED, "b": SCHEDULED}, subjects=8, batch_size=2)
    interrupted(path, "model.a.train*", EPOCHS - 1)
    interrupted(path, "model.b.train*", 1)
    saved = load_checkpoint(MapsLayout(tmp_path / "maps/b").resume_state(0))["scheduler"]
    assert saved["num_bad_epochs"] == 1  # weights_only-loadable, with the plateau's count
    interrupted(path, "model.b.train*", EPOCHS - 1)
    a, b = MapsLayout(tmp_path / "maps/a"), MapsLayout(tmp_path / "maps/b")
    final_a, final_b = load_checkpoint(a.checkpoint(0)), load_checkpoint(b.checkpoint(0))
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    rates = [load_checkpoint(m.optimizer_checkpoint(0))["optimizer"]["param_groups"][0]["lr"] for m in (a, b)]
    assert rates[0] == rates[1] == pytest.approx(1e-3 * 0.5)  # halved once, after the 3rd epoch
    log_a = pd.read_csv(a.staged_training_tsv(0), sep="\t").drop(columns="time")
    log_b = pd.read_csv(b.staged_training_tsv(0), sep="\t").drop(columns="time")
    pd.testing.assert_frame_equal(log_a, log_b)
    assert not [c for c in log_a.columns if "lr" in c or "learning" in c]  # ClinicaDL's columns only


def test_the_schedules_enter_the_fingerprint_only_when_set():
    def train_slice(**settings) -> dict:
        return training_config(Model("m", Path("maps"), "d", train=Train(**settings)))["train"]

    assert not {"adaptive_learning_rate", "scheduler"} & set(train_slice())
    assert train_slice(adaptive_learning_rate=True)["adaptive_learning_rate"] is True
    assert train_slice(scheduler=Scheduler("StepLR", (("step_size", 2),)))["scheduler"]["name"] == "StepLR"
