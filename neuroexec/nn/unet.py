"""GeneratorUNet: ClinicaDL's 3D U-Net for reconstruction (a pix2pix-style generator).

Five strided convolutions (kernel 3, stride 2, padding 1; instance norm, LeakyReLU 0.2) take one
channel to 64, 128, 256, 512, 512 and halve every side; four transposed convolutions (kernel 4,
stride 2, padding 1; instance norm, ReLU) double it back, each after concatenating the skip of its
level; a last block upsamples (nearest, x2), convolves the 128 channels to 1 and applies tanh:

    n -> n/2 -> n/4 -> n/8 -> n/16 -> n/32 -> n/16 ++ -> n/8 ++ -> n/4 ++ -> n/2 ++ -> n
                                                (++ : concatenated with the encoder side)

So every side must be a multiple of 32 (else a skip and its decoder side differ, or the output is
not the input's size), and the deepest grid (n/32 per side) must hold more than one voxel: instance
norm normalises each channel over its voxels, and torch refuses a single one. ClinicaDL advertises
1@128x128x128; any size that satisfies these rules runs the same network.

Instance norm has no affine parameters and no running statistics, so the state dict holds the
convolutions only: down{1..5}.model.0, up{1..4}.model.0, final.model.1 (ClinicaDL's names).

>>> net = build_generator_unet((1, 64, 32, 32))
>>> net.eval()(torch.zeros(1, 1, 64, 32, 32)).shape
torch.Size([1, 1, 64, 32, 32])
>>> build_generator_unet((1, 48, 64, 64))
Traceback (most recent call last):
...
neuroexec.errors.NeuroexecError: architecture GeneratorUNet needs every spatial size to be a multiple of 32 (it halves each side 5 times and concatenates the skips), got input size (1, 48, 64, 64); use images of such a size (ClinicaDL's 1@128x128x128) or another reconstruction architecture
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuroexec.errors import NeuroexecError

_DEPTH = 5  # strided convolutions: the sides must be multiples of 2**_DEPTH
_WAY_OUT = "use images of such a size (ClinicaDL's 1@128x128x128) or another reconstruction architecture"


class Down(nn.Module):
    """Strided convolution, instance norm, LeakyReLU 0.2: ClinicaDL's UNetDown."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=2, padding=1),
            nn.InstanceNorm3d(out_channels),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Up(nn.Module):
    """[skip concatenation,] transposed convolution x2, instance norm, ReLU: ClinicaDL's UNetUp."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.ConvTranspose3d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
            nn.InstanceNorm3d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x if skip is None else torch.cat((x, skip), 1))


class Final(nn.Module):
    """Skip concatenation, nearest upsampling x2, convolution, tanh: ClinicaDL's FinalLayer."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.model = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat((x, skip), 1))


class GeneratorUNet(nn.Module):
    """ClinicaDL's GeneratorUNet; forward returns the reconstruction (module docstring)."""

    architecture_name = "GeneratorUNet"

    def __init__(self):
        super().__init__()
        self.down1 = Down(1, 64)
        self.down2 = Down(64, 128)
        self.down3 = Down(128, 256)
        self.down4 = Down(256, 512)
        self.down5 = Down(512, 512)
        self.up1 = Up(512, 512)
        self.up2 = Up(1024, 256)
        self.up3 = Up(512, 128)
        self.up4 = Up(256, 64)
        self.final = Final(128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        d3 = self.down3(d2)
        d4 = self.down4(d3)
        u1 = self.up1(self.down5(d4))
        u2 = self.up2(u1, d4)
        u3 = self.up3(u2, d3)
        return self.final(self.up4(u3, d2), d1)


def check_input_size(input_size: tuple[int, ...]) -> None:
    """ClinicaDL's GeneratorUNet rules (module docstring); a NeuroexecError naming the one broken."""
    size = tuple(int(s) for s in input_size)
    if len(size) != 4 or size[0] != 1:
        raise NeuroexecError(
            f"architecture GeneratorUNet reconstructs one-channel 3D volumes (input size (1, depth, height, "
            f"width)), got {size}; {_WAY_OUT}"
        )
    step = 2**_DEPTH
    if any(s % step for s in size[1:]):
        raise NeuroexecError(
            f"architecture GeneratorUNet needs every spatial size to be a multiple of {step} (it halves each "
            f"side {_DEPTH} times and concatenates the skips), got input size {size}; {_WAY_OUT}"
        )
    if math.prod(s // step for s in size[1:]) < 2:
        raise NeuroexecError(
            f"architecture GeneratorUNet needs an input larger than {step}x{step}x{step} (its deepest "
            f"instance norm needs more than one voxel), got input size {size}; {_WAY_OUT}"
        )


def build_generator_unet(input_size: tuple[int, ...]) -> GeneratorUNet:
    """GeneratorUNet for `input_size` (the network itself does not depend on it: only checked)."""
    check_input_size(input_size)
    net = GeneratorUNet()
    net.input_size = tuple(int(s) for s in input_size)
    return net
