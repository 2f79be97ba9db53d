"""The criterion of a model (`train.loss`): ClinicaDL's losses per task, as the training loop's batch
loss and as the per-item loss of the validation and results tables (a top-level module, as metrics.py:
training, evaluation.py and the spec's checks all read it).

ClinicaDL applies the loss to (outputs, labels) for classification, to (outputs, targets of shape [B, 1])
for regression and to (reconstruction, input) for autoencoders, every reduction a mean. The batch loss
here is that mean; the per-item loss is the same formula reduced over each item only, so that the mean
over the items (what the `loss` column holds) is the mean ClinicaDL's criterion takes over a batch.

The VAE losses (VAEGaussianLoss, VAEBernoulliLoss, VAEContinuousBernoulliLoss) belong to the VAEs
(`neuroexec/nn/vae_losses.py`): their training loss is the network's own (`training_loss`, see
`training.loop.Trainer.batch_loss`), and so is their per-item evaluation loss (`evaluation_losses`, read
by `evaluation.collect`); `vae_item_losses` is what a VAE loss name gives a network without one.

    >>> outputs, labels = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 0])
    >>> item_losses("classification", "MultiMarginLoss", outputs, labels, outputs).tolist()
    [0.0, 1.5]
    >>> refusal("regression", "CrossEntropyLoss")
    "'CrossEntropyLoss' is not a regression loss; expected one of L1Loss, MSELoss, KLDivLoss, BCEWithLogitsLoss, HuberLoss, SmoothL1Loss"
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from neuroexec.errors import NeuroexecError

# torch.nn's elementwise losses with their functional form (default arguments: nn.HuberLoss's delta 1,
# nn.SmoothL1Loss's beta 1, nn.KLDivLoss's log_target False), as ClinicaDL builds them: `nn.<name>()`.
_ELEMENTWISE: dict[str, Callable[..., torch.Tensor]] = {
    "L1Loss": F.l1_loss,
    "MSELoss": F.mse_loss,
    "KLDivLoss": F.kl_div,
    "BCEWithLogitsLoss": F.binary_cross_entropy_with_logits,
    "HuberLoss": F.huber_loss,
    "SmoothL1Loss": F.smooth_l1_loss,
}
VAE_LOSSES = ("VAEGaussianLoss", "VAEBernoulliLoss", "VAEContinuousBernoulliLoss")
CLASSIFICATION_LOSSES = ("CrossEntropyLoss", "MultiMarginLoss")
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_LOSSES,
    "regression": tuple(_ELEMENTWISE),
    "reconstruction": (*_ELEMENTWISE, *VAE_LOSSES),
}
DEFAULT_LOSS = {"classification": "CrossEntropyLoss", "regression": "MSELoss", "reconstruction": "MSELoss"}


def loss_of(task: str, name: str | None) -> str:
    """The loss a model trains with: `train.loss`, or its task's default (ClinicaDL's).

    >>> loss_of("regression", None), loss_of("classification", "MultiMarginLoss")
    ('MSELoss', 'MultiMarginLoss')
    """
    return name if name is not None else DEFAULT_LOSS[task]


def recorded_loss(task: str, name: object) -> str | None:
    """The loss a MAPS was trained with, from its maps.json's `loss` (ClinicaDL's predict computes its
    loss with it): None (the task's default) when it names none of the task's.

    >>> recorded_loss("regression", "L1Loss"), recorded_loss("regression", "CrossEntropyLoss")
    ('L1Loss', None)
    """
    return name if isinstance(name, str) and name in TASK_LOSSES.get(task, ()) else None


def refusal(task: str, name: str | None) -> str | None:
    """Why `name` cannot be the loss of a `task` model (ClinicaDL's per-task lists), or None."""
    if name is None or name in TASK_LOSSES.get(task, ()):
        return None
    return f"{name!r} is not a {task} loss; expected one of {', '.join(TASK_LOSSES[task])}"


def batch_loss(
    task: str, name: str | None, outputs: torch.Tensor, labels: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """The mean loss of a training batch (what is back-propagated). The classification and regression
    defaults keep torch's fused criteria; the reconstruction default's fused kernel (ops.recon_loss,
    Triton on the GPU) is training.loop.task_loss's (this module imports no kernel: the spec's checks
    read it)."""
    name = loss_of(task, name)
    if name in VAE_LOSSES:  # a VAE's forward gives its loss the mean and log-variance too
        raise NeuroexecError(f"train.loss = {name!r} is a VAE's loss: train it with a VAE architecture")
    if name == DEFAULT_LOSS[task] and task == "classification":
        return F.cross_entropy(outputs.float(), labels)
    if name == DEFAULT_LOSS[task] and task == "regression":
        return F.mse_loss(outputs[:, 0].float(), labels.float())
    return item_losses(task, name, outputs, labels, images).mean()


def item_losses(
    task: str, name: str | None, outputs: torch.Tensor, labels: torch.Tensor, images: torch.Tensor
) -> torch.Tensor:
    """The loss of each item of a batch [B] (float32; with gradients when `outputs` has them): the
    criterion on the item, its elements averaged."""
    name = loss_of(task, name)
    outputs = outputs.float()
    if task == "classification":
        if name == "MultiMarginLoss":
            return F.multi_margin_loss(outputs, labels, reduction="none")
        if name == "CrossEntropyLoss":
            return F.cross_entropy(outputs, labels, reduction="none")
    elif name in VAE_LOSSES:
        return vae_item_losses(name, outputs, images)
    elif name in _ELEMENTWISE:
        target = labels.float().reshape(-1, 1) if task == "regression" else images.float()
        predicted = outputs[:, :1] if task == "regression" else outputs
        return _ELEMENTWISE[name](predicted, target, reduction="none").flatten(1).mean(dim=1)
    raise NeuroexecError(f"train.loss: {refusal(task, name) or f'unknown loss {name!r}'}")


def vae_item_losses(name: str, reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Seam for engineer C's VAE losses (nn/vae_losses.py): the per-item validation loss of a VAE
    trained with `name`. In eval mode a VAE returns its reconstruction only (no mean nor log-variance),
    so until the VAE losses say otherwise this is the reconstruction's mean squared error per item
    (what neuroexec logged for every autoencoder before train.loss existed)."""
    del name
    return (reconstruction.float() - images.float()).pow(2).flatten(1).mean(dim=1)
