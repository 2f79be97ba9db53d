"""The training step (forward, backward, optimizer step) of every 3D architecture of the registry on the
bench device, neuroexec's Trainer path against the plain eager loop, in the same run: one timed round
after one warm-up round each, ratios in the session's table (`x base`: eager time / Trainer time).

- Eager (baseline): `zero_grad; loss(net(x)).backward(); step` with Adam, the loss torch gives for the
  task (cross entropy, MSE) or the network's own (`training_loss`: the VAEs).
- neuroexec: `Trainer.train_epoch` over one in-memory batch: the same step plus what the Trainer adds
  per batch (autocast and the grad scaler when on, the running predictions and metrics it records for
  training.tsv, channels_last when `auto` picks it).

Size: the first of SIZES each network builds for (t1-linear at 2 mm, 84x104x90, where it can; some
networks take one size only), batch 2 on CPU: feasible on a few cores, large enough for the
convolutions to dominate. Full-size volumes only on a GPU: CVAE_3D, which builds for them only, needs
21 GB for one step of 2 on the CPU, and is skipped there. Not a test: nothing is asserted about times.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from neuroexec.context import RunContext
from neuroexec.nn.registry import REGISTRY, build_architecture
from neuroexec.progress import Reporter
from neuroexec.spec.model import Compute
from neuroexec.training.loop import Trainer
from neuroexec.training.setup import channels_last_for

SIZES = (
    (1, 84, 104, 90),
    (1, 80, 96, 80),
    (1, 73, 89, 73),
    (1, 64, 64, 64),
    (1, 128, 128, 128),
    (1, 169, 208, 179),
)
ARCHITECTURES = sorted(name for name, e in REGISTRY.items() if 3 in e.dims)


def task_of(name: str) -> str:
    return "reconstruction" if "reconstruction" in REGISTRY[name].tasks else "classification"


def first_size(name: str, sizes=SIZES) -> tuple[int, ...] | None:
    """The first of `sizes` the network builds for (built on the meta device: no weights allocated)."""
    task = task_of(name)
    for size in sizes:
        try:
            with torch.device("meta"):
                build_architecture(name, task, size, 2 if task == "classification" else None)
            return size
        except Exception:  # noqa: BLE001 - any refusal of the size: try the next
            continue
    return None


class InMemoryLoader(list):
    """A DataLoader's batches already in memory: the benchmark times the step, not the loading."""

    sampler = None
    dataset = None


def batch_of(images: torch.Tensor) -> dict:
    n = images.shape[0]
    return {
        "image": images,
        "label": torch.arange(n) % 2,
        "participant_id": [f"sub-{i}" for i in range(n)],
        "session_id": ["ses-M000"] * n,
        "mode_id": torch.zeros(n, dtype=torch.long),
    }


def eager_step(net: torch.nn.Module, opt: torch.optim.Optimizer, task: str, images, labels):
    opt.zero_grad(set_to_none=True)
    raw = net(images)
    own = getattr(net, "training_loss", None)
    if own is not None:
        loss = own(raw, images, None)[1]
    elif task == "classification":
        loss = F.cross_entropy(raw, labels)
    else:
        loss = F.mse_loss(raw, images)
    loss.backward()
    opt.step()


@pytest.fixture(scope="module", params=ARCHITECTURES)
def network(request, device, batch_size):
    """(name, task, untrained network on the device, a batch of images) for one architecture."""
    name = request.param
    sizes = SIZES if device.type == "cuda" else SIZES[:-1]  # full size: CVAE_3D's step needs 21 GB on CPU
    size = first_size(name, sizes)
    if size is None:
        pytest.skip(f"{name} builds for none of {sizes} (on CPU, full-size volumes are left out)")
    task = task_of(name)
    torch.manual_seed(0)
    net = build_architecture(name, task, size, 2 if task == "classification" else None, 0.0).to(device)
    images = torch.rand((batch_size, *size), generator=torch.Generator().manual_seed(0)).to(device)
    return name, task, net, images


def test_train_step_eager(run, benchmark, network, device):
    name, task, net, images = network
    net = copy.deepcopy(net).train()
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    labels = (torch.arange(images.shape[0]) % 2).to(device)
    benchmark.group = f"step {name} {'x'.join(map(str, images.shape[1:]))}"
    run(lambda: eager_step(net, opt, task, images, labels), "baseline", items=images.shape[0], rounds=1)


def test_train_step_neuroexec_trainer(run, benchmark, network, device):
    name, task, net, images = network
    net = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    compute = Compute(device=device.type, workers=0, batch_size=images.shape[0])
    compute = dataclasses.replace(compute, channels_last=channels_last_for(compute, images.shape[1:]))
    if compute.channels_last:  # as training/run.py does
        net = net.to(memory_format=torch.channels_last_3d)
    trainer = Trainer(net, opt, task, "image", compute, 1, RunContext(reporter=Reporter(quiet=True)))
    data = InMemoryLoader([batch_of(images)])
    benchmark.group = f"step {name} {'x'.join(map(str, images.shape[1:]))}"
    run(lambda: trainer.train_epoch(data, 0, "bench"), "neuroexec", items=images.shape[0], rounds=1)
