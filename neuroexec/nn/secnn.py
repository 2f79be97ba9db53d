"""ClinicaDL's SqueezeExcitationCNN: ResNet3D's residual blocks with a squeeze-and-excitation step.

Each block (ReLU activations) rescales its channels by `se_block` before adding the shortcut: the
channels' means (AdaptiveAvgPool3d(1)) go through `fc1` (channels -> channels // 8), ReLU, `fc2`
(back to channels) and a sigmoid. `fc` is Flatten, Dropout(0.5), Linear -> 256, ReLU, Linear
(fc.2, fc.4). Same names as ClinicaDL's, same sizes rule and same differences as ResNet3D
(nn/resnet3d.py): the first linear layer and the outputs follow the input size and the task; the
dropout is ClinicaDL's fixed 0.5, not the spec's. ClinicaDL offers it for classification only.

>>> net = build_secnn((1, 63, 63, 63), 2, 0.0)
>>> net.convolutions[0][0].se_block.fc1.out_features, net.fc[1].p
(1, 0.5)
"""

from __future__ import annotations

import torch
from torch import nn

from neuroexec.nn.networks import CNN
from neuroexec.nn.resnet3d import CHANNELS, ResBlock, check_residual_input, n_features, residual_layers
from neuroexec.nn.sizes import require_output_size

NAME = "SqueezeExcitationCNN"
DROPOUT = 0.5  # ClinicaDL's, whatever the spec's dropout
RATIO = 8  # channels // RATIO in the excitation's hidden layer


class SqueezeExcitation(nn.Module):
    """x * sigmoid(fc2(relu(fc1(mean of each channel of x)))), channel by channel."""

    def __init__(self, channels: int, ratio: int = RATIO):
        super().__init__()
        self.avg_pooling_3D = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Linear(channels, channels // ratio)
        self.fc2 = nn.Linear(channels // ratio, channels)
        self.act1 = nn.ReLU()
        self.act2 = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.avg_pooling_3D(x).flatten(1)
        weights = self.act2(self.fc2(self.act1(self.fc1(squeezed))))
        return x * weights.view(*weights.shape, 1, 1, 1)


def build_secnn(input_size: tuple[int, ...], output_size: int | None, _dropout: float, **_options) -> CNN:
    """SqueezeExcitationCNN for (C, D, H, W) volumes of at least 63 voxels along each axis."""
    check_residual_input(NAME, input_size)
    out = require_output_size(NAME, int(output_size or 1))
    ins = (int(input_size[0]), *CHANNELS[:-1])
    blocks = [ResBlock(i, o, nn.ReLU, SqueezeExcitation) for i, o in zip(ins, CHANNELS, strict=True)]
    fc = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(p=DROPOUT),
        nn.Linear(n_features(input_size), 256),
        nn.ReLU(),
        nn.Linear(256, out),
    )
    return CNN(residual_layers(blocks), fc, NAME, tuple(int(s) for s in input_size), out)
