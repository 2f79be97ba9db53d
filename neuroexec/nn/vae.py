"""Variational autoencoders: what every VAE does (the latent sample, the losses, train and eval
outputs), and ClinicaDL 1.6.1's three convolutional VAEs CVAE_3D, CVAE_3D_half and
CVAE_3D_final_conv (its Vanilla ones: nn/vanilla_vae.py), with ClinicaDL's state-dict names.

In train mode a VAE returns (reconstruction, mu, logvar), the reconstruction decoded from a sample
z = mu + eps * exp(logvar / 2) of the latent; `training_loss` turns that into ClinicaDL's batch loss
(Trainer.batch_loss calls it). In eval mode it returns the reconstruction decoded from mu, with no
sampling: what ClinicaDL's CVAEs predict (its Vanilla VAEs sample there too, which no prediction
should). eps is drawn from torch's global generator in the training process (never in a loader
worker), which training/resume.py saves with each epoch and restores on a resume, as dropout's.

>>> net = CVAE3DHalf((1, 32, 40, 32), latent_space_size=2)
>>> net.eval()(torch.zeros(1, 1, 32, 40, 32)).shape
torch.Size([1, 1, 32, 40, 32])
>>> recon, mu, logvar = net.train()(torch.zeros(2, 1, 32, 40, 32))
>>> mu.shape, net.training_loss((recon, mu, logvar), torch.zeros(2, 1, 32, 40, 32), None)[1].ndim
(torch.Size([2, 2]), 0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neuroexec.errors import NeuroexecError
from neuroexec.nn.vae_losses import DEFAULT_LOSS, GAUSSIAN, VAE_LOSSES, batch_terms, sample_terms

Terms = tuple[torch.Tensor, ...]


class VAE(nn.Module):
    """What the VAEs share; a subclass gives `encode` (x -> mu, logvar), `decode` and `weigh`."""

    architecture_name = "VAE"
    shared_noise = (
        False  # ClinicaDL's CVAEs draw one eps for the whole batch, its Vanilla VAEs one per sample
    )

    def __init__(self, recons_weight: float = 1.0, kl_weight: float = 1.0):
        super().__init__()
        self.recons_weight, self.kl_weight = float(recons_weight), float(kl_weight)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weigh(self, terms: Terms) -> torch.Tensor:
        """The loss from its terms (ClinicaDL's order, nn/vae_losses.py): recons_weight x the first,
        kl_weight x the second, plus the third (the continuous Bernoulli's log constant)."""
        total = self.recons_weight * terms[0] + self.kl_weight * terms[1]
        return total + terms[2] if len(terms) > 2 else total

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        std = torch.exp(0.5 * logvar)
        shape = std.shape[1:] if self.shared_noise else std.shape
        return mu + torch.randn(shape, dtype=std.dtype, device=std.device) * std

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encode(x)
        if not self.training:
            return self.decode(mu)
        return self.decode(self.sample(mu, logvar)), mu, logvar

    # --- losses ----------------------------------------------------------------------------------
    def loss_of(self, loss_name: str | None) -> str:
        """The VAE loss train.loss names (None: VAEGaussianLoss)."""
        if loss_name is None:
            return DEFAULT_LOSS
        if loss_name not in VAE_LOSSES:  # spec/checks.py refuses it first; a direct call lands here
            raise NeuroexecError(
                f"train.loss: {self.architecture_name} trains with {', '.join(VAE_LOSSES)}, not {loss_name}"
            )
        return loss_name

    def loss_terms(self, loss_name: str | None, images, reconstruction, mu, logvar, batch: bool) -> Terms:
        """The terms of the loss: ClinicaDL's batch values, or per sample."""
        name = self.loss_of(loss_name)
        terms = sample_terms(name, images, reconstruction, mu, logvar)
        return batch_terms(terms, name) if batch else terms

    def training_loss(
        self, raw, images: torch.Tensor, loss_name: str | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, ClinicaDL's loss of the batch) from the train-mode output `raw`."""
        reconstruction, mu, logvar = raw
        terms = self.loss_terms(loss_name, images, reconstruction, mu, logvar, batch=True)
        return reconstruction, self.weigh(terms)

    def item_losses(self, raw, images: torch.Tensor, loss_name: str | None) -> torch.Tensor:
        """Per-sample loss of a training batch (the train-mode output `raw`), each sample's as
        ClinicaDL gives it for a batch of that sample alone."""
        reconstruction, mu, logvar = raw
        terms = self.loss_terms(loss_name, images, reconstruction, mu, logvar, batch=False)
        return self.weigh(terms).detach().float()

    def evaluation_losses(
        self, images: torch.Tensor, outputs: torch.Tensor, loss_name: str | None
    ) -> torch.Tensor:
        """Per-sample loss of an eval pass (`outputs`: the reconstructions from mu): each sample's
        loss as ClinicaDL gives it for a batch of that sample alone (the latent is encoded again).
        A loss that is no VAE loss (a maps.json of ClinicaDL's writes its task default, MSELoss,
        which cannot have trained the VAE) reads as VAEGaussianLoss."""
        mu, logvar = self.encode(images)
        name = loss_name if loss_name in VAE_LOSSES else None
        terms = self.loss_terms(name, images, outputs, mu, logvar, batch=False)
        return self.weigh(terms).detach().float()


def require_size(name: str, input_size: Sequence[int], allowed: dict[tuple[int, ...], str], why: str) -> None:
    """A NeuroexecError unless `input_size` is one of `allowed` (size -> how it is obtained)."""
    if tuple(input_size) in allowed:
        return
    sizes = " or ".join(f"{fmt(size)}{f' ({how})' if how else ''}" for size, how in allowed.items())
    raise NeuroexecError(f"architecture {name} reads inputs of {sizes} only ({why}), not {fmt(input_size)}")


def fmt(size: Sequence[int]) -> str:
    """ClinicaDL's way of writing a size: 1@169x208x179."""
    return f"{size[0]}@{'x'.join(str(s) for s in size[1:])}"


# ClinicaDL's size reduction of the cropped t1-linear image (169x208x179), by factor
REDUCED = {
    (1, 80, 96, 80): "size_reduction_factor 2",
    (1, 56, 64, 56): "size_reduction_factor 3",
    (1, 40, 48, 40): "size_reduction_factor 4",
    (1, 32, 40, 32): "size_reduction_factor 5",
}
T1_LINEAR = (1, 169, 208, 179)


class _CVAE(VAE):
    """ClinicaDL's CVAEs: three stride-2 convolutions (32, 64, 128 channels, each side -> ceil(side/2)),
    a dense latent (mu through tanh), a dense layer back to 256 channels, three transposed
    convolutions. Attribute names and order are ClinicaDL's (bn4 and bn7 are unused there too)."""

    shared_noise = True

    def __init__(self, deep: Sequence[int], latent: int, paddings, recons_weight=1.0, kl_weight=1.0):
        super().__init__(recons_weight, kl_weight)
        self.deep = tuple(deep)  # the sides after the encoder
        features = 128 * self.deep[0] * self.deep[1] * self.deep[2]
        self.conv1 = nn.Conv3d(1, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv3d(32, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv3d(64, 128, 3, stride=2, padding=1)
        self.encoder_norms()
        self.fc10 = nn.Linear(features, latent)
        self.fc11 = nn.Linear(features, latent)
        self.fc2 = nn.Linear(latent, 2 * features)
        self.upconv1 = nn.ConvTranspose3d(256, 128, 3, stride=2, padding=1, output_padding=paddings[0])
        self.upconv2 = nn.ConvTranspose3d(128, 64, 3, stride=2, padding=1, output_padding=paddings[1])
        self.upconv4 = nn.ConvTranspose3d(64, 1, 3, stride=2, padding=1, output_padding=paddings[2])
        self.decoder_norms()

    def encoder_norms(self) -> None:
        self.bn1, self.bn2, self.bn3, self.bn4 = (nn.BatchNorm3d(c) for c in (32, 64, 128, 128))

    def decoder_norms(self) -> None:
        self.bn5, self.bn6, self.bn7 = (nn.BatchNorm3d(c) for c in (128, 64, 32))

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, negative_slope=0.2)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.activation(self.bn1(self.conv1(x)))
        h = self.activation(self.bn2(self.conv2(h)))
        h = self.activation(self.bn3(self.conv3(h))).flatten(1)
        return torch.tanh(self.fc10(h)), self.fc11(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc2(z)).reshape(z.shape[0], 256, *self.deep)
        h = F.relu(self.bn5(self.upconv1(h)))
        h = F.relu(self.bn6(self.upconv2(h)))
        return self.output(self.upconv4(h))

    def sample(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu if self.kl_weight == 0 else super().sample(mu, logvar)  # kl_weight 0: an autoencoder

    def weigh(self, terms: Terms) -> torch.Tensor:
        """ClinicaDL's CVAEs weigh the KL only, unless the loss has a third term: then both."""
        if len(terms) > 2:
            return self.recons_weight * terms[0] + self.kl_weight * terms[1] + terms[2]
        return terms[0] + self.kl_weight * terms[1]


class CVAE3D(_CVAE):
    """ClinicaDL's CVAE_3D: 1@169x208x179 images only, ReLU activations and output, and a loss of its
    own whatever train.loss says: squared error + 5 KL, both averaged over the batch."""

    architecture_name = "CVAE_3D"

    def __init__(self, input_size: Sequence[int], latent_space_size: int = 128):
        why = "ClinicaDL sizes its layers for the cropped t1-linear image"
        require_size(self.architecture_name, input_size, {T1_LINEAR: ""}, why)
        super().__init__((22, 26, 23), latent_space_size, ((0, 1, 0), (0, 1, 1), (0, 1, 0)), kl_weight=5.0)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    output = activation

    def loss_terms(self, loss_name, images, reconstruction, mu, logvar, batch: bool) -> Terms:
        terms = sample_terms(GAUSSIAN, images, reconstruction, mu, logvar)
        return tuple(t.mean() for t in terms) if batch else terms


class CVAE3DHalf(_CVAE):
    """ClinicaDL's CVAE_3D_half: images reduced by size_reduction_factor 2 to 5; leaky ReLUs in the
    encoder, a sigmoid output."""

    architecture_name = "CVAE_3D_half"

    def __init__(self, input_size, latent_space_size: int = 128, recons_weight=1.0, kl_weight=1.0):
        why = "ClinicaDL sizes its layers by size_reduction_factor"
        require_size(self.architecture_name, input_size, REDUCED, why)
        deep = [s // 8 for s in input_size[1:]]
        super().__init__(deep, latent_space_size, (1, 1, 1), recons_weight, kl_weight)


class CVAE3DFinalConv(CVAE3DHalf):
    """ClinicaDL's CVAE_3D_final_conv: CVAE_3D_half with instance norms (no parameters: in1-3,
    in5-7), leaky ReLUs (slope 0.01) in the decoder and a last 3x3x3 convolution before the sigmoid."""

    architecture_name = "CVAE_3D_final_conv"

    def encoder_norms(self) -> None:
        self.in1, self.in2, self.in3 = (nn.InstanceNorm3d(c) for c in (32, 64, 128))

    def decoder_norms(self) -> None:
        self.final = nn.Conv3d(1, 1, 3, stride=1, padding=1)
        self.in5, self.in6, self.in7 = (nn.InstanceNorm3d(c) for c in (128, 64, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.activation(self.in1(self.conv1(x)))
        h = self.activation(self.in2(self.conv2(h)))
        h = self.activation(self.in3(self.conv3(h))).flatten(1)
        return torch.tanh(self.fc10(h)), self.fc11(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.fc2(z)).reshape(z.shape[0], 256, *self.deep)
        h = F.leaky_relu(self.in5(self.upconv1(h)))
        h = F.leaky_relu(self.in6(self.upconv2(h)))
        h = F.leaky_relu(self.in7(self.upconv4(h)))
        return torch.sigmoid(self.final(h))
