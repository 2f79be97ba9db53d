"""Batched reconstruction statistics and the MSE loss, in one pass over output and target.

Per sample: sum of squared error, sum of absolute error and the reference maximum (for PSNR). The
floor is reading x and y once; the eager way (`((x-y)**2).mean()`, `(x-y).abs().mean()`, `y.max()`)
reads them three times and writes two temporaries. Sums are accumulated in float32 as blocked partial
sums (a partial per chunk of each sample, then a pairwise sum of the partials), never one serial sum.

Three implementations side by side: `recon_stats_triton` (GPU, or CPU under TRITON_INTERPRET=1),
`recon_stats_torch` (eager torch, chunked so the working set stays in cache) and
`recon_stats_reference` (float64, for tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuroexec.kernels._triton import LazyKernel, check_float, next_pow2, tl

# Elements per sample handled by one torch chunk: [B, CHUNK] float32 buffers stay in cache
# (1 << 17 measured best on a 2-core Xeon with 2 MiB L2 per core: 3x smaller chunks cost 1.6x).
TORCH_CHUNK = 1 << 17


@dataclass
class ReconStats:
    """Per-sample sums of one reconstruction batch; tensors [B] (float32, float64 for the reference).

    Example:
        >>> s = ReconStats(torch.tensor([4.0]), torch.tensor([2.0]), torch.tensor([1.0]), 4)
        >>> s.mse(), s.psnr()
        (tensor([1.]), tensor([0.]))
    """

    sse: torch.Tensor
    sae: torch.Tensor
    ref_max: torch.Tensor
    numel: int

    def mse(self) -> torch.Tensor:
        return self.sse / self.numel

    def mae(self) -> torch.Tensor:
        return self.sae / self.numel

    def rmse(self) -> torch.Tensor:
        return self.mse().sqrt()

    def psnr(self) -> torch.Tensor:
        """10 * log10(ref_max^2 / mse); +inf for a perfect reconstruction (mse == 0)."""
        mse = self.mse()
        safe = torch.where(mse > 0, mse, torch.ones_like(mse))
        value = 10.0 * torch.log10(self.ref_max.square() / safe)
        return torch.where(mse > 0, value, torch.full_like(value, math.inf))


def _flat_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and dtypes; return contiguous [B, N] views."""
    if x.shape != y.shape:
        raise ValueError(f"output shape {tuple(x.shape)} differs from reference shape {tuple(y.shape)}")
    if x.dim() < 1 or x.numel() == 0:
        raise ValueError(f"expected non-empty tensors [B, ...], got shape {tuple(x.shape)}")
    if x.device != y.device:
        raise ValueError(f"output is on {x.device} but reference is on {y.device}")
    check_float(x, "output", allow_f64=True)
    check_float(y, "reference", allow_f64=True)
    b = x.shape[0]
    return x.contiguous().view(b, -1), y.contiguous().view(b, -1)


# --------------------------------------------------------------------------------------------- triton
def _recon_stats_kernel(x_ptr, y_ptr, part_ptr, N, CHUNK, n_chunks, BLOCK: tl.constexpr):
    # One program = one chunk of one sample; writes (sse, sae, max) partials for that chunk.
    b = tl.program_id(0)
    ch = tl.program_id(1)
    base = b.to(tl.int64) * N
    start = ch.to(tl.int64) * CHUNK
    acc_sq = tl.zeros([BLOCK], dtype=tl.float32)
    acc_abs = tl.zeros([BLOCK], dtype=tl.float32)
    acc_max = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    for off in range(0, CHUNK, BLOCK):
        idx = start + off + tl.arange(0, BLOCK)
        mask = idx < N
        x = tl.load(x_ptr + base + idx, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + base + idx, mask=mask, other=0.0).to(tl.float32)
        d = x - y
        acc_sq += d * d
        acc_abs += tl.abs(d)
        acc_max = tl.maximum(acc_max, tl.where(mask, y, float("-inf")))
    out = part_ptr + (b * n_chunks + ch) * 3
    tl.store(out, tl.sum(acc_sq, axis=0))
    tl.store(out + 1, tl.sum(acc_abs, axis=0))
    tl.store(out + 2, tl.max(acc_max, axis=0))


def _mse_grad_kernel(
    x_ptr, y_ptr, g_ptr, gx_ptr, gy_ptr, n, scale, BLOCK: tl.constexpr, WITH_Y: tl.constexpr
):
    # grad_x = grad_output * scale * (x - y), grad_y = -grad_x; scale = 2 / N.
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n
    x = tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr).to(tl.float32)
    grad = (x - y) * (g * scale)
    tl.store(gx_ptr + idx, grad.to(gx_ptr.dtype.element_ty), mask=mask)
    if WITH_Y:
        tl.store(gy_ptr + idx, (-grad).to(gy_ptr.dtype.element_ty), mask=mask)


_stats_kernel = LazyKernel(_recon_stats_kernel)
_grad_kernel = LazyKernel(_mse_grad_kernel)


def recon_stats_triton(x: torch.Tensor, y: torch.Tensor) -> ReconStats:
    """Triton path of `recon_stats` (float32/bf16/fp16 inputs, float32 results)."""
    xf, yf = _flat_pair(x, y)
    check_float(x, "output")
    b, n = xf.shape
    block = min(1024, next_pow2(n))
    chunk = block * min(16, -(-n // block))
    n_chunks = -(-n // chunk)
    part = torch.empty(b, n_chunks, 3, dtype=torch.float32, device=x.device)
    _stats_kernel[(b, n_chunks)](xf, yf, part, n, chunk, n_chunks, BLOCK=block)
    return ReconStats(part[..., 0].sum(1), part[..., 1].sum(1), part[..., 2].amax(1), n)


def mse_grad_triton(
    x: torch.Tensor, y: torch.Tensor, grad_output: torch.Tensor, need_y: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fused MSE backward: one pass reading x and y, writing grad_x (and grad_y = -grad_x)."""
    xc, yc = x.contiguous(), y.contiguous()
    gx = torch.empty_like(xc)
    gy = torch.empty_like(yc) if need_y else gx
    g = grad_output.reshape(1).to(torch.float32)
    n = xc.numel()
    block = 1024
    _grad_kernel[(-(-n // block),)](xc, yc, g, gx, gy, n, 2.0 / n, BLOCK=block, WITH_Y=need_y)
    return gx, (gy if need_y else None)


# ---------------------------------------------------------------------------------------------- torch
def recon_stats_torch(x: torch.Tensor, y: torch.Tensor) -> ReconStats:
    """Eager-torch `recon_stats`: one read of x and y, in cache-sized chunks of each sample."""
    xf, yf = _flat_pair(x, y)
    b, n = xf.shape
    acc = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    n_chunks = -(-n // TORCH_CHUNK)
    part = torch.empty(3, b, n_chunks, dtype=acc, device=x.device)
    buf = torch.empty(b, min(n, TORCH_CHUNK), dtype=acc, device=x.device)
    for i in range(n_chunks):
        lo, hi = i * TORCH_CHUNK, min(n, (i + 1) * TORCH_CHUNK)
        d = buf[:, : hi - lo]
        yc = yf[:, lo:hi]
        d.copy_(xf[:, lo:hi])
        d.sub_(yc)  # in float32 (or float64): half inputs are widened before subtracting
        part[2, :, i] = yc.amax(1)
        d.abs_()
        torch.sum(d, dim=1, out=part[1, :, i])
        d.mul_(d)
        torch.sum(d, dim=1, out=part[0, :, i])
    return ReconStats(part[0].sum(1), part[1].sum(1), part[2].amax(1), n)


# ---------------------------------------------------------------------------------------------- loss
class ReconLoss(torch.autograd.Function):
    """Mean squared error over all elements (nn.MSELoss(reduction="mean")) with Triton kernels: a
    one-pass forward and a fused backward. (The torch fallback is torch's own fused mse_loss.)"""

    @staticmethod
    def forward(ctx, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        stats = recon_stats_triton(output.reshape(1, -1), target.reshape(1, -1))
        ctx.save_for_backward(output, target)
        return stats.sse[0] / output.numel()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        output, target = ctx.saved_tensors
        need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_y):
            return None, None
        gx, gy = mse_grad_triton(output, target, grad_output, need_y)
        return (gx.view_as(output) if need_x else None), (gy.view_as(target) if need_y else None)


def _check_loss_args(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape:
        raise ValueError(
            f"output shape {tuple(output.shape)} differs from target shape {tuple(target.shape)}"
        )
    _flat_pair(output.detach().reshape(1, -1), target.detach().reshape(1, -1))


def recon_loss_torch(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE loss with torch's own fused mse_loss forward and backward (on CPU nothing beats it: one
    vectorised pass each way); bf16/fp16 inputs are upcast so the mean is accumulated in float32."""
    _check_loss_args(output, target)
    if output.dtype in (torch.float16, torch.bfloat16) or target.dtype in (torch.float16, torch.bfloat16):
        output, target = output.float(), target.float()
    return torch.nn.functional.mse_loss(output, target)


def recon_loss_triton(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE loss with the Triton forward and backward."""
    _check_loss_args(output, target)
    check_float(output, "output")
    return ReconLoss.apply(output, target)


# ------------------------------------------------------------------------------------------ reference
def recon_stats_reference(x: torch.Tensor, y: torch.Tensor) -> ReconStats:
    """Plain float64 statistics, the ground truth for tests."""
    b = x.shape[0]
    d = x.detach().double().reshape(b, -1) - y.detach().double().reshape(b, -1)
    return ReconStats(
        (d * d).sum(1), d.abs().sum(1), y.detach().double().reshape(b, -1).max(1).values, d.shape[1]
    )
