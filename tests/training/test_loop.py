"""The Trainer's epoch: optimizer steps under gradient accumulation, and torch.compile on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.progress import Reporter
from neuroexec.spec.model import Compute
from neuroexec.training.loop import Trainer


class Items(torch.utils.data.Dataset):
    """In-memory regression items shaped like neuroexec's datasets."""

    def __init__(self, n: int):
        generator = torch.Generator().manual_seed(3)
        self.images = torch.randn(n, 1, 3, 3, 3, generator=generator)
        self.labels = self.images.flatten(1).sum(1)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {
            "image": self.images[i],
            "label": self.labels[i],
            "participant_id": f"sub-{i:02d}",
            "session_id": "ses-M000",
            "mode_id": 0,
        }


def linear() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(27, 1))


def trainer(net, optimizer, batch_size: int, accumulation: int, compile: bool = False) -> Trainer:
    compute = Compute(device="cpu", workers=0, batch_size=batch_size, seed=0, compile=compile)
    ctx = RunContext(reporter=Reporter(quiet=True))
    return Trainer(net, optimizer, "regression", "image", compute, accumulation, ctx)


def one_epoch(n: int, batch_size: int, accumulation: int, optimizer: str = "Adam", compile: bool = False):
    net = linear()
    opt = getattr(torch.optim, optimizer)(net.parameters(), lr=0.1)
    t = trainer(net, opt, batch_size, accumulation, compile)
    data = Items(n)
    loader = t.loader(data, t.sampler(data, shuffle=True))
    frame, steps = t.train_epoch(loader, 0, "epoch")
    return net, opt, steps, frame


@pytest.mark.parametrize("accumulation", [1, 2, 3, 4, 5])
def test_optimizer_steps_every_accumulation_steps_batches_and_at_the_end(accumulation):
    # 7 items in batches of 2: 4 batches; the optimizer steps after every `accumulation` batches and
    # once more for a trailing partial group.
    net, opt, steps, frame = one_epoch(7, 2, accumulation)
    expected = math.ceil(4 / accumulation)
    assert steps == expected
    for parameter in net.parameters():
        assert int(opt.state[parameter]["step"]) == expected  # Adam's own count
    assert len(frame) == 7  # the running predictions cover every item once


def test_accumulated_small_batches_make_the_update_of_one_large_batch():
    # No batch norm, SGD: 2 accumulated batches of 2 = one batch of 4 (the loss is divided by 2).
    accumulated, _, steps_a, _ = one_epoch(4, 2, 2, "SGD")
    single, _, steps_b, _ = one_epoch(4, 4, 1, "SGD")
    assert steps_a == steps_b == 1
    for a, b in zip(accumulated.parameters(), single.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(single[1].weight, linear()[1].weight)  # it did move


def test_compile_on_the_cpu_trains_like_eager():
    """compute.compile = true on the CPU: inductor builds C++ with the machine's compiler (~15 s
    cold, a second or two with inductor's on-disk cache)."""
    torch._dynamo.reset()
    compiled, _, steps, _ = one_epoch(8, 4, 1, "SGD", compile=True)
    eager, _, eager_steps, _ = one_epoch(8, 4, 1, "SGD")
    torch._dynamo.reset()
    assert steps == eager_steps == 2
    for a, b in zip(compiled.parameters(), eager.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
