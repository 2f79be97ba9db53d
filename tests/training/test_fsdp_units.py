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


# --- what validate and apply say (spec/training_checks.py)


def fsdp_spec(tmp_path, compute: str = "", extra: str = ""):
    from tests.training.training_specs import write_spec

    tmp_path.mkdir(exist_ok=True)
    body = f'task = "classification"\ntrain = {{ epochs = 1 }}\n{extra}\n'
    return write_spec(tmp_path, {"m": body + f"compute = {{ fully_sharded_data_parallel = true{compute} }}"})


def said(path) -> str:
    from neuroexec.errors import SpecError
    from neuroexec.spec import load_spec

    with pytest.raises(SpecError) as err:
        load_spec(path)
    return str(err.value)


def test_a_clash_names_only_the_option_that_clashes_and_why(tmp_path):
    compile_only = said(fsdp_spec(tmp_path / "c", ", compile = true"))
    assert "compile = true" in compile_only and "channels_last" not in compile_only
    assert "use_orig_params" in compile_only and "flat parameters" not in compile_only
    layout = said(fsdp_spec(tmp_path / "l", ", channels_last = true"))
    assert "contiguous view" in layout and "compile" not in layout
    multi = said(
        fsdp_spec(
            tmp_path / "n", extra='mode = "patch"\npatch = { size = 8, stride = 8 }\nmulti_network = true'
        )
    )
    assert "unshard" in multi


def test_apply_finds_a_training_by_its_steps_kind(tmp_path, monkeypatch):
    from neuroexec.errors import DeviceError
    from neuroexec.spec import load_spec
    from neuroexec.spec.training_checks import refuse_absent_gpu

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    spec = load_spec(fsdp_spec(tmp_path))
    compute = spec.models["m"].compute
    refuse_absent_gpu(spec, [("model.m.x.train-like", compute, "predict")])  # not a training
    with pytest.raises(DeviceError, match="model.m.fit trains with fully_sharded") as err:
        refuse_absent_gpu(spec, [("model.m.fit", compute, "train")])
    assert "-m neuroexec apply SPEC" in str(err.value) and "-fsdp" not in str(err.value)


def test_a_vaes_validation_losses_under_fsdp_are_the_plain_networks(group):
    """Trainer.evaluate's path under FSDP: the VAE's evaluation_losses (outside forward, it encodes
    again) runs through its submodules, each an FSDP unit that gathers its own weights; a network
    holding a parameter of its own (left a shard there) is refused."""
    from neuroexec.errors import InputError
    from tests.nn.test_vae import build

    torch.manual_seed(0)
    net = build("VanillaDenseVAE", (1, 16, 20)).eval()
    x = torch.rand(3, 1, 16, 20)
    with torch.no_grad():
        expected = net.evaluation_losses(x, net(x), "VAEBernoulliLoss")
        root = distributed.fsdp_wrap(copy.deepcopy(net), torch.device("cpu"), None).eval()
        torch.testing.assert_close(root.evaluation_losses(x, root(x), "VAEBernoulliLoss"), expected)
    net.scale = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(InputError, match="fully_sharded_data_parallel.*parameters of its own"):
        distributed.fsdp_wrap(net, torch.device("cpu"), None)


def test_no_autocast_under_fsdp_its_mixed_precision_casts(group):
    """With amp on a GPU (settings faked: no GPU here), a DDP/one-process training autocasts; an FSDP
    one does not (MixedPrecision, built in the same resolved type, casts), as ClinicaDL's."""
    import contextlib
    import dataclasses

    torch.manual_seed(0)
    net = build_network("TinyCNN", SIZE, 2)
    gpu_amp = {"amp": True, "device": torch.device("cuda", 0), "amp_dtype": torch.float16}
    alone, sharded = trainer(copy.deepcopy(net)), trainer(copy.deepcopy(net), fsdp=True)
    for t in (alone, sharded):
        t.settings = dataclasses.replace(t.settings, **gpu_amp)
    assert isinstance(alone.autocast(), torch.autocast)
    assert isinstance(sharded.autocast(), contextlib.nullcontext)


def test_fsdps_name_keyed_optimizer_state_resumes_without_fsdp(group):
    """The other way (an FSDP run resumed by a DDP or one-process one): torch's Optimizer.load_state_dict
    maps the saved groups' parameters (names) to its own by order, which is the network's."""
    torch.manual_seed(0)
    net = build_network("TinyCNN", SIZE, 2)
    plain = copy.deepcopy(net)
    t = trainer(copy.deepcopy(net), fsdp=True)
    t.sharded(torch.randn(2, *SIZE)).sum().backward()
    t.optimizer.step()
    t.gather()
    saved = t.optimizer_state_dict()
    optimizer = torch.optim.Adam(plain.parameters())
    optimizer.load_state_dict(saved)
    for name, p in plain.named_parameters():
        assert torch.equal(optimizer.state[p]["exp_avg"], saved["state"][name]["exp_avg"]), name


def test_rank_0s_weights_are_broadcast_at_the_wrap_on_a_gpu(monkeypatch):
    """sync_module_states (DDP's broadcast of rank 0's weights) on CUDA, where FSDP has it; the
    arguments FSDP is built with, captured (no GPU here)."""
    import torch.distributed.fsdp as fsdp

    built = []
    monkeypatch.setattr(fsdp, "FullyShardedDataParallel", lambda net, **kwargs: built.append(kwargs))
    distributed.fsdp_wrap(torch.nn.Linear(2, 1), torch.device("cuda", 0), torch.bfloat16)
    distributed.fsdp_wrap(torch.nn.Linear(2, 1), torch.device("cpu"), None)
    gpu, cpu = built
    assert gpu["sync_module_states"] is True and cpu["sync_module_states"] is False
    assert gpu["mixed_precision"].param_dtype == torch.bfloat16  # the resolved amp type, whichever
