"""ClinicaDL 1.6.1's Vanilla VAEs, with its state-dict names: encoder, mu_layer, var_layer, decoder.

- VanillaDenseVAE (2D slices): four encoder blocks (32 to 256 channels), a dense feature layer
  (`feature_size`) and a dense latent (`latent_space_size`); each side at least 16.
- VanillaSpatialVAE (2D): the same blocks, a 64-channel feature map and a one-channel spatial latent.
- Vanilla3DdenseVAE (3D): `n_conv` blocks from `io_layer_channels` channels, a dense feature layer
  (none when feature_size is 0) and a dense latent; images reduced by size_reduction_factor, as
  ClinicaDL sizes it.
- Vanilla3DspacialVAE (3D): four blocks and a fifth stride-2 convolution to 512 channels, a
  one-channel spatial latent; each side at least 32.

The loss weighs its reconstruction term by recons_weight and its KL by kl_weight (nn/vae.py).

ClinicaDL 1.6.1 cannot build three of them (VanillaDenseVAE and VanillaSpatialVAE pass its 2D
encoder an argument it does not take, and that encoder gives Conv2d an output padding;
Vanilla3DspacialVAE reads a fourth decoder padding from a list of three). neuroexec builds the
modules their code lays out; Vanilla3DspacialVAE's hard-coded paddings are the ones that give back
the 169x208x179 t1-linear image, which neuroexec computes for any size (nn/vae_layers.py).

>>> net = VanillaDenseVAE((1, 26, 22), latent_space_size=4, feature_size=8).eval()
>>> net(torch.zeros(3, 1, 26, 22)).shape
torch.Size([3, 1, 26, 22])
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

from neuroexec.errors import NeuroexecError
from neuroexec.nn.vae import CVAE3D, REDUCED, VAE, CVAE3DFinalConv, CVAE3DHalf, fmt, require_size
from neuroexec.nn.vae_layers import Flatten, Sequential2D, Unflatten, conv_decoder, conv_encoder, halvings

N_CONV, IO_CHANNELS = 4, 32  # ClinicaDL's fixed values for all but Vanilla3DdenseVAE


def require_sides(name: str, input_size: Sequence[int], dims: int, minimum: int) -> None:
    """A NeuroexecError unless `input_size` is (C, side x dims) with every side >= `minimum`."""
    if len(input_size) != dims + 1:
        kind = "2D slices (mode = 'slice')" if dims == 2 else "3D volumes"
        raise NeuroexecError(f"architecture {name} reads {kind}, not inputs of {fmt(input_size)}")
    if min(input_size[1:]) < minimum:
        raise NeuroexecError(
            f"architecture {name} halves each side of its input {minimum.bit_length() - 1} times: every "
            f"side must be at least {minimum}, not {fmt(input_size)}"
        )


class VanillaVAE(VAE):
    """ClinicaDL's BaseVAE: an encoder, the mu and log-variance layers, a decoder."""

    def __init__(self, encoder, mu_layer, var_layer, decoder, recons_weight=1.0, kl_weight=1.0):
        super().__init__(recons_weight, kl_weight)
        self.encoder, self.mu_layer, self.var_layer, self.decoder = encoder, mu_layer, var_layer, decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.mu_layer(h), self.var_layer(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


def _dense_head(latent: int, feature_size: int, n_pix: int) -> nn.Sequential:
    """The decoder's dense layers: latent -> feature_size -> n_pix (latent -> n_pix without features)."""
    if feature_size == 0:
        return nn.Sequential(nn.Linear(latent, n_pix), nn.ReLU())
    return nn.Sequential(
        nn.Linear(latent, feature_size), nn.ReLU(), nn.Linear(feature_size, n_pix), nn.ReLU()
    )


class VanillaDenseVAE(VanillaVAE):
    architecture_name = "VanillaDenseVAE"

    def __init__(
        self, input_size, latent_space_size=128, feature_size=1024, recons_weight=1.0, kl_weight=1.0
    ):
        require_sides(self.architecture_name, input_size, 2, 2**N_CONV)
        if feature_size < 1:
            raise NeuroexecError(
                f"architecture_options.feature_size: {self.architecture_name} needs dense features "
                f"(feature_size >= 1, not {feature_size}); only Vanilla3DdenseVAE takes 0"
            )
        channels, deep_channels = input_size[0], IO_CHANNELS * 2 ** (N_CONV - 1)
        paddings, deep = halvings(input_size[1:], N_CONV)
        n_pix = deep_channels * deep[0] * deep[1]
        head = nn.Sequential(Flatten(), nn.Linear(n_pix, feature_size), nn.ReLU())
        encoder = Sequential2D([*conv_encoder(2, channels, IO_CHANNELS, N_CONV), head])
        tail = nn.Sequential(
            *_dense_head(latent_space_size, feature_size, n_pix), Unflatten(deep_channels, *deep)
        )
        tail.append(nn.ReLU())
        decoder = Sequential2D([tail, *conv_decoder(2, channels, IO_CHANNELS, paddings)])
        mu, var = (nn.Linear(feature_size, latent_space_size) for _ in range(2))
        super().__init__(encoder, mu, var, decoder, recons_weight, kl_weight)


class VanillaSpatialVAE(VanillaVAE):
    architecture_name = "VanillaSpatialVAE"
    feature_channels, latent_channels = 64, 1

    def __init__(self, input_size, recons_weight=1.0, kl_weight=1.0):
        require_sides(self.architecture_name, input_size, 2, 2**N_CONV)
        channels, deep_channels = input_size[0], IO_CHANNELS * 2 ** (N_CONV - 1)
        f, z = self.feature_channels, self.latent_channels
        paddings, _deep = halvings(input_size[1:], N_CONV)
        head = nn.Sequential(nn.Conv2d(deep_channels, f, 3, stride=1, padding=1, bias=False), nn.ReLU())
        encoder = Sequential2D([*conv_encoder(2, channels, IO_CHANNELS, N_CONV), head])
        tail = nn.Sequential(
            nn.ConvTranspose2d(z, f, 3, stride=1, padding=1, bias=False),
            nn.ReLU(),
            nn.ConvTranspose2d(f, deep_channels, 3, stride=1, padding=1, bias=False),
            nn.ReLU(),
        )
        decoder = Sequential2D([tail, *conv_decoder(2, channels, IO_CHANNELS, paddings)])
        mu, var = (nn.Conv2d(f, z, 3, stride=1, padding=1, bias=False) for _ in range(2))
        super().__init__(encoder, mu, var, decoder, recons_weight, kl_weight)


class Vanilla3DdenseVAE(VanillaVAE):
    architecture_name = "Vanilla3DdenseVAE"

    def __init__(
        self,
        input_size,
        latent_space_size=128,
        feature_size=1024,
        n_conv=4,
        io_layer_channels=8,
        recons_weight=1.0,
        kl_weight=1.0,
    ):
        require_size(
            self.architecture_name, input_size, REDUCED, "ClinicaDL sizes it by size_reduction_factor"
        )
        require_sides(self.architecture_name, input_size, 3, 2**n_conv)
        io, deep_channels = io_layer_channels, io_layer_channels * 2 ** (n_conv - 1)
        paddings, deep = halvings(input_size[1:], n_conv)
        n_pix = deep_channels * deep[0] * deep[1] * deep[2]
        encoder = nn.Sequential(*conv_encoder(3, 1, io, n_conv), Flatten())
        if feature_size:
            encoder.append(nn.Sequential(nn.Linear(n_pix, feature_size), nn.ReLU()))
        tail = [_dense_head(latent_space_size, feature_size, n_pix), Unflatten(deep_channels, *deep)]
        decoder = nn.Sequential(*tail, *conv_decoder(3, 1, io, paddings))
        mu, var = (nn.Linear(feature_size or n_pix, latent_space_size) for _ in range(2))
        super().__init__(encoder, mu, var, decoder, recons_weight, kl_weight)


class Vanilla3DspacialVAE(VanillaVAE):
    architecture_name = "Vanilla3DspacialVAE"
    feature_channels, latent_channels = 512, 1

    def __init__(self, input_size, recons_weight=1.0, kl_weight=1.0):
        require_sides(self.architecture_name, input_size, 3, 2 ** (N_CONV + 1))
        channels, deep_channels = input_size[0], IO_CHANNELS * 2 ** (N_CONV - 1)
        f, z = self.feature_channels, self.latent_channels
        paddings, _deep = halvings(input_size[1:], N_CONV + 1)  # the blocks', then the fifth convolution's
        head = nn.Sequential(nn.Conv3d(deep_channels, f, 4, stride=2, padding=1, bias=False), nn.ReLU())
        encoder = nn.Sequential(*conv_encoder(3, channels, IO_CHANNELS, N_CONV), head)
        tail = nn.Sequential(
            nn.ConvTranspose3d(z, f, 3, stride=1, padding=1, bias=False),
            nn.ReLU(),
            nn.ConvTranspose3d(
                f, deep_channels, 4, stride=2, padding=1, output_padding=paddings[-1], bias=False
            ),
            nn.ReLU(),
        )
        decoder = nn.Sequential(tail, *conv_decoder(3, channels, IO_CHANNELS, paddings[:-1]))
        mu, var = (nn.Conv3d(f, z, 3, stride=1, padding=1, bias=False) for _ in range(2))
        super().__init__(encoder, mu, var, decoder, recons_weight, kl_weight)


# Every VAE neuroexec builds, for nn/registry.py: (class, spatial dimensions, description)
VAE_FAMILY: tuple[tuple[type[VAE], tuple[int, ...], str], ...] = (
    (CVAE3D, (3,), "ClinicaDL's convolutional VAE, 1@169x208x179 only; its own loss (squared error + 5 KL)"),
    (CVAE3DHalf, (3,), "ClinicaDL's convolutional VAE for images reduced by size_reduction_factor"),
    (CVAE3DFinalConv, (3,), "CVAE_3D_half with instance norms and a final convolution"),
    (VanillaDenseVAE, (2,), "ClinicaDL's 2D VAE with a dense latent (latent_space_size, feature_size)"),
    (VanillaSpatialVAE, (2,), "ClinicaDL's 2D VAE with a one-channel spatial latent"),
    (
        Vanilla3DdenseVAE,
        (3,),
        "ClinicaDL's 3D VAE with a dense latent (n_conv, io_layer_channels, "
        "latent_space_size, feature_size), for images reduced by size_reduction_factor",
    ),  # fmt: skip
    (Vanilla3DspacialVAE, (3,), "ClinicaDL's 3D VAE with a one-channel spatial latent (sides >= 32)"),
)


def vae_builder(cls: type[VAE]):
    """The registry builder of `cls`: the [Architecture] options its constructor takes, by name (as
    ClinicaDL passes a network the parameters its __init__ names); dropout and the rest unused."""
    names = set(inspect.signature(cls).parameters) - {"input_size"}

    def build(input_size, _output_size, _dropout, **options) -> VAE:
        return cls(tuple(input_size), **{k: v for k, v in options.items() if k in names})

    # Its signature names the options it reads (the spec's checks refuse the others: spec/architecture_checks.py).
    params = list(inspect.signature(build).parameters.values())
    named = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in sorted(names)]
    build.__signature__ = inspect.Signature([*params[:3], *named, params[3]])
    return build
