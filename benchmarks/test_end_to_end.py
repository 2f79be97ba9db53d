"""End-to-end throughput of the two hot steps, eager vs neuroexec's path, in the same run:

- training: images/s of Conv5_FC3 on full-size 169x208x179 volumes. Eager = the plain fp32 loop users
  write (and ClinicaDL runs); neuroexec = its Trainer with the fast path of the bench device
  (channels_last_3d; on GPU also amp; torch.compile when NEUROEXEC_BENCH_COMPILE=1).
- interpret: saliency maps/s of a group. Eager = per-image gradients and a per-image Python
  accumulation of sum and sum of squares (ClinicaDL's way); Captum's Saliency (per-image loop of the
  library, when installed); neuroexec = batched gradients + ops.saliency_accumulate.

Batch 8 on GPU, 2 on CPU (a Conv5_FC3 training step of 2 full-size images takes seconds on 2 cores).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from neuroexec import ops
from neuroexec.context import RunContext
from neuroexec.inference.saliency import gradients
from neuroexec.nn.networks import build_network
from neuroexec.progress import Reporter
from neuroexec.spec.model import Compute
from neuroexec.training.loop import Trainer

SHAPE = (1, 169, 208, 179)


@pytest.fixture(scope="module")
def images(batch_size, device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand((batch_size, *SHAPE), generator=g).to(device)


def network(device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("Conv5_FC3", SHAPE, 2).to(device)
    return net.to(memory_format=torch.channels_last_3d) if channels_last else net


class InMemoryLoader(list):
    """The batches of a DataLoader already in memory: the benchmark times the step, not the loading."""

    sampler = None


def batches(images: torch.Tensor) -> InMemoryLoader:
    labels = torch.arange(images.shape[0], device=images.device) % 2
    rows = [
        {"participant_id": f"sub-{i}", "session_id": "ses-M000", "mode_id": 0} for i in range(len(images))
    ]
    return InMemoryLoader(
        [
            {
                "image": images,
                "label": labels,
                "participant_id": [r["participant_id"] for r in rows],
                "session_id": [r["session_id"] for r in rows],
                "mode_id": torch.zeros(len(rows), dtype=torch.long),
            }
        ]
    )


@pytest.mark.benchmark(group="train_throughput")
def test_train_eager_fp32_loop(run, images, device):
    net = network(device)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    labels = torch.arange(images.shape[0], device=device) % 2

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(images), labels).backward()
        opt.step()

    run(step, "baseline", items=images.shape[0], rounds=2)


@pytest.mark.benchmark(group="train_throughput")
def test_train_neuroexec_trainer(run, images, device):
    cuda = device.type == "cuda"
    compute = Compute(device=device.type, amp=cuda, channels_last=True, batch_size=images.shape[0], workers=0,
                      compile=os.environ.get("NEUROEXEC_BENCH_COMPILE") == "1")  # fmt: skip
    net = network(device, channels_last=True)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    ctx = RunContext(reporter=Reporter(quiet=True))
    trainer = Trainer(net, opt, "classification", "image", device, compute, 1, ctx)
    data = batches(images)
    run(lambda: trainer.train_epoch(data, 0, "bench"), "neuroexec", items=images.shape[0], rounds=2)


def _eager_interpret(net, images):
    total = torch.zeros(SHAPE, device=images.device)
    total_sq = torch.zeros(SHAPE, device=images.device)
    for i in range(images.shape[0]):  # one image at a time, as ClinicaDL does
        x = images[i : i + 1].detach().requires_grad_(True)
        net(x)[0, 1].backward()
        g = x.grad[0].abs()
        total += g
        total_sq += g * g
    return total, total_sq


@pytest.mark.benchmark(group="interpret_throughput")
def test_interpret_eager_per_image(run, images, device):
    net = network(device).eval()
    run(lambda: _eager_interpret(net, images), "baseline", items=images.shape[0], rounds=2)


@pytest.mark.benchmark(group="interpret_throughput")
def test_interpret_captum_saliency(run, images, device):
    captum = pytest.importorskip("captum.attr")
    net = network(device).eval()
    saliency = captum.Saliency(net)

    def attribute():
        return saliency.attribute(images, target=1, abs=True)

    run(attribute, "peer", items=images.shape[0], rounds=2)


@pytest.mark.benchmark(group="interpret_throughput")
def test_interpret_neuroexec_batched(run, images, device):
    net = network(device, channels_last=True).eval()
    x = images.contiguous(memory_format=torch.channels_last_3d)

    def interpret():
        state = ops.SaliencyState.empty(SHAPE, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            grads, _ = gradients(net, x, 1)
        ops.saliency_accumulate(grads.contiguous(), state)
        return state

    run(interpret, "neuroexec", items=images.shape[0], rounds=2)
