"""Per-sample saliency of a batch: vanilla gradients, SmoothGrad and Grad-CAM.

The model is in eval mode (BatchNorm uses running statistics, dropout is off), so each sample's output
depends on that sample only and the gradient of `out[:, target].sum()` w.r.t. the batch is the stack of
per-sample gradients. Every function returns the raw maps [B, C, X, Y, Z] (aggregation, |.| and
normalisation happen in ops.saliency_accumulate) and the clean outputs of the batch [B, n_outputs].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuroexec.errors import InputError

METHODS = ("gradients", "smoothgrad", "grad-cam")


def resolve_target(
    target: str | None, target_node: int, task: str, label_code: dict | None, output_size: int
) -> tuple[int, str | None]:
    """(output node, class name) explained: `target` class name via label_code, else `target_node`;
    regression models always explain node 0.

    >>> resolve_target("AD", 0, "classification", {"AD": 0, "CN": 1}, 2)
    (0, 'AD')
    """
    if task == "regression":
        return 0, None
    if target is not None:
        code = {str(k): int(v) for k, v in (label_code or {}).items()}
        if target not in code:
            known = ", ".join(sorted(code)) or "none recorded in maps.json"
            raise InputError(
                None, f"unknown target class {target!r}; the model's classes are: {known}", "target"
            )
        return code[target], target
    if not 0 <= target_node < output_size:
        raise InputError(
            None,
            f"target_node {target_node} is out of range: the model has {output_size} outputs",
            "target_node",
        )
    name = next((str(k) for k, v in (label_code or {}).items() if int(v) == target_node), None)
    return int(target_node), name


def gradients(model: nn.Module, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """d out[target] / d x per sample, and the outputs."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        (grads,) = torch.autograd.grad(out[:, target].sum(), x)
    return grads, out.detach()


def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    samples: int,
    noise: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean gradient over `samples` noisy copies; noise std = `noise` * (max - min) of each image.
    The outputs returned are those of the clean images (used for keep_true)."""
    with torch.no_grad():
        out = model(x)
    flat = x.detach().flatten(1)
    sigma = (noise * (flat.max(1).values - flat.min(1).values)).view(-1, *([1] * (x.dim() - 1)))
    total = torch.zeros_like(x, dtype=torch.float32)
    for _ in range(max(int(samples), 1)):
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        grads, _ = gradients(model, x.detach() + sigma * eps, target)
        total += grads.float()
    return total / max(int(samples), 1), out


def last_conv_activation(model: nn.Module) -> nn.Module:
    """The activation closing the last convolution block of `model.convolutions` (before its pooling)."""
    convolutions = getattr(model, "convolutions", None)
    if not isinstance(convolutions, nn.Sequential):
        raise InputError(
            None, f"grad-cam needs a CNN with `convolutions` blocks, got {type(model).__name__}", "method"
        )
    layers = list(convolutions)
    convs = (nn.Conv3d, nn.Conv2d)  # 2D: slice models
    last_conv = max((i for i, m in enumerate(layers) if isinstance(m, convs)), default=None)
    if last_conv is None:
        raise InputError(None, "grad-cam: the network has no Conv3d (or Conv2d) layer", "method")
    for layer in layers[last_conv + 1 :]:
        if not isinstance(layer, (nn.BatchNorm3d, nn.BatchNorm2d, *convs)):
            return layer
    return layers[last_conv]


def gradcam(model: nn.Module, x: torch.Tensor, target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM on the last convolution block: ReLU(sum_c w_c A_c) with w_c the spatial mean of
    d out[target] / d A_c, upsampled trilinearly to the input's spatial size -> [B, 1, X, Y, Z]
    (bilinearly to [B, 1, H, W] for a 2D input)."""
    captured: list[torch.Tensor] = []
    handle = last_conv_activation(model).register_forward_hook(lambda _m, _i, output: captured.append(output))
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # keeps the graph alive down to the activation
            out = model(x)
            activation = captured[-1]
            (grads,) = torch.autograd.grad(out[:, target].sum(), activation)
    finally:
        handle.remove()
    weights = grads.mean(dim=tuple(range(2, grads.dim())), keepdim=True)
    cam = F.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
    linear = "trilinear" if x.dim() == 5 else "bilinear"
    cam = F.interpolate(cam.float(), size=tuple(x.shape[2:]), mode=linear, align_corners=False)
    return cam, out.detach()


def saliency_batch(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: int,
    samples: int = 10,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw saliency maps of a batch for `method`, and the batch's clean outputs.

    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    >>> maps, out = saliency_batch(model, torch.rand(2, 1, 4, 4, 4), "gradients", target=1)
    >>> maps.shape, out.shape
    (torch.Size([2, 1, 4, 4, 4]), torch.Size([2, 2]))
    >>> torch.allclose(maps.reshape(2, 64), model[1].weight[1])  # a linear model's gradient: its weights
    True
    """
    if method == "gradients":
        return gradients(model, x, target)
    if method == "smoothgrad":
        return smoothgrad(model, x, target, samples, noise, generator)
    if method == "grad-cam":
        return gradcam(model, x, target)
    raise InputError(None, f"unknown method {method!r}; expected one of {', '.join(METHODS)}", "method")
