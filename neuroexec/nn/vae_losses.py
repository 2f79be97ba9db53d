"""ClinicaDL 1.6.1's VAE losses (`train.loss` = VAEGaussianLoss, VAEBernoulliLoss or
VAEContinuousBernoulliLoss) and which networks may take them.

Each loss gives its terms per sample (shape (B,)): the reconstruction error summed over the voxels
(squared error or binary cross-entropy), the KL divergence of N(mu, exp(logvar)) from N(0, 1)

    KL = 0.5 * sum(-1 - logvar + mu^2 + exp(logvar))

and, for the continuous Bernoulli, the sum of the log normalising constants log C(reconstruction).
ClinicaDL's batch value adds the reconstruction terms up over the batch and averages the KL
(`batch_terms`); a sample's value is the batch value of a batch of that sample alone.

Terms come in ClinicaDL's order, which the networks weigh by position: (reconstruction, KL) for the
Gaussian and the Bernoulli, but (KL, reconstruction, log C) for the continuous Bernoulli, as
ClinicaDL's VAEContinuousBernoulliLoss returns them (so there `recons_weight` weighs the KL).

>>> mu, logvar = torch.zeros(2, 3), torch.zeros(2, 3)
>>> images = torch.full((2, 1, 2, 2), 0.5)
>>> [t.tolist() for t in sample_terms("VAEGaussianLoss", images, images + 0.5, mu, logvar)]
[[1.0, 1.0], [0.0, 0.0]]
>>> check_loss("AE_Conv5_FC3", "VAEGaussianLoss", known={"AE_Conv5_FC3"})
'VAEGaussianLoss is a VAE loss (it needs the latent mean and variance): AE_Conv5_FC3 is not a VAE; choose a reconstruction loss such as MSELoss, or a VAE architecture'
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch
import torch.nn.functional as F

GAUSSIAN, BERNOULLI, CONTINUOUS = "VAEGaussianLoss", "VAEBernoulliLoss", "VAEContinuousBernoulliLoss"
VAE_LOSSES = (GAUSSIAN, BERNOULLI, CONTINUOUS)
DEFAULT_LOSS = GAUSSIAN  # ClinicaDL's default (MSELoss) cannot train a VAE: its squared-error one

# The VAEs (nn/vae.py, nn/vanilla_vae.py) and the one that trains with a loss of its own (ClinicaDL's
# CVAE_3D: squared error + 5 KL, whatever train.loss names)
VAE_ARCHITECTURES = frozenset(
    {
        "CVAE_3D",
        "CVAE_3D_half",
        "CVAE_3D_final_conv",
        "VanillaDenseVAE",
        "VanillaSpatialVAE",
        "Vanilla3DdenseVAE",
        "Vanilla3DspacialVAE",
    }
)
OWN_LOSS = frozenset({"CVAE_3D"})


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL divergence of N(mu, exp(logvar)) from N(0, 1)."""
    return 0.5 * (-1 - logvar + mu.pow(2) + logvar.exp()).flatten(1).sum(dim=1)


def log_constant(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample sum of log C(x), the continuous Bernoulli's normalising constant, for x in (0, 1):

        log C(x) = log((log(1 - x) - log(x)) / (1 - 2x))      away from 1/2
                 = log 2 + log(1 + (1 - 2x)^2 / 3)             within eps of 1/2 (Taylor, degree 2)

    x is clamped to [eps, 1 - eps] first, as ClinicaDL's sumlogC does.
    """
    x = torch.clamp(x, eps, 1.0 - eps)
    far = (x - 0.5).abs() >= eps
    safe = torch.where(far, x, torch.full_like(x, 0.25))  # no 0/0 in the branch not taken (its gradient)
    far_values = torch.log((torch.log1p(-safe) - torch.log(safe)) / (1.0 - 2.0 * safe))
    close_values = math.log(2.0) + torch.log(1.0 + (1.0 - 2.0 * x).pow(2) / 3.0)
    return torch.where(far, far_values, close_values).flatten(1).sum(dim=1)


def sample_terms(
    name: str, images: torch.Tensor, reconstruction: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """The loss `name`'s terms per sample, in ClinicaDL's order (module docstring), in float32 at
    least and outside autocast (binary cross-entropy is unsafe in half precision: CUDA's autocast
    refuses it)."""
    with torch.autocast(reconstruction.device.type, enabled=False):
        return _terms(name, images, reconstruction, mu, logvar)


def _terms(name: str, images, reconstruction, mu, logvar) -> tuple[torch.Tensor, ...]:
    dtype = torch.promote_types(reconstruction.dtype, torch.float32)
    images, reconstruction = images.to(dtype), reconstruction.to(dtype)
    kl = kl_divergence(mu.to(dtype), logvar.to(dtype))
    if name == GAUSSIAN:
        return (reconstruction - images).pow(2).flatten(1).sum(dim=1), kl
    bce = F.binary_cross_entropy(reconstruction, images, reduction="none").flatten(1).sum(dim=1)
    if name == BERNOULLI:
        return bce, kl
    if name == CONTINUOUS:
        return kl, bce, log_constant(reconstruction)
    raise ValueError(f"unknown VAE loss {name!r}; expected one of {', '.join(VAE_LOSSES)}")


def batch_terms(per_sample: tuple[torch.Tensor, ...], name: str) -> tuple[torch.Tensor, ...]:
    """ClinicaDL's batch values of the terms: sums over the batch, the KL averaged."""
    kl_index = 0 if name == CONTINUOUS else 1
    return tuple(t.mean() if i == kl_index else t.sum() for i, t in enumerate(per_sample))


def default_loss(architecture: str) -> str | None:
    """The loss a VAE trains with when train.loss is not set (None for another network, and for
    CVAE_3D, whose own loss makes train.loss moot: ClinicaDL's task default stands).

    >>> default_loss("VanillaDenseVAE"), default_loss("CVAE_3D"), default_loss("Conv5_FC3")
    ('VAEGaussianLoss', None, None)
    """
    return DEFAULT_LOSS if architecture in VAE_ARCHITECTURES - OWN_LOSS else None


def check_loss(architecture: str, loss: str | None, known: Collection[str] = ()) -> str | None:
    """Why `train.loss` = `loss` cannot train `architecture` (a sentence), or None. `known`: the
    names of the networks neuroexec builds (a name outside them may be a network of the user's: only
    its VAE-ness is unknown, so a VAE loss is left to it). As in ClinicaDL, a VAE loss needs a VAE
    (another network has no latent to give it), and a VAE other than CVAE_3D needs a VAE loss
    (ClinicaDL calls the loss with the latent).

    >>> check_loss("VanillaDenseVAE", "MSELoss")
    'VanillaDenseVAE is a VAE: train.loss must be one of VAEGaussianLoss, VAEBernoulliLoss, VAEContinuousBernoulliLoss (or left out for VAEGaussianLoss), not MSELoss'
    >>> check_loss("CVAE_3D", "MSELoss") is None  # trains with its own loss, as in ClinicaDL
    True
    """
    vae = architecture in VAE_ARCHITECTURES
    if loss is None or architecture in OWN_LOSS:
        return None
    if loss in VAE_LOSSES and not vae and architecture in known:
        return (
            f"{loss} is a VAE loss (it needs the latent mean and variance): {architecture} is not a VAE; "
            "choose a reconstruction loss such as MSELoss, or a VAE architecture"
        )
    if vae and loss not in VAE_LOSSES:
        return (
            f"{architecture} is a VAE: train.loss must be one of {', '.join(VAE_LOSSES)} "
            f"(or left out for {DEFAULT_LOSS}), not {loss}"
        )
    return None
