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
