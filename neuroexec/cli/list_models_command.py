"""`neuroexec train list_models [-a NAME] [-i SIZE] [-m]` (ClinicaDL's `train list_models`): the
architectures neuroexec builds; with -a, what one is for (tasks, dimensions, an input size it takes);
with -m, its layers for that input size or -i's (C@DxHxW, or C@HxW for slices).

>>> print(input_size_text((1, 169, 208, 179)))
1@169x208x179
>>> parse_input_size("3@128x128")
(3, 128, 128)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from neuroexec.errors import InputError, NeuroexecError

# Input sizes tried, in order, for the example of -a when -i is not given: t1-linear's cropped images,
# then ClinicaDL's usual examples.
EXAMPLES = {
    3: ((1, 169, 208, 179), (1, 128, 128, 128), (1, 80, 96, 80), (1, 73, 89, 73)),
    2: ((1, 128, 128), (3, 128, 128)),
}


def add_list_models(kinds: argparse._SubParsersAction) -> None:
    """`train list_models` among train's KINDs."""
    q = kinds.add_parser(
        "list_models",
        help="list the architectures (ClinicaDL's train list_models)",
        description="Show the architectures neuroexec builds, or one's description (-a) and layers (-m).",
    )
    q.add_argument("-a", "--architecture", help="the architecture to describe (a name, or module:Class)")
    q.add_argument("-i", "--input_size", help="input size as C@DxHxW (3D) or C@HxW (2D), for -m")
    q.add_argument("-m", "--model_layers", action="store_true", help="print the network's layers")
    q.set_defaults(func=cmd_list_models)


def cmd_list_models(args: argparse.Namespace) -> int:
    if args.architecture is None:
        print(listing())
    else:
        size = parse_input_size(args.input_size) if args.input_size else None
        print(describe(args.architecture, size, args.model_layers))
    return 0


def listing() -> str:
    from neuroexec.nn import custom, registry

    lines = ["The list of currently available models is:"]
    lines += [f" - {name}" for name in registry.known()]
    lines += [f" - {name} (entry point: {value})" for name, value in sorted(custom.entry_points().items())]
    lines.append("To show details of a specific model architecture please use the `--architecture` option")
    return "\n".join(lines)


def describe(name: str, input_size: tuple[int, ...] | None, layers: bool) -> str:
    """-a NAME: its description, tasks, dimensions and an input size; with `layers`, its modules."""
    from neuroexec.nn import custom, registry

    try:
        if custom.is_import_path(name):
            custom.resolve(name, Path.cwd())  # as next to a spec: a module in this folder
        found = registry.entry(name)
    except NeuroexecError as err:
        raise InputError(None, str(err), "--architecture") from None
    task = sorted(found.tasks)[0]
    size = input_size or next((s for s in _examples(found.dims) if _built(name, task, s) is not None), None)
    dims = " or ".join(f"{d}D" for d in sorted(found.dims))
    shapes = " or ".join("C@DxHxW" if d == 3 else "C@HxW" for d in sorted(found.dims))
    example = f", for example {input_size_text(size)}" if size else ""
    text = [
        f"Information about '{name}' network:",
        f"    {found.description}",
        f"    This model can deal with {dims} inputs.",
        f"    The input must be in the shape {shapes}{example}.",
        f"    This model can be used for {' or '.join(sorted(found.tasks))}.",
    ]
    if layers:
        net = _built(name, task, size) if size else None
        if net is None:
            raise InputError(
                None, f"{name} does not build for input size {input_size_text(size)}", "--input_size"
            )
        text += [f"Input size: {input_size_text(size)}", "Model layers:", str(net)]
    return "\n".join(text)


def _examples(dims: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [s for d in sorted(dims, reverse=True) for s in EXAMPLES.get(d, ())]


def _built(name: str, task: str, size: tuple[int, ...] | None) -> nn.Module | None:
    """The network for `size`, built on the meta device (no weights allocated); None when it does not fit."""
    from neuroexec.nn.registry import build_architecture

    if size is None:
        return None
    output = None if task == "reconstruction" else (1 if task == "regression" else 2)
    try:
        with torch.device("meta"):
            return build_architecture(name, task, size, output, 0.0)
    except NeuroexecError:
        return None


def parse_input_size(text: str) -> tuple[int, ...]:
    """'1@169x208x179' -> (1, 169, 208, 179); an InputError naming -i otherwise."""
    channels, _, rest = text.partition("@")
    try:
        size = (int(channels), *(int(n) for n in rest.split("x")))
    except ValueError:
        size = ()
    if len(size) not in (3, 4) or min(size) < 1:
        raise InputError(
            None, f"expected C@DxHxW or C@HxW (e.g. 1@169x208x179), got {text!r}", "--input_size"
        )
    return size


def input_size_text(size: tuple[int, ...] | None) -> str:
    return "" if size is None else f"{size[0]}@{'x'.join(map(str, size[1:]))}"
