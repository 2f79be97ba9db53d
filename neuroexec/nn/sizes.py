"""Input-size checks shared by the ClinicaDL architectures that build from the input size.

Each check raises a NeuroexecError naming the architecture, what it needs and the size it got, so a
spec or a MAPS that cannot feed the network fails at build time with one sentence.

>>> spatial_dims("ResNet3D", (1, 64, 64, 64), (3,))
3
>>> spatial_dims("resnet18", (3, 64, 64, 64), (2,))
Traceback (most recent call last):
...
neuroexec.errors.NeuroexecError: architecture resnet18 builds for 2D slices (input size (channels, height, width)), got (3, 64, 64, 64)
"""

from __future__ import annotations

import math

from neuroexec.errors import NeuroexecError

_SHAPES = {3: "3D volumes (input size (channels, depth, height, width))",
           2: "2D slices (input size (channels, height, width))"}  # fmt: skip


def spatial_dims(name: str, input_size: tuple[int, ...], dims: tuple[int, ...]) -> int:
    """The number of spatial axes of `input_size` (C, ...), which must be one of `dims`."""
    n = len(input_size) - 1
    if n not in dims or any(int(s) < 1 for s in input_size):
        wanted = " or ".join(_SHAPES[d] for d in sorted(dims, reverse=True))
        raise NeuroexecError(f"architecture {name} builds for {wanted}, got {tuple(input_size)}")
    return n


def require_minimum(name: str, input_size: tuple[int, ...], minimum: int, why: str) -> None:
    """Every spatial size must be >= `minimum` (`why` says what needs it)."""
    if any(int(s) < minimum for s in input_size[1:]):
        raise NeuroexecError(
            f"architecture {name} {why} and needs every spatial size >= {minimum}; "
            f"input size {tuple(int(s) for s in input_size)} is too small"
        )


def require_values_per_channel(
    name: str, input_size: tuple[int, ...], last: tuple[int, ...], smallest: int
) -> None:
    """The last batch normalisation must see more than one value per channel (`last`: its spatial size),
    or a batch of one cannot train; ClinicaDL fails to build such a network (it sizes it with one image)."""
    if math.prod(last) <= 1:
        raise NeuroexecError(
            f"architecture {name} needs a spatial size >= {smallest} along at least one axis (its last batch "
            f"normalisation sees one value per channel otherwise, and ClinicaDL cannot build it); input size "
            f"{tuple(int(s) for s in input_size)} is too small"
        )


def require_output_size(name: str, output_size: int) -> int:
    if output_size < 1:
        raise NeuroexecError(f"architecture {name}: output_size must be >= 1, got {output_size}")
    return int(output_size)
