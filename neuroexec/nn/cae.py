"""CAE_half: ClinicaDL's 3D convolutional autoencoder "derived from CVAE", with a dense latent code.

Three strided convolutions (1 -> 32 -> 64 -> 128 channels, kernel 3, stride 2, padding 1, no bias,
batch norm, LeakyReLU 0.2) halve every side (rounding up), a linear layer maps the 128x10x12x10
features to `latent_space_size`, and the decoder mirrors it: a linear layer back to 256x10x12x10,
three transposed convolutions (256 -> 128 -> 64 -> 1, batch norm, ReLU) that double every side minus
one. The sizes are fixed in ClinicaDL's layers, so the decoder always rebuilds 73x89x73 voxels and the
only volume the network reconstructs is 1@73x89x73 (any 1@[73-80]x[89-96]x[73-80] volume feeds the
encoder, but only 73x89x73 comes back with its own shape, which the reconstruction loss needs):

    73 -> 37 -> 19 -> 10 -> (linear) -> 10 -> 19 -> 37 -> 73
    89 -> 45 -> 23 -> 12 -> (linear) -> 12 -> 23 -> 45 -> 89

State-dict names are ClinicaDL's: encoder.{0,1,2}.layer.{0 (conv), 1 (norm)}, encoder.4 (linear),
decoder.0 (linear), decoder.{2,3,4}.layer.{0,1}.

>>> net = build_cae_half((1, 73, 89, 73), latent_space_size=2)
>>> net.eval()(torch.zeros(1, 1, 73, 89, 73)).shape
torch.Size([1, 1, 73, 89, 73])
>>> build_cae_half((1, 21, 26, 22))
Traceback (most recent call last):
...
neuroexec.errors.NeuroexecError: architecture CAE_half reconstructs volumes of input size (1, 73, 89, 73) only (its layers are sized for 128x10x12x10 features, rebuilt into 73x89x73 voxels), got (1, 21, 26, 22); choose another reconstruction architecture (AE_Conv5_FC3) for other sizes
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuroexec.errors import NeuroexecError

INPUT_SIZE = (1, 73, 89, 73)
_CODE_SHAPE = (10, 12, 10)  # the encoder's output grid, fixed in ClinicaDL's linear layers
_ENCODER_CHANNELS = 128
_DECODER_CHANNELS = 256


class DownConv3d(nn.Module):
    """Strided convolution (no bias), batch norm, LeakyReLU 0.2: ClinicaDL's EncoderLayer3D."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.layer = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, kernel_size, stride=2, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.layer(x), negative_slope=0.2)


class UpConv3d(nn.Module):
    """Strided transposed convolution (no bias), batch norm, ReLU: ClinicaDL's DecoderLayer3D."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        super().__init__()
        self.layer = nn.Sequential(
            nn.ConvTranspose3d(in_channels, out_channels, kernel_size, stride=2, padding=1, bias=False),
            nn.BatchNorm3d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.layer(x))


class Unflatten3d(nn.Module):
    """(N, C*D*H*W) -> (N, C, D, H, W)."""

    def __init__(self, channels: int, shape: tuple[int, int, int]):
        super().__init__()
        self.channels, self.shape = channels, tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), self.channels, *self.shape)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, shape={self.shape}"


class CAEHalf(nn.Module):
    """ClinicaDL's CAE_half; forward returns the reconstruction (module docstring)."""

    architecture_name = "CAE_half"

    def __init__(self, latent_space_size: int = 128):
        super().__init__()
        features = _ENCODER_CHANNELS * _CODE_SHAPE[0] * _CODE_SHAPE[1] * _CODE_SHAPE[2]
        self.encoder = nn.Sequential(
            DownConv3d(1, 32),
            DownConv3d(32, 64),
            DownConv3d(64, _ENCODER_CHANNELS),
            nn.Flatten(),
            nn.Linear(features, latent_space_size),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_space_size, 2 * features),
            Unflatten3d(_DECODER_CHANNELS, _CODE_SHAPE),
            UpConv3d(_DECODER_CHANNELS, 128),
            UpConv3d(128, 64),
            UpConv3d(64, 1),
        )
        self.input_size = INPUT_SIZE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_cae_half(input_size: tuple[int, ...], latent_space_size: int = 128) -> CAEHalf:
    """CAE_half for `input_size`, which must be (1, 73, 89, 73); a NeuroexecError otherwise."""
    if tuple(int(s) for s in input_size) != INPUT_SIZE:
        raise NeuroexecError(
            f"architecture CAE_half reconstructs volumes of input size {INPUT_SIZE} only (its layers are "
            f"sized for 128x10x12x10 features, rebuilt into 73x89x73 voxels), got {tuple(input_size)}; "
            "choose another reconstruction architecture (AE_Conv5_FC3) for other sizes"
        )
    if int(latent_space_size) < 1:
        raise NeuroexecError(f"architecture CAE_half needs latent_space_size >= 1, got {latent_space_size}")
    return CAEHalf(int(latent_space_size))
