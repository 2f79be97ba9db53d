"""The one place that chooses between a Triton kernel and its torch fallback, per call.

`kernels="auto"` uses Triton for CUDA tensors when triton is importable, else the torch fallback;
`"torch"` forces the fallback; `"triton"` forces the kernel and needs a CUDA tensor, except under
TRITON_INTERPRET=1 (Triton's CPU interpreter, used by the tests). float64 inputs always take the torch
path (the kernels handle float32, bfloat16 and float16, accumulating in float32). Steps import only
this module, never `kernels` or triton.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from neuroexec.context import KERNELS, Kernels
from neuroexec.errors import DeviceError, InputError
from neuroexec.kernels import _triton
from neuroexec.kernels import patches as _patches
from neuroexec.kernels import recon as _recon
from neuroexec.kernels import saliency as _saliency
from neuroexec.kernels.patches import patch_grid as _patch_grid
from neuroexec.kernels.recon import ReconStats
from neuroexec.kernels.saliency import SaliencyState

__all__ = [
    "ReconStats",
    "SaliencyState",
    "extract_patches",
    "fold_patches",
    "patch_grid",
    "recon_loss",
    "recon_stats",
    "saliency_accumulate",
    "use_triton",
]

CHOICES = KERNELS  # compute.kernels; steps pass their own (RunContext.settings.kernels)
T = TypeVar("T")


def use_triton(kernels: str, *tensors: torch.Tensor) -> bool:
    """Decide the implementation for tensors all on one device; raise when `kernels` cannot be honoured.

    Example:
        >>> use_triton("auto", torch.zeros(2))  # CPU tensor
        False
    """
    if kernels not in CHOICES:
        raise InputError(
            None, f"kernels must be one of {', '.join(CHOICES)}; got {kernels!r}", field="kernels"
        )
    if kernels == "torch":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if kernels == "auto":
        return on_cuda and _triton.available() and all(t.dtype != torch.float64 for t in tensors)
    if not _triton.available():
        raise DeviceError(
            "kernels = 'triton' but triton is not installed (install the gpu extra or use 'auto')"
        )
    if not on_cuda and not _triton.interpret_mode():
        devices = sorted({str(t.device) for t in tensors})
        raise DeviceError(
            f"kernels = 'triton' needs CUDA tensors, got tensors on {', '.join(devices)} "
            "(use 'auto' or 'torch', or set TRITON_INTERPRET=1 to run the kernels in Triton's interpreter)"
        )
    if not on_cuda and (problem := _triton.interpreter_problem()):
        raise DeviceError(
            f"kernels = 'triton' on {tensors[0].device} needs Triton's interpreter, but {problem}"
        )
    if any(t.dtype == torch.float64 for t in tensors):
        raise InputError(
            None, "kernels = 'triton' supports float32, bfloat16 and float16, not float64", field="kernels"
        )
    return True


def _checked(call: Callable[..., T], *args, **kwargs) -> T:
    """Run a kernel-module function, turning its ValueError (bad shape, dtype, size) into InputError."""
    try:
        return call(*args, **kwargs)
    except ValueError as err:
        raise InputError(None, str(err)) from err


def patch_grid(shape: Sequence[int], size: int, stride: int) -> tuple[int, int, int]:
    """Patches per axis (nD, nH, nW) along the last three dimensions of `shape`.

    Example:
        >>> patch_grid((169, 208, 179), 50, 50)
        (3, 4, 3)
    """
    return _checked(_patch_grid, shape, size, stride)


def recon_stats(x: torch.Tensor, y: torch.Tensor, kernels: Kernels = "auto") -> ReconStats:
    """Per-sample SSE, SAE and reference max of output `x` vs reference `y` ([B, ...]), one pass.

    Example:
        >>> s = recon_stats(torch.ones(2, 1, 4, 4, 4), torch.zeros(2, 1, 4, 4, 4))
        >>> s.mse(), s.mae()
        (tensor([1., 1.]), tensor([1., 1.]))
    """
    fn = _recon.recon_stats_triton if use_triton(kernels, x, y) else _recon.recon_stats_torch
    return _checked(fn, x, y)


def recon_loss(output: torch.Tensor, target: torch.Tensor, kernels: Kernels = "auto") -> torch.Tensor:
    """Mean squared error over all elements (like nn.MSELoss()), with a fused backward.

    Example:
        >>> recon_loss(torch.ones(2, 3), torch.zeros(2, 3))
        tensor(1.)
    """
    fn = _recon.recon_loss_triton if use_triton(kernels, output, target) else _recon.recon_loss_torch
    return _checked(fn, output, target)


def saliency_accumulate(
    grads: torch.Tensor,
    state: SaliencyState,
    abs: bool = True,
    normalize: str | None = None,
    return_maps: bool = False,
    kernels: Kernels = "auto",
) -> torch.Tensor | None:
    """Add a batch of gradient maps [B, *map_shape] into `state` (in place); return the processed
    float32 maps when `return_maps`. `normalize="max"` divides each map by its max |value| (0-safe).

    Example:
        >>> state = SaliencyState.empty((4, 4, 4))
        >>> saliency_accumulate(torch.randn(2, 4, 4, 4), state)
        >>> state.count, state.mean().shape
        (2, torch.Size([4, 4, 4]))
    """
    triton = use_triton(kernels, grads, state.sum)
    fn = _saliency.saliency_accumulate_triton if triton else _saliency.saliency_accumulate_torch
    return _checked(fn, grads, state, abs=abs, normalize=normalize, return_maps=return_maps)


def extract_patches(
    volume: torch.Tensor,
    size: int,
    stride: int,
    kernels: Kernels = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, C, D, H, W] -> contiguous [B * n, C, size, size, size]; patch k of an image in C order of
    `unfold(2).unfold(3).unfold(4)` (ClinicaDL's patch numbering). `out`, when given, receives the
    patches (same dtype and device, contiguous): a caller cutting many images recycles one buffer.

    Example:
        >>> extract_patches(torch.zeros(2, 1, 10, 10, 12), 5, 5).shape
        torch.Size([16, 1, 5, 5, 5])
    """
    fn = _patches.extract_patches_triton if use_triton(kernels, volume) else _patches.extract_patches_torch
    return _checked(fn, volume, size, stride, out=out)


def fold_patches(
    patches: torch.Tensor, image_shape: Sequence[int], size: int, stride: int, kernels: Kernels = "auto"
) -> torch.Tensor:
    """Inverse of `extract_patches`: [B * n, C, s, s, s] -> [B, C, D, H, W] (float32, float64 for
    float64 input), averaging overlaps; voxels covered by no patch are 0.

    Example:
        >>> x = torch.rand(1, 1, 10, 10, 10)
        >>> torch.equal(fold_patches(extract_patches(x, 5, 5), x.shape, 5, 5), x)
        True
    """
    fn = _patches.fold_patches_triton if use_triton(kernels, patches) else _patches.fold_patches_torch
    return _checked(fn, patches, image_shape, size, stride)
