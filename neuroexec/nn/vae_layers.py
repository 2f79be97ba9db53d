"""The blocks of ClinicaDL's Vanilla VAEs (nn/vanilla_vae.py), under its module names so that the
state dicts match ClinicaDL 1.6.1's.

An encoder block halves each side (4-wide kernel, stride 2, padding 1: side -> side // 2); the
decoder block that mirrors it doubles it back and adds the side's lost odd voxel with its output
padding (side -> 2 * side + padding), so that the decoder gives the input's size again:

    encoder  35 -> 17 -> 8 -> 4 -> 2        (paddings 35 % 2, 17 % 2, 8 % 2, 4 % 2 = 1, 1, 0, 0)
    decoder   2 -> 4 -> 8 -> 17 -> 35
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_CONV = {2: (nn.Conv2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.ConvTranspose3d)}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}  # ClinicaDL's VAEs never pass another normalization


class EncoderBlock(nn.Module):
    """Convolution (no bias) and normalisation, then a leaky ReLU (slope 0.2): ClinicaDL's
    EncoderLayer2D/3D (`layer.0`, `layer.1`)."""

    def __init__(self, dims: int, channels_in: int, channels_out: int):
        super().__init__()
        conv = _CONV[dims][0](channels_in, channels_out, 4, stride=2, padding=1, bias=False)
        self.layer = nn.Sequential(conv, _NORM[dims](channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.layer(x), negative_slope=0.2)


class DecoderBlock(nn.Module):
    """Transposed convolution (no bias) and normalisation, then a ReLU: ClinicaDL's
    DecoderLayer2D/3D."""

    def __init__(self, dims: int, channels_in: int, channels_out: int, output_padding: Sequence[int]):
        super().__init__()
        padding = tuple(output_padding)
        conv = _CONV[dims][1](
            channels_in, channels_out, 4, stride=2, padding=1, output_padding=padding, bias=False
        )
        self.layer = nn.Sequential(conv, _NORM[dims](channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layer(x))


class Flatten(nn.Module):
    """(B, C, ...) -> (B, C * ...), whatever the memory layout (channels_last included)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class Unflatten(nn.Module):
    """(B, C * ...) -> (B, C, ...)."""

    def __init__(self, *shape: int):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def halvings(sides: Sequence[int], n_conv: int) -> tuple[list[list[int]], tuple[int, ...]]:
    """The output paddings that undo `n_conv` halvings of `sides` (one list per block, the first
    block's first) and the sides after them.

    >>> halvings((35, 26), 4)
    ([[1, 0], [1, 1], [0, 0], [0, 1]], (2, 1))
    """
    paddings, sides = [], tuple(int(s) for s in sides)
    for _ in range(n_conv):
        paddings.append([s % 2 for s in sides])
        sides = tuple(s // 2 for s in sides)
    return paddings, sides


def conv_encoder(dims: int, channels: int, first: int, n_conv: int) -> list[nn.Module]:
    """`n_conv` encoder blocks: `channels` -> first -> 2 first -> ... -> first * 2^(n_conv - 1)."""
    widths = [channels] + [first * 2**i for i in range(n_conv)]
    return [EncoderBlock(dims, a, b) for a, b in zip(widths, widths[1:])]


def conv_decoder(dims: int, channels: int, last: int, paddings: list[list[int]]) -> list[nn.Module]:
    """The mirror of `conv_encoder`: decoder blocks from the deepest, then the output layer
    (transposed convolution to `channels`, sigmoid), each with its block's output padding."""
    n_conv = len(paddings)
    blocks: list[nn.Module] = [
        DecoderBlock(dims, last * 2**i, last * 2 ** (i - 1), paddings[i]) for i in range(n_conv - 1, 0, -1)
    ]
    output = _CONV[dims][1](
        last, channels, 4, stride=2, padding=1, output_padding=tuple(paddings[0]), bias=False
    )
    blocks.append(nn.Sequential(output, nn.Sigmoid()))
    return blocks


class Sequential2D(nn.Module):
    """A stack kept under `sequential`, as ClinicaDL's VAE_Encoder and VAE_Decoder keep theirs."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.sequential = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequential(x)
