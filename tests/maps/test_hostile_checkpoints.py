"""Checkpoints built to run code when unpickled: each is refused, named as such with what it asks for,
and the payload never runs (it would create a marker file)."""

from __future__ import annotations

import builtins
import os
import pickle
import textwrap

import pytest
import torch

from neuroexec.errors import InputError, UnsafeCheckpointError
from neuroexec.maps.checkpoints import load_checkpoint, load_model_state
from neuroexec.nn.networks import build_network

TORCH_ADVICE = [
    "will likely succeed",
    "Weights only load failed",
    "add_safe_globals",
    "safe_globals(",
    "trusted source",
]


class Reduces:
    """Unpickles as `function(argument)`: the classic hostile checkpoint."""

    def __init__(self, function, argument: str):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def _payload(kind: str, marker) -> tuple[Reduces, str]:
    """A payload that would create `marker`, and the name of the global it asks for."""
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": (Reduces(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
        "builtins.exec": (Reduces(builtins.exec, code), "builtins.exec"),
        "builtins.eval": (Reduces(builtins.eval, code), "builtins.eval"),
    }[kind]


def _write(path, content, file_format: str) -> None:
    if file_format == "zip":
        torch.save(content, path)
    elif file_format == "legacy":
        torch.save(content, path, _use_new_zipfile_serialization=False)
    else:  # a raw pickle, not a torch file at all
        with open(path, "wb") as f:
            pickle.dump(content, f, protocol=int(file_format[-1]))


def _assert_safe_wording(message: str) -> None:
    for advice in TORCH_ADVICE:
        assert advice not in message
    for line in message.splitlines():
        if "weights_only=False" in line or "pickle.load(" in line:
            assert "only for a file you trust" in line  # the conversion step, never a suggestion


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("file_format", ["zip", "legacy", "raw pickle 2", "raw pickle 4"])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval"])
def test_a_hostile_checkpoint_is_refused_naming_what_it_asks_for(tmp_path, kind, file_format):
    marker = tmp_path / "ran"
    payload, asked = _payload(kind, marker)
    path = tmp_path / "model.pth.tar"
    state = build_network("TinyCNN", (1, 12, 12, 12), 2).state_dict()
    _write(path, {"model": state, "epoch": 1, "name": payload}, file_format)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_model_state(path)
    message = str(error.value)
    assert message.startswith(f"{path}: refused: ")
    assert asked in message and "can run code" in message and "If you trust this file" in message
    assert ("raw pickle file" in message) == file_format.startswith("raw")
    _assert_safe_wording(message)
    assert not marker.exists()


def test_every_object_asked_for_is_named(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "model.pth.tar"
    torch.save({"a": _payload("os.system", marker)[0], "b": _payload("builtins.eval", marker)[0]}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"objects posix\.system \(os\.system\), builtins\.eval"):
        load_checkpoint(path)
    assert not marker.exists()


class Opaque:
    """A harmless custom object, as a trusted but old-fashioned checkpoint would hold."""

    def __init__(self, value):
        self.value = value


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("file_format", ["legacy", "raw pickle 4"])
def test_the_conversion_recipe_works_for_legacy_and_raw_pickle_files(tmp_path, file_format):
    net = build_network("TinyCNN", (1, 12, 12, 12), 2)
    path = tmp_path / "model.pth.tar"
    _write(path, {"model": net.state_dict(), "epoch": 5, "name": Opaque("TinyCNN")}, file_format)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_model_state(path)
    code = str(error.value).split("convert it once into tensors and numbers with:\n", 1)[1]
    exec(textwrap.dedent(code), {})  # what the user is told to run on a file they trust
    state, epoch, _ = load_model_state(path)
    assert epoch == 5 and all(torch.equal(state[k], v) for k, v in net.state_dict().items())


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_pickle_torch_cannot_read_is_corrupt_not_hostile_and_torchs_advice_is_not_repeated(tmp_path):
    path = tmp_path / "model.pth.tar"
    path.write_bytes(pickle.dumps({"epoch": 3}, protocol=4))  # no object asked for, but not torch's format
    with pytest.raises(InputError) as error:
        load_checkpoint(path)
    assert not isinstance(error.value, UnsafeCheckpointError)
    assert "not a readable checkpoint" in str(error.value) and "weights_only" not in str(error.value)
    _assert_safe_wording(str(error.value))
