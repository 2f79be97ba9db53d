from __future__ import annotations

import math

import pytest
import torch

from neuroexec.kernels.recon import (
    ReconStats,
    recon_loss_torch,
    recon_loss_triton,
    recon_stats_reference,
    recon_stats_torch,
    recon_stats_triton,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SHAPE = (3, 1, 7, 9, 11)
# float32 accumulation of float32/bf16/fp16 inputs: the inputs are exact in float64, only sums round.
SUM_RTOL = 1e-5
# Gradients are stored in the input dtype: one rounding to that dtype.
GRAD_RTOL = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 1e-3}


def stats_fn(backend):
    return recon_stats_triton if backend.triton else recon_stats_torch


def loss_fn(backend):
    return recon_loss_triton if backend.triton else recon_loss_torch


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_recon_stats_match_float64_reference(backend, dtype, make, rel_err):
    x, y = make(SHAPE, dtype, backend.device, 1), make(SHAPE, dtype, backend.device, 2)
    got, want = stats_fn(backend)(x, y), recon_stats_reference(x, y)
    assert got.sse.dtype == torch.float32 and got.sse.shape == (3,)
    assert got.numel == want.numel == 7 * 9 * 11
    assert rel_err(got.sse, want.sse) < SUM_RTOL
    assert rel_err(got.sae, want.sae) < SUM_RTOL
    assert torch.equal(got.ref_max.double().cpu(), want.ref_max.cpu())


def test_recon_stats_long_sample_keeps_float32_accuracy(backend, rel_err):
    # 2^20 elements of a constant-sign error: one serial float32 sum drifts by ~1e-5 here.
    n = 1 << 20
    x = torch.full((2, n), 1.001, device=backend.device) + 1e-3 * torch.rand(2, n, device=backend.device)
    y = torch.ones(2, n, device=backend.device)
    got, want = stats_fn(backend)(x, y), recon_stats_reference(x, y)
    assert rel_err(got.sse, want.sse) < 1e-6
    assert rel_err(got.sae, want.sae) < 1e-6


def test_recon_stats_non_contiguous_input(backend, make, rel_err):
    x = make((3, 1, 11, 9, 7), torch.float32, backend.device, 3).transpose(2, 4)
    y = make(SHAPE, torch.float32, backend.device, 4)
    got, want = stats_fn(backend)(x, y), recon_stats_reference(x, y)
    assert rel_err(got.sse, want.sse) < SUM_RTOL


def test_recon_stats_rejects_mismatched_shapes(backend):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        stats_fn(backend)(torch.zeros(2, 3, device=backend.device), torch.zeros(2, 4, device=backend.device))


def test_metrics_follow_their_float64_definitions(make):
    x, y = make(SHAPE, torch.float64, "cpu", 5), make(SHAPE, torch.float64, "cpu", 6)
    s = recon_stats_torch(x, y)
    d = (x - y).reshape(3, -1)
    mse = (d**2).mean(1)
    assert torch.allclose(s.mse(), mse)
    assert torch.allclose(s.mae(), d.abs().mean(1))
    assert torch.allclose(s.rmse(), mse.sqrt())
    ymax = y.reshape(3, -1).max(1).values
    assert torch.allclose(s.psnr(), 10 * torch.log10(ymax**2 / mse))


def test_psnr_is_inf_for_a_perfect_reconstruction():
    y = torch.rand(2, 1, 4, 4, 4) + 0.5
    s = recon_stats_torch(y, y)
    assert torch.equal(s.mse(), torch.zeros(2))
    assert torch.isinf(s.psnr()).all() and (s.psnr() > 0).all()
    # numel and ref_max as a hand-made stats object: psnr(1, mse=1) = 0 dB
    assert ReconStats(torch.tensor([4.0]), torch.tensor([0.0]), torch.tensor([1.0]), 4).psnr().item() == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_recon_loss_and_gradients_match_float64_autograd(backend, dtype, make, rel_err):
    x = make(SHAPE, dtype, backend.device, 7).requires_grad_()
    y = make(SHAPE, dtype, backend.device, 8).requires_grad_()
    loss = loss_fn(backend)(x, y)
    (loss * 3.0).backward()  # a non-unit grad_output
    x64 = x.detach().double().requires_grad_()
    y64 = y.detach().double().requires_grad_()
    want = torch.nn.functional.mse_loss(x64, y64)
    (want * 3.0).backward()
    assert loss.dtype == torch.float32
    assert abs(loss.item() - want.item()) / want.item() < SUM_RTOL
    assert x.grad.dtype == dtype and y.grad.dtype == dtype
    assert rel_err(x.grad, x64.grad) < GRAD_RTOL[dtype]
    assert rel_err(y.grad, y64.grad) < GRAD_RTOL[dtype]


def test_recon_loss_gives_no_gradient_to_a_constant_target(backend, make):
    x = make(SHAPE, torch.float32, backend.device, 9).requires_grad_()
    y = make(SHAPE, torch.float32, backend.device, 10)
    loss_fn(backend)(x, y).backward()
    assert y.grad is None
    assert torch.allclose(x.grad, 2 * (x - y).detach() / x.numel())


def test_recon_loss_torch_passes_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 3, 4, 5, dtype=torch.float64, generator=g).requires_grad_()
    y = torch.randn(2, 1, 3, 4, 5, dtype=torch.float64, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(recon_loss_torch, (x, y))


def test_recon_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differs"):
        recon_loss_torch(torch.zeros(2, 3), torch.zeros(3, 2))


def test_psnr_formula_uses_reference_max():
    # mse = 0.25 per element, ref_max = 2: psnr = 10 log10(4 / 0.25)
    x = torch.tensor([[0.5, 2.5]])
    y = torch.tensor([[0.0, 2.0]])
    assert math.isclose(recon_stats_torch(x, y).psnr().item(), 10 * math.log10(16.0), rel_tol=1e-6)
