"""The spec's checks of a model's architecture (spec/checks.py calls them; validate and plan see them):
what can be known from its name alone. Whether it fits the planned input size and gives the output the
task needs is the plan's check (training/network_check.py), which knows the data's sizes.

>>> from neuroexec.spec.model import Model
>>> said = []
>>> entry = check_architecture(Path("."), Model("m", Path("maps/m"), "d", architecture="Conv5FC3"),
...                            lambda key, message: said.append(f"{key}: {message.split(';')[0]}"))
>>> print(entry, said)
None ["models.m.architecture: unknown architecture 'Conv5FC3' (did you mean Conv5_FC3?)"]
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable
from pathlib import Path

from neuroexec.errors import NeuroexecError
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Model

Add = Callable[[str, str], None]


def check_architecture(spec_dir: Path, model: Model, add: Add):
    """The architecture is a registry name, an import path that imports (from sys.path or the spec's
    folder) or an entry point, of a class built with input_size, output_size and dropout; a registry
    network serves the model's task and the dimensions of its mode (2D slices, 3D volumes). Returns
    the registry's Entry of the network (None for a network of your own or an unknown name)."""
    from neuroexec.nn import custom, registry

    key, name = f"models.{model.name}.architecture", model.architecture
    if name not in registry.REGISTRY and custom.is_custom(name):
        try:
            why = custom.contract_problem(custom.resolve(name, spec_dir))
        except NeuroexecError as err:
            why = str(err)
        if why:
            add(key, why)
        return None
    dims = 2 if model.mode == "slice" else 3
    fitting = [e.name for e in registry.REGISTRY.values() if model.task in e.tasks and dims in e.dims]
    choose = f"choose one of {', '.join(sorted(fitting))}, or a network of your own as 'module:Class'"
    if name in registry.OUT_OF_SCOPE:  # ClinicaDL's, refused with the reason
        add(key, registry.OUT_OF_SCOPE[name])
        return None
    try:
        found = registry.entry(registry.resolved_name(name, model.task))
    except NeuroexecError:
        close = difflib.get_close_matches(name, list(registry.REGISTRY), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        add(key, f"unknown architecture {name!r}{hint}; {choose}")
        return None
    if model.task not in found.tasks:
        add(key, f"{name} is for {' or '.join(sorted(found.tasks))}, not task = '{model.task}'; {choose}")
    elif dims not in found.dims:
        add(key, f"{name} builds {' or '.join(f'{d}D' for d in found.dims)} networks, and mode = "
            f"'{model.mode}' feeds it {dims}D inputs; {choose}")  # fmt: skip
    return found


def check_pretrained_architecture(spec_dir: Path, model: Model, add: Add) -> None:
    """A MAPS of a network of your own: the import path its maps.json records imports (from sys.path or
    the spec's folder), so that its predictions can build it."""
    from neuroexec.nn import custom

    try:
        name = json.loads(MapsLayout(model.maps).maps_json.read_text()).get("architecture")
    except (OSError, ValueError, AttributeError):
        return  # a legacy or unreadable maps.json: reading the MAPS says why
    if isinstance(name, str) and custom.is_import_path(name):
        try:
            custom.resolve(name, spec_dir)
        except NeuroexecError as err:
            add(f"models.{model.name}.maps", f"this MAPS's network cannot be built: {err}")


def check_options(spec_dir: Path, model: Model, found, add: Add) -> None:
    """Every [Architecture] option set off its default is one the model's network reads (its builder's
    or its class's parameters), so that a changed option changes the network; weights has its own check."""
    from neuroexec.nn import custom, registry

    if found is None and not custom.is_custom(model.architecture):
        return  # an unknown name: check_architecture said so
    name = found.name if found is not None else model.architecture
    options = model.architecture_options.network_kwargs()
    for option in unread_options(name, model.task, options, spec_dir):
        key = f"models.{model.name}.architecture_options.{option}"
        if option == "normalization":
            add(key, "no network of neuroexec reads normalization: like ClinicaDL's, they use batch norm; "
                "remove it (or set 'batch'), or name a network of your own whose __init__ takes it")  # fmt: skip
            continue
        readers = sorted(
            e.name for e in registry.REGISTRY.values() if option in (options_read(e.build) or ())
        )
        add(key, f"{name} reads no {option} (it would change nothing but the fingerprint); remove it, or choose "
            f"a network that reads it: {', '.join(readers)}")  # fmt: skip


def unread_options(architecture: str, task: str, options: dict, folder: Path | None = None) -> list[str]:
    """The options of `options` set off ClinicaDL's defaults that the network `architecture` (a registry
    name or a class of your own, found from `folder` too) does not read; [] for a name that does not
    resolve (its own check says why). The ClinicaDL front end drops these (ClinicaDL ignores them).

    >>> unread_options("Conv5_FC3", "classification", {"latent_space_size": 64, "n_conv": 4})
    ['latent_space_size']
    """
    from neuroexec.nn import custom, registry
    from neuroexec.spec.model import ArchitectureOptions

    defaults = ArchitectureOptions().network_kwargs()
    try:
        name = registry.resolved_name(architecture, task)
        build = registry.REGISTRY[name].build if name in registry.REGISTRY else custom.resolve(name, folder)
    except NeuroexecError:
        return []
    reads = options_read(build)
    if reads is None:
        return []
    return [k for k, v in options.items() if k in defaults and v != defaults[k] and k not in reads]


def options_read(build) -> frozenset[str] | None:
    """The [Architecture] options a registry builder or a class of your own names as parameters; None
    for a class taking **kwargs (it is given them all). A builder's **_options are the ignored rest."""
    from neuroexec.nn.custom import CONTRACT

    try:
        params = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):
        return None  # no signature to read: it may read any
    if inspect.isclass(build) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p.name for p in params if p.kind in plain]
    return frozenset(named[3:] if not inspect.isclass(build) else [n for n in named if n not in CONTRACT])
