from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch

from neuroexec.errors import InputError, UnsafeCheckpointError
from neuroexec.maps.checkpoints import load_checkpoint, load_model_state, save_model, save_optimizer
from neuroexec.nn.networks import build_network

SIDE_EFFECTS: list[str] = []


class Payload:
    """Records in SIDE_EFFECTS when it is unpickled: what a malicious checkpoint could do."""

    def __setstate__(self, state):
        SIDE_EFFECTS.append("unpickled")


def _net():
    torch.manual_seed(0)
    return build_network("TinyCNN", (1, 12, 12, 12), 2)


def test_model_roundtrip_keeps_tensors_epoch_and_name(tmp_path):
    net = _net()
    path = tmp_path / "split-0" / "best-loss" / "model.pth.tar"
    save_model(path, net.state_dict(), epoch=4, name="TinyCNN")
    raw = torch.load(path, weights_only=True)  # readable by anyone, without our code
    assert set(raw) == {"model", "epoch", "name"} and raw["epoch"] == 4 and raw["name"] == "TinyCNN"
    state, epoch, name = load_model_state(path)
    assert (epoch, name) == (4, "TinyCNN")
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert not list(tmp_path.rglob("*.tmp"))


def test_saved_tensors_do_not_drag_a_bigger_storage(tmp_path):
    batch = torch.randn(64, 1000)
    save_model(tmp_path / "m.pth.tar", {"w": batch[3]}, epoch=0, name="x")
    loaded = load_checkpoint(tmp_path / "m.pth.tar")["model"]["w"]
    assert torch.equal(loaded, batch[3])
    assert loaded.untyped_storage().nbytes() == 1000 * 4
    assert (tmp_path / "m.pth.tar").stat().st_size < 64 * 1000 * 4 / 8


def test_optimizer_roundtrip_restores_adam_state(tmp_path):
    net = _net()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(2, 1, 12, 12, 12)).sum().backward()
    optimizer.step()
    save_optimizer(tmp_path / "optimizer.pth.tar", optimizer.state_dict(), epoch=2, name="Adam")
    checkpoint = load_checkpoint(tmp_path / "optimizer.pth.tar")
    assert checkpoint["epoch"] == 2 and checkpoint["name"] == "Adam"
    restored = torch.optim.Adam(net.parameters(), lr=1.0)
    restored.load_state_dict(checkpoint["optimizer"])
    assert restored.param_groups[0]["lr"] == 1e-3
    original, loaded = optimizer.state_dict()["state"][0], restored.state_dict()["state"][0]
    assert torch.equal(original["exp_avg"], loaded["exp_avg"])


def test_a_pickled_custom_object_is_refused_without_being_unpickled(tmp_path):
    path = tmp_path / "model.pth.tar"
    torch.save({"model": _net().state_dict(), "epoch": 1, "extra": Payload()}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_model_state(path)
    message = str(error.value)
    assert str(path) in message and "run code" in message
    assert f"refused: loading it needs the Python object {Payload.__module__}.Payload," in message
    assert "weights_only=False" in message and "torch.save" in message
    assert SIDE_EFFECTS == []


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_corrupt_or_truncated_files_are_input_errors_naming_the_file(tmp_path, content):
    path = tmp_path / "model.pth.tar"
    if content == "truncated":
        save_model(path, _net().state_dict(), 0, "TinyCNN")
        content = path.read_bytes()[:500]
    path.write_bytes(content)
    with pytest.raises(InputError) as error:
        load_checkpoint(path)
    assert not isinstance(error.value, UnsafeCheckpointError)
    assert str(path) in str(error.value)


def test_truncated_legacy_format_is_an_input_error(tmp_path):
    path = tmp_path / "model_best.pth.tar"
    torch.save({"model": _net().state_dict()}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError) as error:
        load_checkpoint(path)
    assert not isinstance(error.value, UnsafeCheckpointError)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found") as error:
        load_checkpoint(tmp_path / "nope.pth.tar")
    assert "nope.pth.tar" in str(error.value)


def test_older_generation_model_best_with_numpy_scalars_loads(tmp_path):
    net = _net()
    path = tmp_path / "models" / "best_loss" / "model_best.pth.tar"
    path.parent.mkdir(parents=True)
    legacy = {
        "model": net.state_dict(),
        "epoch": 12,
        "valid_loss": np.float64(0.31),
        "valid_acc": np.float32(0.8),
    }
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    state, epoch, name = load_model_state(path)
    assert epoch == 12 and name is None
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert float(load_checkpoint(path)["valid_loss"]) == pytest.approx(0.31)


def test_ddp_prefix_and_bare_state_dicts(tmp_path):
    net = _net()
    path = tmp_path / "bare.pt"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, path)
    state, epoch, name = load_model_state(path)
    assert (epoch, name) == (None, None)
    assert state.keys() == net.state_dict().keys()


def test_a_checkpoint_without_weights_names_its_keys(tmp_path):
    path = tmp_path / "odd.pth.tar"
    torch.save({"epoch": 3, "iteration": 5}, path)
    with pytest.raises(InputError, match="epoch, iteration"):
        load_model_state(path)


class Opaque:
    """A harmless custom object: what a checkpoint pickled with extra Python objects holds."""

    def __init__(self, value):
        self.value = value


@pytest.mark.parametrize("kind", ["custom name", "whole module", "module under 'model'"])
def test_the_refusal_explains_a_conversion_that_works(tmp_path, kind):
    """Following the message's instructions literally turns the refused file into a safe checkpoint."""
    net = _net()
    path = tmp_path / "model.pth.tar"
    content = {
        "custom name": {"model": net.state_dict(), "epoch": np.int64(3), "name": Opaque("TinyCNN")},
        "whole module": net,
        "module under 'model'": {"model": net, "epoch": 3},
    }[kind]
    torch.save(content, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_model_state(path)
    message = str(error.value)
    assert "can run code" in message and "If you trust this file" in message
    code = message.split("convert it once into tensors and numbers with:\n", 1)[1]
    exec(textwrap.dedent(code), {})  # what the user is told to run
    state, epoch, _ = load_model_state(path)
    assert epoch == (0 if kind == "whole module" else 3)
    assert state.keys() == net.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.parametrize(
    "junk", [b"truncated", b"cut short", b"", b"\x80\x02", b"PK\x03\x04garbage", b"junk"]
)
def test_a_file_of_junk_bytes_is_a_damaged_checkpoint_not_a_traceback_nor_a_hostile_one(tmp_path, junk):
    from neuroexec.data.datasets import load_tensor

    path = tmp_path / "model.pth.tar"
    path.write_bytes(junk)
    with pytest.raises(InputError, match="corrupt or truncated") as caught:
        load_checkpoint(path)
    assert not isinstance(caught.value, UnsafeCheckpointError)
    assert str(path) in str(caught.value)
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_tensor(path)
