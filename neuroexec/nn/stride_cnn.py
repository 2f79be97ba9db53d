"""ClinicaDL's Stride_Conv5_FC3: Conv5_FC3 with strided convolutions instead of max pooling.

Five blocks Conv(k3, p1, stride 2) -> BatchNorm -> ReLU (no pooling: parameters at convolutions.3*j
and 3*j+1), then the Conv5_FC3 head `fc` (networks.fc_head: Flatten, Dropout, Linear -> 1300, ReLU,
Linear -> 50, ReLU, Linear: fc.2, fc.4, fc.6). 2D (Conv2d, BatchNorm2d) for a (C, H, W) input, 3D otherwise, and the
first linear layer sized from the input as ClinicaDL does: each convolution maps n to ceil(n / 2).

>>> net = build_stride_conv5_fc3((1, 169, 208, 179), 2, 0.5)
>>> net.fc[2].in_features == 128 * 6 * 7 * 6
True
"""

from __future__ import annotations

import math

from torch import nn

from neuroexec.nn.networks import CNN, fc_head
from neuroexec.nn.sizes import require_output_size, require_values_per_channel, spatial_dims

NAME = "Stride_Conv5_FC3"
CHANNELS = (8, 16, 32, 64, 128)
HIDDEN = (1300, 50)


def strided_shape(spatial: tuple[int, ...], n_convolutions: int) -> tuple[int, ...]:
    """Spatial size after `n_convolutions` Conv(k3, p1, stride 2): (n + 2 - 3) // 2 + 1 = ceil(n / 2).

    >>> strided_shape((169, 208, 179), 5)
    (6, 7, 6)
    """
    for _ in range(n_convolutions):
        spatial = tuple((size - 1) // 2 + 1 for size in spatial)
    return spatial


def strided_blocks(in_channels: int, channels: tuple[int, ...], dims: int) -> nn.Sequential:
    conv, norm = (nn.Conv3d, nn.BatchNorm3d) if dims == 3 else (nn.Conv2d, nn.BatchNorm2d)
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [conv(in_channels, out_channels, 3, padding=1, stride=2), norm(out_channels), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*layers)


def build_stride_conv5_fc3(
    input_size: tuple[int, ...], output_size: int | None, dropout: float, **_options
) -> CNN:
    """Stride_Conv5_FC3 for (C, D, H, W) volumes or (C, H, W) slices with a side >= 33."""
    dims = spatial_dims(NAME, input_size, (2, 3))
    require_values_per_channel(NAME, input_size, strided_shape(tuple(input_size[1:]), len(CHANNELS)), 33)
    out = require_output_size(NAME, int(output_size or 1))
    convolutions = strided_blocks(int(input_size[0]), CHANNELS, dims)
    n_features = CHANNELS[-1] * math.prod(strided_shape(tuple(input_size[1:]), len(CHANNELS)))
    fc = fc_head(n_features, HIDDEN, out, dropout)
    return CNN(convolutions, fc, NAME, tuple(int(s) for s in input_size), out)
