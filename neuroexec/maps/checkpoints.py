"""Checkpoints (`model.pth.tar`, `optimizer.pth.tar`): written atomically, read with
`torch.load(..., weights_only=True)` only, so opening a checkpoint can never run code.

    model.pth.tar      {"model": state_dict, "epoch": int, "name": architecture}
    optimizer.pth.tar  {"optimizer": state_dict, "epoch": int, "name": "Adam"}

Reading also accepts the older generation's `model_best.pth.tar` ({"model", "epoch",
"valid_loss", "valid_acc", ...}, whose numbers may be numpy scalars) and bare state dicts.
"""

from __future__ import annotations

import _compat_pickle
import importlib.util
import io
import pickle
import pickletools
import re
import struct
import sys
import zipfile
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

    >>> save_model(Path("maps/split-0/best-loss/model.pth.tar"), torch.nn.Linear(2, 1).state_dict(), 3, "Linear")
    >>> load_checkpoint(Path("maps/split-0/best-loss/model.pth.tar"))["name"]
    'Linear'
    """
    save_torch(path, {"model": _to_cpu_copies(dict(state_dict)), "epoch": int(epoch), "name": str(name)})


def save_optimizer(path: str | Path, state_dict: dict[str, Any], epoch: int, name: str) -> None:
    """Write `{"optimizer": state_dict, "epoch": epoch, "name": name}` atomically.

    >>> optimizer = torch.optim.Adam(torch.nn.Linear(2, 1).parameters())
    >>> save_optimizer(Path("maps/split-0/tmp/optimizer.pth.tar"), optimizer.state_dict(), 3, "Adam")
    >>> sorted(load_checkpoint(Path("maps/split-0/tmp/optimizer.pth.tar")))
    ['epoch', 'name', 'optimizer']
    """
    save_torch(path, {"optimizer": _to_cpu_copies(state_dict), "epoch": int(epoch), "name": str(name)})


def _numpy_scalar_globals() -> list[Any]:
    """The few numpy globals a pickled numpy scalar needs (old checkpoints stored valid_acc that way).
    They rebuild a number from raw bytes and a dtype; nothing else is allowed."""
    core = getattr(np, "_core", None) or np.core
    kinds = [np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_]
    return [core.multiarray.scalar, np.dtype, *(type(np.dtype(kind)) for kind in kinds)]


_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")  # torch's wordings
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch.save's pre-1.6 (non-zip) format
_LOADERS = {
    "torch": "torch.load({path}, map_location='cpu', weights_only=False)",
    "pickle": "pickle.load(open({path}, 'rb'))",
}
_FIX = (
    "If you trust this file, keep a copy of it, then convert it once into tensors and numbers with:\n"
    "    import pickle, torch\n"
    "    ckpt = {load}  # runs the file's code: only for a file you trust\n"
    "    ckpt = ckpt if isinstance(ckpt, dict) else {{'model': ckpt}}\n"
    "    model = ckpt.get('model', ckpt.get('state_dict', ckpt))\n"
    "    model = model.state_dict() if isinstance(model, torch.nn.Module) else model\n"
    "    weights = {{k: v for k, v in model.items() if isinstance(v, torch.Tensor)}}\n"
    "    torch.save({{'model': weights, 'epoch': int(ckpt.get('epoch', 0)), 'name': str(ckpt.get('name', ''))}},\n"
    "               {path})"
)
_STRINGS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_NO_PUSH = {"PROTO", "FRAME", "MARK", "STOP"}


def _global_name(module: str, name: str) -> str:
    """`module.name` as Python 3 spells it (protocol-2 pickles say `__builtin__ exec` for builtins.exec)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def _pickle_globals(stream: io.BufferedIOBase) -> tuple[list[str], bool]:
    """The globals one pickle asks for, and whether it is torch's legacy magic number. pickletools
    decodes the instructions without running any; a global built by STACK_GLOBAL (protocol 4) takes
    the last two strings pushed, directly or from the memo."""
    found: list[str] = []
    pushed: list[object] = []
    memo: dict[int, object] = {}
    magic = False
    for op, arg, _ in pickletools.genops(stream):
        top = pushed[-1] if pushed else None
        if op.name == "GLOBAL":
            found.append(_global_name(*str(arg).split(" ", 1)))
            pushed.append(None)
        elif op.name == "STACK_GLOBAL":
            module, name = ([None, None] + pushed)[-2:]
            if isinstance(module, str) and isinstance(name, str):
                found.append(_global_name(module, name))
            pushed.append(None)
        elif op.name in _STRINGS:
            pushed.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif op.name == "MEMOIZE":
            memo[len(memo)] = top
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = top
        elif op.name not in _NO_PUSH:
            magic = magic or arg == _LEGACY_MAGIC
            pushed.append(None)
        del pushed[:-2]
    return found, magic


def _asked_for(path: Path) -> tuple[list[str], str]:
    """Every global the checkpoint's pickles name (zip: data.pkl; otherwise the pickles at the start of
    the file, torch's legacy format or a raw pickle), and the loader that reads such a file: "torch" or
    "pickle". Reading stops quietly where the data stops being a pickle (truncated or corrupt)."""
    found: list[str] = []
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
                stream = io.BytesIO(archive.read(pickles[0])) if pickles else io.BytesIO()
        except (OSError, zipfile.BadZipFile, ValueError):
            return found, "torch"
        loader, count = "torch", 1
    else:
        stream, loader, count = io.BytesIO(path.read_bytes()), "pickle", 5  # magic, version, info, data, keys
    for i in range(count):
        try:
            names, magic = _pickle_globals(stream)
        except Exception:  # noqa: BLE001 - anything undecodable ends the scan, it never runs code
            break
        found += names
        loader = "torch" if i == 0 and magic else loader
    return found, loader


def _allowed(name: str) -> bool:
    """Whether torch's weights-only loader accepts this global (or our numpy scalar ones)."""
    module, _, attribute = name.rpartition(".")
    if module.startswith("numpy") and (attribute in ("scalar", "dtype") or attribute.endswith("DType")):
        return True
    try:
        from torch import _weights_only_unpickler as safe

        return name in safe._get_allowed_globals() or name in safe._get_user_allowed_globals()
    except (ImportError, AttributeError):  # private API gone: torch's own objects, OrderedDict
        return module == "torch" or module.startswith("torch.") or name == "collections.OrderedDict"


def _refers_to_existing(name: str) -> bool:
    """Whether an already-imported module defines `name` (a truncated file names a cut-off global);
    names in modules not imported yet are assumed to exist, since importing them could run code."""
    module, _, attribute = name.rpartition(".")
    if module not in sys.modules:
        return True
    return hasattr(sys.modules[module], attribute)


def _importable(name: str) -> bool:
    """Whether `name` could be a Python object at all: dotted identifiers whose top-level module is
    installed (looked up, not imported). Junk bytes read as a pickle's GLOBAL opcode name none.

    >>> _importable("posix.system"), _importable("ut short"), _importable("no_such_module_x.f")
    (True, False, False)
    """
    module, _, attribute = name.rpartition(".")
    if not module or not all(part.isidentifier() for part in (*module.split("."), attribute)):
        return False
    top = module.split(".")[0]
    return top in sys.modules or importlib.util.find_spec(top) is not None


def _spoken(name: str) -> str:
    """posix.system is what os.system pickles as: say both."""
    module, _, attribute = name.rpartition(".")
    return f"{name} (os.{attribute})" if module in ("posix", "nt") else name


def _refusal(path: Path, error: pickle.UnpicklingError) -> UnsafeCheckpointError | None:
    """The refusal of a checkpoint that asks for Python objects, naming them; None when it asks for none
    (then it is corrupt, not hostile). Torch's own advice (reload with weights_only=False, or allowlist
    the object) is never repeated: both would run the file's code."""
    names, loader = _asked_for(path)
    asked = list(dict.fromkeys(n for n in names if not _allowed(n) and _importable(n)))
    if not asked:
        match = _GLOBAL.search(str(error))
        if not (match and _refers_to_existing(match.group(1)) and _importable(match.group(1))):
            return None
        asked = [match.group(1)]
    shown = ", ".join(map(_spoken, asked[:5])) + (f" and {len(asked) - 5} more" if len(asked) > 5 else "")
    what = "a raw pickle file, not a torch checkpoint; " if loader == "pickle" else ""
    return UnsafeCheckpointError(
        path,
        f"refused: {what}loading it needs the Python object{'s' if len(asked) > 1 else ''} {shown}, and "
        "unpickling arbitrary objects can run code (a hostile checkpoint does exactly that). Checkpoints "
        "written by neuroexec or ClinicaDL hold only tensors and numbers.\n"
        + _FIX.format(path=repr(str(path)), load=_LOADERS[loader].format(path=repr(str(path)))),
    )


def _reason(error: BaseException) -> str:
    """torch's reason for not reading a file, without its advice to load it unsafely."""
    operand = re.search(r"Unsupported operand \d+", str(error))
    if operand:
        return f": {operand.group(0)}"
    line = first_line(error)
    return "" if "weights_only" in line or "Weights only" in line else f": {line}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights_only=True; refuse (UnsafeCheckpointError) one that would need
    arbitrary unpickling, naming what it asks for, and report a missing, truncated or corrupt file as an
    InputError.

    >>> save_model(Path("model.pth.tar"), torch.nn.Linear(2, 1).state_dict(), 3, "Linear")
    >>> load_checkpoint(Path("model.pth.tar"))["epoch"]
    3
    >>> torch.save({"model": torch.nn.Linear(2, 1)}, "pickled.pth.tar")  # a whole module, not weights
    >>> load_checkpoint(Path("pickled.pth.tar"))
    Traceback (most recent call last):
    neuroexec.errors.UnsafeCheckpointError: ...
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
        refusal = _refusal(path, error)
        if refusal is not None:
            raise refusal from None
        raise InputError(path, f"not a readable checkpoint (corrupt or truncated?){_reason(error)}") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, struct.error) as error:
        # IndexError, struct.error: torch's legacy loader on a few junk bytes ('pop from empty list',
        # 'unpack requires a buffer of 4 bytes'), said as nothing
        reason = "" if isinstance(error, (IndexError, struct.error)) else _reason(error)
        raise InputError(path, f"not a readable checkpoint (corrupt or truncated?){reason}") from None
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

    >>> torch.save({"module.weight": torch.ones(1, 2)}, "model.pth")  # a bare DistributedDataParallel state
    >>> load_model_state(Path("model.pth"))
    ({'weight': tensor([[1., 1.]])}, None, None)
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
