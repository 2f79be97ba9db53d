"""Autoencoders derived from a CNN, as ClinicaDL's `AE_<arch>`: the encoder is a copy of the CNN's
convolutions (same indices), the decoder its mirror.

For a CNN with blocks [Conv3d, BatchNorm3d, act, PadMaxPool3d] x n, the decoder is, block by
block from the deepest one:

    [CropMaxUnpool3d, ConvTranspose3d(c_out -> c_in), BatchNorm3d(c_in), act] x n

so for Conv5_FC3 the decoder's parameters sit at decoder.{1,2}, {5,6}, {9,10}, {13,14}, {17,18}
(channels 128 -> 64 -> 32 -> 16 -> 8 -> 1), exactly ClinicaDL's state-dict names. A 2D CNN (slice
mode) gives the 2D mirror as ClinicaDL's CNN_Transformer builds it, whose swap of activation and
convolution (and re-sizing of the norm) only applies to 3D layers: each block is the encoder's block
reversed,

    [CropMaxUnpool2d, act, BatchNorm2d(c_out), ConvTranspose2d(c_out -> c_in)] x n

(parameters at decoder.{2,3}, {6,7}, ... {18,19}; no activation after the last convolution). A
LeakyReLU is mirrored with the inverse slope, as ClinicaDL does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from neuroexec.errors import NeuroexecError
from neuroexec.nn.networks import CNN, PadMaxPool, PadMaxPool2d, PadMaxPool3d, build_network


class CropMaxUnpool3d(nn.Module):
    """Inverse of PadMaxPool3d: max-unpool to the padded size, then drop the front padding.

    The unpooling is a scatter of each maximum back to its index, which is what `F.max_unpool3d` computes,
    but torch ships no deterministic `max_unpool3d`: under `compute.deterministic` it would warn on every
    batch. PadMaxPool3d's windows do not overlap, so its indices are distinct and the scatter (deterministic
    in torch) gives the same numbers and gradients.
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    dims = 3

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor, pad: tuple[int, ...], padded_shape: tuple[int, ...]
    ) -> torch.Tensor:
        n, c = x.shape[:2]
        out = x.new_zeros(n, c, *padded_shape[-self.dims :])
        out.view(n, c, -1).scatter_(2, indices.reshape(n, c, -1), x.reshape(n, c, -1))
        # pad is F.pad order (last dim first): the front padding of the last dim at 0, the one before at 2...
        fronts = [pad[2 * i] for i in reversed(range(self.dims))]
        return out[(slice(None), slice(None), *(slice(f, None) for f in fronts))]

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class CropMaxUnpool2d(CropMaxUnpool3d):
    """Inverse of PadMaxPool2d (2D slices), as CropMaxUnpool3d."""

    dims = 2


# (conv, norm, pool) of a CNN's blocks and (unpool, transposed conv, norm) of its decoder, per dimension
_LAYERS = {
    3: ((nn.Conv3d, nn.BatchNorm3d, PadMaxPool3d), (CropMaxUnpool3d, nn.ConvTranspose3d, nn.BatchNorm3d)),
    2: ((nn.Conv2d, nn.BatchNorm2d, PadMaxPool2d), (CropMaxUnpool2d, nn.ConvTranspose2d, nn.BatchNorm2d)),
}


def _dims(convolutions: nn.Sequential) -> int:
    first = next(iter(convolutions), None)
    return 2 if isinstance(first, nn.Conv2d) else 3


def _blocks(convolutions: nn.Sequential) -> list[tuple[nn.Module, nn.Module, nn.Module, PadMaxPool]]:
    """Split a CNN's convolutions into (conv, norm, activation, pool) blocks, or explain why not."""
    (conv_type, norm_type, pool_type), _ = _LAYERS[_dims(convolutions)]
    layers = list(convolutions)
    if len(layers) % 4:
        raise NeuroexecError(
            f"cannot derive an autoencoder: expected blocks of 4 layers (Conv3d, BatchNorm3d, activation, "
            f"PadMaxPool3d), got {len(layers)} layers"
        )
    blocks = []
    for start in range(0, len(layers), 4):
        conv, norm, act, pool = layers[start : start + 4]
        if not (isinstance(conv, conv_type) and isinstance(norm, norm_type) and isinstance(pool, pool_type)):
            found = ", ".join(type(layer).__name__ for layer in layers[start : start + 4])
            raise NeuroexecError(
                f"cannot derive an autoencoder: block at convolutions.{start} is ({found}), expected "
                f"({conv_type.__name__}, {norm_type.__name__}, activation, {pool_type.__name__})"
            )
        blocks.append((conv, norm, act, pool))
    return blocks


def _mirror(conv: nn.Module, norm: nn.Module, act: nn.Module, pool: PadMaxPool, dims: int) -> list[nn.Module]:
    """The decoder block of one encoder block (module docstring: 3D and 2D differ, as in ClinicaDL)."""
    _, (unpool_type, transposed_type, norm_type) = _LAYERS[dims]
    unpool = unpool_type(pool.kernel_size, pool.stride)
    transposed = transposed_type(
        conv.out_channels, conv.in_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding
    )
    inverse = nn.LeakyReLU(1 / act.negative_slope) if isinstance(act, nn.LeakyReLU) else copy.deepcopy(act)
    if dims == 3:
        return [unpool, transposed, norm_type(conv.in_channels), inverse]
    return [unpool, inverse, copy.deepcopy(norm), transposed]


class AutoEncoder(nn.Module):
    """Autoencoder derived from `cnn`; `forward(x)` returns the reconstruction (same shape as x).

    >>> ae = AutoEncoder(build_network("TinyCNN", (1, 21, 26, 23), 2))
    >>> ae(torch.zeros(2, 1, 21, 26, 23)).shape
    torch.Size([2, 1, 21, 26, 23])
    >>> AutoEncoder(build_network("TinyCNN", (3, 21, 26), 2))(torch.zeros(2, 3, 21, 26)).shape
    torch.Size([2, 3, 21, 26])
    """

    def __init__(self, cnn: CNN):
        super().__init__()
        self.encoder = copy.deepcopy(cnn.convolutions)
        decoder: list[nn.Module] = []
        for block in reversed(_blocks(self.encoder)):
            decoder += _mirror(*block, dims=_dims(self.encoder))
        self.decoder = nn.Sequential(*decoder)
        base = getattr(cnn, "architecture_name", type(cnn).__name__)
        self.architecture_name = f"AE_{base}"
        self.input_size = getattr(cnn, "input_size", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code, unpool_args = self.encode(x)
        return self.decode(code, unpool_args)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple]]:
        """Latent code and, per pooling, (indices, pad, padded shape) for the decoder."""
        unpool_args = []
        for layer in self.encoder:
            if isinstance(layer, PadMaxPool):
                sizes = x.shape[-layer.dims :]
                x, indices, pad = layer.pool_with_indices(x)
                padded = tuple(size + pad[2 * (layer.dims - 1 - i)] for i, size in enumerate(sizes))
                unpool_args.append((indices, pad, padded))
            else:
                x = layer(x)
        return x, unpool_args

    def decode(self, code: torch.Tensor, unpool_args: list[tuple]) -> torch.Tensor:
        x = code
        pending = list(unpool_args)
        for layer in self.decoder:
            x = layer(x, *pending.pop()) if isinstance(layer, CropMaxUnpool3d) else layer(x)
        return x


def base_architecture(name: str) -> str:
    """'AE_Conv5_FC3' -> 'Conv5_FC3' (names without the prefix are returned as they are)."""
    return name[3:] if name.startswith("AE_") else name


def build_autoencoder(architecture: str, input_size: tuple[int, ...], dropout: float = 0.5) -> AutoEncoder:
    """The autoencoder of a CNN architecture; `architecture` may carry the `AE_` prefix.

    >>> build_autoencoder("AE_Conv4_FC3", (1, 33, 35, 31)).architecture_name
    'AE_Conv4_FC3'
    """
    return AutoEncoder(build_network(base_architecture(architecture), input_size, 1, dropout))
