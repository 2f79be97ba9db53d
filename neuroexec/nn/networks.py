"""ClinicaDL-compatible CNNs: same module layout and state-dict names, so weights move both ways.

Every network has two attributes, `convolutions` (blocks Conv3d -> BatchNorm3d -> ReLU ->
PadMaxPool3d, parameters at indices 4*j and 4*j+1) and `fc` (Flatten, Dropout, Linear, ReLU,
Linear, ReLU, Linear: parameters at fc.2, fc.4, fc.6). For a 2D input size (C, H, W), slice
mode, the blocks are Conv2d -> BatchNorm2d -> ReLU -> PadMaxPool2d under the same names, as
ClinicaDL builds the same classes in 2D.

ClinicaDL 1.x uses the same classes for images and for patches: its default patch network for
50^3 patches is `Conv4_FC3`, which (despite its name) has five convolution blocks like
`Conv5_FC3` and a smaller head (50 -> 40 -> classes). The older generation's 4-block patch network
(channels 15/25/50/50, unpadded convolutions, `features`/`classifier` names) is not provided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuroexec.errors import NeuroexecError


class PadMaxPool(nn.Module):
    """Max pooling over the last `dims` axes that first pads each size up to a multiple of `stride`
    (zeros in front, as ClinicaDL does), so 169 -> 85 instead of 84 and no voxel is dropped."""

    dims = 3

    def __init__(self, kernel_size: int, stride: int, return_indices: bool = False, return_pad: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.return_indices = return_indices
        self.return_pad = return_pad

    def padding_for(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """F.pad-style padding (last dim first) that makes the spatial sizes multiples of stride."""
        front = [(-size) % self.stride for size in shape[-self.dims :]]
        return tuple(v for size in reversed(front) for v in (size, 0))

    def _pool(self, x: torch.Tensor, return_indices: bool):
        pool = F.max_pool3d if self.dims == 3 else F.max_pool2d
        return pool(x, self.kernel_size, self.stride, return_indices=return_indices)

    def pool_with_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """(pooled, indices into the padded input, padding) — what CropMaxUnpool3d needs to invert."""
        pad = self.padding_for(tuple(x.shape))
        out, indices = self._pool(F.pad(x, pad), True)
        return out, indices, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple:
        # A tensor, or a tuple when return_indices/return_pad are set (ClinicaDL's switches).
        if self.return_indices:
            out, indices, pad = self.pool_with_indices(x)
            return (out, indices, pad) if self.return_pad else (out, indices)
        pad = self.padding_for(tuple(x.shape))
        out = self._pool(F.pad(x, pad), False)
        return (out, pad) if self.return_pad else out

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class PadMaxPool3d(PadMaxPool):
    """ClinicaDL's PadMaxPool3d (3D images and patches).

    >>> PadMaxPool3d(2, 2)(torch.zeros(1, 1, 5, 4, 3)).shape
    torch.Size([1, 1, 3, 2, 2])
    """

    dims = 3


class PadMaxPool2d(PadMaxPool):
    """ClinicaDL's PadMaxPool2d (2D slices).

    >>> PadMaxPool2d(2, 2)(torch.zeros(1, 3, 5, 4)).shape
    torch.Size([1, 3, 3, 2])
    """

    dims = 2


@dataclass(frozen=True)
class Architecture:
    """Channels of the convolution blocks and widths of the two hidden linear layers."""

    channels: tuple[int, ...]
    fc_hidden: tuple[int, int]
    description: str


ARCHITECTURES: dict[str, Architecture] = {
    "Conv5_FC3": Architecture(
        (8, 16, 32, 64, 128), (1300, 50), "ClinicaDL's default image CNN (5 conv blocks, FC 1300/50)"
    ),
    "Conv4_FC3": Architecture(
        (8, 16, 32, 64, 128),
        (50, 40),
        "ClinicaDL's CNN also used for 50^3 patches (5 conv blocks despite the name, FC 50/40)",
    ),
    "TinyCNN": Architecture((4, 8, 16), (32, 16), "small demo CNN for 20^3..45^3 volumes (CPU, seconds)"),
}


class CNN(nn.Module):
    """`convolutions` then `fc`, named as ClinicaDL's CNN so state dicts are interchangeable."""

    def __init__(
        self,
        convolutions: nn.Sequential,
        fc: nn.Sequential,
        architecture_name: str,
        input_size: tuple[int, ...],
        output_size: int,
    ):
        super().__init__()
        self.convolutions = convolutions
        self.fc = fc
        self.architecture_name = architecture_name
        self.input_size = tuple(input_size)
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convolutions(x))


def pooled_shape(spatial: tuple[int, ...], n_poolings: int) -> tuple[int, ...]:
    """Spatial size after `n_poolings` PadMaxPool(2, 2): each one rounds up, 169 -> 85 -> 43 ...

    >>> pooled_shape((169, 208, 179), 5)
    (6, 7, 6)
    """
    return tuple(math.ceil(size / 2**n_poolings) for size in spatial)


def conv_blocks(in_channels: int, channels: tuple[int, ...], dims: int = 3) -> nn.Sequential:
    """Conv3d(k3, p1) -> BatchNorm3d -> ReLU -> PadMaxPool3d(2, 2) for each entry of `channels`
    (Conv2d, BatchNorm2d, PadMaxPool2d with `dims` 2, as ClinicaDL's get_layers_fn)."""
    conv, norm, pool = (
        (nn.Conv3d, nn.BatchNorm3d, PadMaxPool3d) if dims == 3 else (nn.Conv2d, nn.BatchNorm2d, PadMaxPool2d)
    )
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [conv(in_channels, out_channels, 3, padding=1), norm(out_channels), nn.ReLU(), pool(2, 2)]
        in_channels = out_channels
    return nn.Sequential(*layers)


def fc_head(n_features: int, hidden: tuple[int, int], output_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Dropout(p=dropout),
        nn.Linear(n_features, hidden[0]),
        nn.ReLU(),
        nn.Linear(hidden[0], hidden[1]),
        nn.ReLU(),
        nn.Linear(hidden[1], output_size),
    )


def architecture(name: str) -> Architecture:
    """The Architecture named `name`; a NeuroexecError listing the known names otherwise."""
    if name not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise NeuroexecError(f"unknown architecture {name!r}; known architectures: {known}")
    return ARCHITECTURES[name]


def check_input_size(name: str, input_size: tuple[int, ...], n_poolings: int) -> None:
    """Each pooling must see at least 2 voxels along every axis, i.e. size > 2**(n_poolings - 1).
    `input_size` is (C, D, H, W) of a 3D volume or (C, H, W) of a 2D slice.

    >>> check_input_size("TinyCNN", (1, 20), 3)
    Traceback (most recent call last):
    ...
    neuroexec.errors.NeuroexecError: architecture TinyCNN: input_size must be (channels, depth, height, width) of a 3D volume or (channels, height, width) of a 2D slice, got (1, 20)
    """
    if len(input_size) not in (3, 4) or any(int(s) < 1 for s in input_size):
        raise NeuroexecError(
            f"architecture {name}: input_size must be (channels, depth, height, width) of a 3D volume "
            f"or (channels, height, width) of a 2D slice, got {tuple(input_size)}"
        )
    minimum = 2 ** (n_poolings - 1) + 1
    too_small = [int(s) for s in input_size[1:] if int(s) < minimum]
    if too_small:
        raise NeuroexecError(
            f"architecture {name} pools {n_poolings} times and needs every spatial size >= {minimum}; "
            f"input size {tuple(int(s) for s in input_size)} is too small"
        )


def build_network(
    architecture_name: str, input_size: tuple[int, ...], output_size: int, dropout: float = 0.5
) -> CNN:
    """A ClinicaDL-compatible CNN for inputs of shape `input_size` = (C, D, H, W), or 2D for
    (C, H, W) (Conv2d, BatchNorm2d, PadMaxPool2d: ClinicaDL's slice networks).

    >>> net = build_network("Conv5_FC3", (1, 169, 208, 179), output_size=2)
    >>> net.fc[2].in_features == 128 * 6 * 7 * 6
    True
    >>> type(build_network("Conv4_FC3", (3, 169, 208), output_size=2).convolutions[0]).__name__
    'Conv2d'
    """
    arch = architecture(architecture_name)
    check_input_size(architecture_name, input_size, len(arch.channels))
    if output_size < 1:
        raise NeuroexecError(f"architecture {architecture_name}: output_size must be >= 1, got {output_size}")
    convolutions = conv_blocks(int(input_size[0]), arch.channels, dims=len(input_size) - 1)
    n_features = arch.channels[-1] * math.prod(pooled_shape(tuple(input_size[1:]), len(arch.channels)))
    fc = fc_head(n_features, arch.fc_hidden, output_size, dropout)
    return CNN(convolutions, fc, architecture_name, tuple(int(s) for s in input_size), output_size)
