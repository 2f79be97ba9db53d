"""Your own network: an architecture named by an import path (`architecture = "mynets:MyNet"`,
`"mypkg.nets:MyNet"`) or by a package entry point of group `neuroexec.architectures`.

The contract of the class (a torch.nn.Module subclass):
- it is built as `Class(input_size=..., output_size=..., dropout=..., **options)`: `input_size` is
  (C, D, H, W) for volumes or (C, H, W) for slices, `output_size` the number of classes
  (classification), 1 (regression) or None (reconstruction), `dropout` the model's dropout, and
  `options` those of the model's `architecture_options` that `__init__` names (all of them when it
  takes `**kwargs`);
- in eval mode, `forward(x)` returns one tensor: (N, output_size) for classification and regression,
  x's shape for reconstruction. A `training_loss(raw, images, loss_name)` method, when present, is
  the network's own training loss (training/loop.py).

Where an import path's module is found: on `sys.path` (an installed package, PYTHONPATH), else in the
folder of the spec that names it (`folder`, given when the spec is checked: neuroexec.spec.checks). The
module stays in `sys.modules` from then on, so the training and the predictions of the same run build
the class the spec was checked with. A MAPS of a custom network predicts wherever its import path
resolves.

>>> is_custom("Conv5_FC3"), is_custom("mynets:MyNet")
(False, True)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn

from neuroexec.errors import NeuroexecError

ENTRY_POINT_GROUP = "neuroexec.architectures"
CONTRACT = ("input_size", "output_size", "dropout")
WAY_OUT = "put its folder next to the spec or on PYTHONPATH, or install its package"


def is_import_path(name: str) -> bool:
    return ":" in name


def entry_points() -> dict[str, str]:
    """The architectures installed packages register: entry-point name -> 'module:Class'."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {ep.name: ep.value for ep in found}


def is_custom(name: str) -> bool:
    """Whether `name` names a network of your own (an import path or an entry point). The registry
    looks its own names up first."""
    return is_import_path(name) or name in entry_points()


def resolve(name: str, folder: Path | None = None) -> type[nn.Module]:
    """The class an import path or an entry-point name names; a NeuroexecError saying why not
    (module not found, import failed, no such class, not a torch module)."""
    target = name if is_import_path(name) else entry_points().get(name)
    if target is None:
        raise NeuroexecError(
            f"no architecture {name!r} is registered in entry point group {ENTRY_POINT_GROUP}"
        )
    module_name, _, qualname = target.partition(":")
    if not module_name or not qualname:
        raise NeuroexecError(f"architecture {name!r}: expected 'module:Class' (e.g. 'mynets:MyNet')")
    module = _import(name, module_name, folder)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise NeuroexecError(f"architecture {name!r}: module {module_name} has no {qualname!r}")
    if not (inspect.isclass(found) and issubclass(found, nn.Module)):
        raise NeuroexecError(f"architecture {name!r}: {qualname} is not a torch.nn.Module class")
    return found


def _import(name: str, module_name: str, folder: Path | None):
    try:
        with _searching(folder):
            return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            where = f" (looked on sys.path and in {folder})" if folder else " (looked on sys.path)"
            raise NeuroexecError(
                f"architecture {name!r}: no module named {module_name}{where}; {WAY_OUT}"
            ) from None
        raise NeuroexecError(
            f"architecture {name!r}: module {module_name} imports {err.name}, which is not installed"
        ) from None
    except Exception as err:  # noqa: BLE001 - the user's module: any error while running it
        raise NeuroexecError(
            f"architecture {name!r}: importing module {module_name} failed: {type(err).__name__}: {err}"
        ) from None


@contextlib.contextmanager
def _searching(folder: Path | None) -> Iterator[None]:
    """`folder` at the end of sys.path while importing (sys.path's own entries come first)."""
    entry = str(folder) if folder is not None else None
    if entry is None or entry in sys.path:
        yield
        return
    sys.path.append(entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def contract_problem(cls: type[nn.Module]) -> str | None:
    """Why `cls` cannot be built as Class(input_size=..., output_size=..., dropout=...), or None."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None  # no signature to read: building it will tell
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    missing = [n for n in CONTRACT if n not in params]
    if missing:
        return (
            f"{cls.__name__}.__init__ takes no {', '.join(missing)}: neuroexec builds it as "
            f"{cls.__name__}(input_size=..., output_size=..., dropout=...)"
        )
    return None


def build_custom(
    cls: type[nn.Module], name: str, input_size: tuple[int, ...], output_size: int | None, dropout: float,
    **options: Any,
) -> nn.Module:  # fmt: skip
    """Class(input_size=..., output_size=..., dropout=..., **the options it names); its
    `architecture_name` is `name`, what maps.json and the checkpoints record."""
    params = inspect.signature(cls).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in options.items() if takes_all or k in params}
    try:
        net = cls(input_size=tuple(input_size), output_size=output_size, dropout=dropout, **kwargs)
    except Exception as err:  # noqa: BLE001 - the user's constructor
        raise NeuroexecError(
            f"architecture {name!r}: {cls.__name__}(input_size={tuple(input_size)}, output_size={output_size}, "
            f"dropout={dropout}) failed: {type(err).__name__}: {err}"
        ) from None
    net.architecture_name = name
    return net


def description(cls: type[nn.Module]) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else f"{cls.__module__}.{cls.__qualname__}"


def source_files(cls: type[nn.Module]) -> list[Path]:
    """The files that define `cls` and its base classes, torch's excluded."""
    files = []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        with contextlib.suppress(TypeError, OSError):
            files.append(Path(inspect.getsourcefile(klass) or "").resolve())
    return sorted({f for f in files if f.is_file()})


def source_hash(name: str) -> str:
    """sha256 of the source files of the class `name` names: what the training fingerprint holds."""
    digest = hashlib.sha256()
    for path in source_files(resolve(name)):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
