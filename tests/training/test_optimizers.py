"""train.optimizer: ClinicaDL's ten optimizers, each built as ClinicaDL builds it (torch.optim.<name> of
the parameters that require a gradient, lr = learning_rate, weight_decay = weight_decay, torch's other
defaults) and training one step; and through apply, the optimizer checkpoint names it."""

from __future__ import annotations

import pytest
import torch

from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.optim import make_optimizer
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.test_loop import Items, linear, trainer
from tests.training.training_specs import run_apply, write_spec

OPTIMIZERS = ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "SGD"]


def test_the_schema_offers_clinicadls_ten():
    import json

    from neuroexec.spec.load import SCHEMA_PATH

    schema = json.loads(SCHEMA_PATH.read_text())
    train = schema["properties"]["models"]["additionalProperties"]["properties"]["train"]
    assert train["properties"]["optimizer"]["enum"] == OPTIMIZERS


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_is_built_with_the_rate_and_decay_and_trains_one_step(name):
    net = linear()
    optimizer = make_optimizer(name, net.parameters(), 0.05, 0.01)
    assert type(optimizer) is getattr(torch.optim, name)
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["weight_decay"] == 0.01
    before = [p.detach().clone() for p in net.parameters()]
    t = trainer(net, optimizer, batch_size=4, accumulation=1)
    data = Items(4)
    _, steps = t.train_epoch(t.loader(data, t.sampler(data, shuffle=True)), 0, "epoch")
    assert steps == 1
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_only_parameters_that_require_a_gradient_are_optimised():
    net = linear()
    net[1].weight.requires_grad = False
    optimizer = make_optimizer("SGD", net.parameters(), 0.1, 0.0)
    assert [p for group in optimizer.param_groups for p in group["params"]] == [net[1].bias]
    frozen = net[1].weight.detach().clone()
    t = trainer(net, optimizer, batch_size=4, accumulation=1)
    data = Items(4)
    t.train_epoch(t.loader(data, t.sampler(data, shuffle=True)), 0, "epoch")
    assert torch.equal(net[1].weight, frozen)


def test_a_training_runs_with_the_spec_optimizer(tmp_path, monkeypatch):
    body = 'task = "classification"\ntrain = { epochs = 1, optimizer = "RAdam", learning_rate = 1e-3 }'
    path = write_spec(tmp_path, {"m": body}, subjects=8)
    monkeypatch.setenv(INTERRUPT_ENV, "0")  # stopped after its checkpoint: tmp/ keeps the optimizer's
    with pytest.raises(KeyboardInterrupt):
        run_apply(path)
    saved = load_checkpoint(MapsLayout(tmp_path / "maps/m").optimizer_checkpoint(0))
    assert saved["name"] == "RAdam"
    assert saved["optimizer"]["param_groups"][0]["lr"] == 1e-3
