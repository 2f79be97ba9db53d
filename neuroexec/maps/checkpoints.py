"""Checkpoints (`model.pth.tar`, `optimizer.pth.tar`): written atomically, read with
`torch.load(..., weights_only=True)` only, so opening a checkpoint can never run code.

    model.pth.tar      {"model": state_dict, "epoch": int, "name": architecture}
    optimizer.pth.tar  {"optimizer": state_dict, "epoch": int, "name": "Adam"}

Reading also accepts the older generation's `model_best.pth.tar` ({"model", "epoch",
"valid_loss", "valid_acc", ...}, whose numbers may be numpy scalars) and bare state dicts.
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroexec.atomic import save_torch
from neuroexec.errors import InputError, UnsafeCheckpointError, first_line


def _to_cpu_copies(obj: Any) -> Any:
    """Tensors detached, on CPU and cloned (so a view never drags a bigger storage into the file)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").clone()
    if isinstance(obj, dict):
        return {key: _to_cpu_copies(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu_copies(value) for value in obj)
    return obj


def save_model(path: str | Path, state_dict: dict[str, torch.Tensor], epoch: int, name: str) -> None:
    """Write `{"model": state_dict, "epoch": epoch, "name": name}` atomically.

    >>> save_model(maps / "split-0/best-loss/model.pth.tar", net.state_dict(), 3, "Conv5_FC3")
    """
    save_torch(path, {"model": _to_cpu_copies(dict(state_dict)), "epoch": int(epoch), "name": str(name)})


def save_optimizer(path: str | Path, state_dict: dict[str, Any], epoch: int, name: str) -> None:
    """Write `{"optimizer": state_dict, "epoch": epoch, "name": name}` atomically.

    >>> save_optimizer(maps / "split-0/tmp/optimizer.pth.tar", optimizer.state_dict(), 3, "Adam")
    """
    save_torch(path, {"optimizer": _to_cpu_copies(state_dict), "epoch": int(epoch), "name": str(name)})


def _numpy_scalar_globals() -> list[Any]:
    """The few numpy globals a pickled numpy scalar needs (old checkpoints stored valid_acc that way).
    They rebuild a number from raw bytes and a dtype; nothing else is allowed."""
    core = getattr(np, "_core", None) or np.core
    kinds = [np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_]
    return [core.multiarray.scalar, np.dtype, *(type(np.dtype(kind)) for kind in kinds)]


_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_FIX = (
    "If you trust this file, keep a copy of it, then convert it once into tensors and numbers with:\n"
    "    import torch\n"
    "    ckpt = torch.load({path}, map_location='cpu', weights_only=False)  # runs the file's code\n"
    "    ckpt = ckpt if isinstance(ckpt, dict) else {{'model': ckpt}}\n"
    "    model = ckpt.get('model', ckpt.get('state_dict', ckpt))\n"
    "    model = model.state_dict() if isinstance(model, torch.nn.Module) else model\n"
    "    weights = {{k: v for k, v in model.items() if isinstance(v, torch.Tensor)}}\n"
    "    torch.save({{'model': weights, 'epoch': int(ckpt.get('epoch', 0)), 'name': str(ckpt.get('name', ''))}},\n"
    "               {path})"
)


def _refers_to_existing(name: str) -> bool:
    """Whether an already-imported module defines `name` (a truncated file names a cut-off global);
    names in modules not imported yet are assumed to exist, since importing them could run code."""
    module, _, attribute = name.rpartition(".")
    if module not in sys.modules:
        return True
    return hasattr(sys.modules[module], attribute)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; refuse (UnsafeCheckpointError) one that would need
    arbitrary unpickling, and report a missing, truncated or corrupt file as an InputError.

    >>> load_checkpoint(maps / "split-0/best-loss/model.pth.tar")["epoch"]
    3
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    try:
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as first:
            if "numpy" not in str(first):
                raise
            with torch.serialization.safe_globals(_numpy_scalar_globals()):
                checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        match = _GLOBAL.search(str(error))
        if match and _refers_to_existing(match.group(1)):
            raise UnsafeCheckpointError(
                path,
                f"refused: loading it needs the Python object {match.group(1)}, and unpickling arbitrary "
                "objects can run code. Checkpoints written by neuroexec or ClinicaDL hold only tensors and "
                "numbers.\n" + _FIX.format(path=repr(str(path))),
            ) from None
        raise InputError(
            path, f"not a readable checkpoint (corrupt or truncated?): {first_line(error)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        raise InputError(
            path, f"not a readable checkpoint (corrupt or truncated?): {first_line(error)}"
        ) from None
    if not isinstance(checkpoint, dict):
        raise InputError(path, f"expected a checkpoint dictionary, found {type(checkpoint).__name__}")
    return checkpoint


def _plain_number(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_model_state(path: str | Path) -> tuple[dict[str, torch.Tensor], int | None, str | None]:
    """(state_dict, epoch, architecture name) of a model checkpoint of either generation or of a bare
    state dict; a DistributedDataParallel `module.` prefix is removed.

    >>> state, epoch, name = load_model_state(maps / "split-0/best-loss/model.pth.tar")
    """
    checkpoint = load_checkpoint(path)
    if isinstance(checkpoint.get("model"), dict):
        state, epoch, name = checkpoint["model"], checkpoint.get("epoch"), checkpoint.get("name")
    elif isinstance(checkpoint.get("state_dict"), dict):
        state, epoch, name = checkpoint["state_dict"], checkpoint.get("epoch"), checkpoint.get("name")
    elif checkpoint and all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        state, epoch, name = checkpoint, None, None
    else:
        keys = ", ".join(sorted(map(str, checkpoint))) or "none"
        raise InputError(
            path, f"no model weights: expected a 'model' state dict or a bare state dict, keys: {keys}"
        )
    bad = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise InputError(path, f"model state holds non-tensor entries: {', '.join(bad[:5])}")
    if state and all(str(key).startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    epoch = _plain_number(epoch)
    return dict(state), (int(epoch) if epoch is not None else None), (str(name) if name is not None else None)
