"""ClinicaDL's ResNet3D: five 3D residual blocks, each followed by MaxPool3d(3, stride 2).

`convolutions.k` (k = 0..4) is Sequential(ResBlock, MaxPool3d); a ResBlock holds conv1, bn1, act1,
conv2, bn2 and a 1x1x1 `shortcut` (Sequential of one Conv3d), convolutions without bias, channels 8, 16,
32, 64, 128. `fc` is Flatten, Linear -> 256, ELU, Dropout(0.8), Linear (fc.1, fc.4). These are
ClinicaDL's state-dict names, so its weights load here and ours there.

Where ClinicaDL differs, on purpose: ClinicaDL designs its ResNet3D for 1 x 169 x 208 x 179 images
with 2 outputs whatever the data (another size fails in its first linear layer); here the first
linear layer, the input channels and the outputs follow the input size and the task, which gives the
same network for those images and a binary classification. The dropout is ClinicaDL's fixed 0.8
(the spec's `dropout` is not used by this network, as in ClinicaDL).

>>> net = build_resnet3d((1, 169, 208, 179), 2, 0.0)
>>> net.fc[1].in_features, net.fc[3].p
(10240, 0.8)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from neuroexec.nn.networks import CNN
from neuroexec.nn.sizes import require_minimum, require_output_size, spatial_dims

NAME = "ResNet3D"
CHANNELS = (8, 16, 32, 64, 128)
DROPOUT = 0.8  # ClinicaDL's, whatever the spec's dropout


class ResBlock(nn.Module):
    """conv1 -> bn1 -> act1 -> conv2 -> bn2 [-> excitation], plus the 1x1x1 shortcut, then act2."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        activation: type[nn.Module] = nn.ELU,
        excitation: Callable[[int], nn.Module] | None = None,
    ):
        super().__init__()
        # registered in ClinicaDL's order: the state dict lists its keys the same way, and one seed
        # draws the same initial weights
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_channels)
        self.act1 = activation()
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_channels)
        if excitation is not None:
            self.se_block = excitation(out_channels)  # built here: ClinicaDL draws its weights here
        self.shortcut = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 1, stride=1, padding=0, bias=False)
        )
        self.act2 = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if hasattr(self, "se_block"):
            out = self.se_block(out)
        return self.act2(out + self.shortcut(x))


def pooled_shape(spatial: tuple[int, ...], n_poolings: int) -> tuple[int, ...]:
    """Spatial size after `n_poolings` MaxPool3d(3, stride 2) without padding: (n - 3) // 2 + 1.

    >>> pooled_shape((169, 208, 179), 5)
    (4, 5, 4)
    """
    for _ in range(n_poolings):
        spatial = tuple((size - 3) // 2 + 1 for size in spatial)
    return spatial


def smallest_size(n_poolings: int) -> int:
    """The smallest size that `n_poolings` such poolings leave at least one voxel of (5: 63).

    >>> smallest_size(5)
    63
    """
    size = 1
    for _ in range(n_poolings):
        size = 2 * size + 1
    return size


def check_residual_input(name: str, input_size: tuple[int, ...]) -> None:
    spatial_dims(name, input_size, (3,))
    require_minimum(
        name, input_size, smallest_size(len(CHANNELS)), f"pools {len(CHANNELS)} times by 3 with stride 2"
    )


def residual_layers(blocks: list[nn.Module]) -> nn.Sequential:
    """convolutions: each block followed by MaxPool3d(3, stride 2)."""
    return nn.Sequential(*(nn.Sequential(block, nn.MaxPool3d(3, stride=2)) for block in blocks))


def n_features(input_size: tuple[int, ...]) -> int:
    return CHANNELS[-1] * math.prod(pooled_shape(tuple(input_size[1:]), len(CHANNELS)))


def build_resnet3d(input_size: tuple[int, ...], output_size: int | None, _dropout: float, **_options) -> CNN:
    """ResNet3D for (C, D, H, W) volumes of at least 63 voxels along each axis."""
    check_residual_input(NAME, input_size)
    out = require_output_size(NAME, int(output_size or 1))
    ins = (int(input_size[0]), *CHANNELS[:-1])
    convolutions = residual_layers([ResBlock(i, o) for i, o in zip(ins, CHANNELS, strict=True)])
    fc = nn.Sequential(
        nn.Flatten(),
        nn.Linear(n_features(input_size), 256),
        nn.ELU(),
        nn.Dropout(p=DROPOUT),
        nn.Linear(256, out),
    )
    return CNN(convolutions, fc, NAME, tuple(int(s) for s in input_size), out)
