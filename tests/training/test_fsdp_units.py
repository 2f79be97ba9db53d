"""FSDP's pieces (neuroexec/distributed.py, training/loop.py) in one process: a one-process gloo group
in-process, so no torchrun launch (tests/training/test_fsdp.py has those)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist

from neuroexec import distributed
from neuroexec.nn import build_network

SIZE = (1, 21, 26, 22)


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """A one-process gloo process group for the module's tests."""
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def stepped(net: torch.nn.Module) -> torch.optim.Optimizer:
    """An Adam optimizer of `net` after two steps on random data (its state: step, exp_avg, ...)."""
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    for seed in range(2):
        images = torch.randn(2, *SIZE, generator=torch.Generator().manual_seed(seed))
        net(images).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return optimizer


def test_an_id_keyed_optimizer_state_loads_into_fsdp(group):
    """A DDP or one-process run's optimizer.pth.tar (keyed by parameter ids) resumed under FSDP: keyed
    by the parameters' names first; FSDP's gathered state then holds the same values."""
    torch.manual_seed(0)
    net = build_network("TinyCNN", SIZE, 2)
    twin = copy.deepcopy(net)
    saved = stepped(net).state_dict()
    assert isinstance(next(iter(saved["state"])), int)
    root = distributed.fsdp_wrap(twin, torch.device("cpu"), None)
    optimizer = torch.optim.Adam([p for p in root.parameters() if p.requires_grad], lr=1e-3)
    distributed.fsdp_load_full_state(root, optimizer, net.state_dict(), saved)
    model, gathered = distributed.fsdp_full_state(root, optimizer)
    names = [name for name, p in net.named_parameters() if p.requires_grad]
    assert sorted(gathered["state"]) == sorted(names)
    for i, name in enumerate(names):
        for field, value in saved["state"][i].items():
            assert torch.equal(gathered["state"][name][field], value), (name, field)
    assert all(torch.equal(model[k], v) for k, v in net.state_dict().items())


def trainer(net: torch.nn.Module, fsdp: bool = False):
    """A Trainer of `net` (on the CPU), under FSDP in the one-process group with `fsdp`."""
    from neuroexec.context import RunContext
    from neuroexec.progress import Reporter
    from neuroexec.spec.model import Compute
    from neuroexec.training.loop import Trainer

    plain = copy.deepcopy(net) if fsdp else None
    sharded = distributed.fsdp_wrap(net, torch.device("cpu"), None) if fsdp else None
    params = [p for p in (sharded or net).parameters() if p.requires_grad]
    ctx = RunContext(reporter=Reporter(quiet=True))
    return Trainer(net, torch.optim.Adam(params), "classification", "image", Compute(device="cpu"), 1, ctx,
                   sharded=sharded, plain=plain)  # fmt: skip


def test_the_trainers_optimizer_state_is_the_gathered_one_under_fsdp_and_then_released(group):
    """optimizer_state_dict(): torch's (id-keyed) without FSDP; under FSDP the gathered full one, keyed by
    names, which `release` drops; `unshard` leaves the plain network and no optimizer state."""
    torch.manual_seed(0)
    net = build_network("TinyCNN", SIZE, 2)
    alone = trainer(copy.deepcopy(net))
    alone.net(torch.randn(2, *SIZE)).sum().backward()
    alone.optimizer.step()
    assert alone.optimizer_state_dict()["state"].keys() == alone.optimizer.state_dict()["state"].keys()
    assert isinstance(next(iter(alone.optimizer_state_dict()["state"])), int)
    t = trainer(copy.deepcopy(net), fsdp=True)
    t.sharded(torch.randn(2, *SIZE)).sum().backward()
    t.optimizer.step()
    with pytest.raises(AssertionError, match="gather"):
        t.optimizer_state_dict()
    t.gather()
    state = t.optimizer_state_dict()
    assert set(state["state"]) == {name for name, _ in net.named_parameters()}
    t.release()
    assert t.gathered is None
    t.unshard()
    assert t.sharded is None and t.net is t.plain and t.forward is t.net and not t.optimizer.state
