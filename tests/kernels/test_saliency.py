from __future__ import annotations

import pytest
import torch

from neuroexec.kernels.saliency import (
    SaliencyState,
    saliency_accumulate_torch,
    saliency_accumulate_triton,
    saliency_process_reference,
    saliency_reference,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MAP = (5, 6, 7)


def accumulate_fn(backend):
    return saliency_accumulate_triton if backend.triton else saliency_accumulate_torch


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("abs_", [True, False], ids=["abs", "signed"])
@pytest.mark.parametrize("normalize", [None, "max"])
def test_mean_std_and_maps_match_float64_reference(backend, dtype, abs_, normalize, make, rel_err):
    batches = [make((3, *MAP), dtype, backend.device, seed) for seed in range(3)]
    state = SaliencyState.empty(MAP, backend.device)
    for batch in batches:
        maps = accumulate_fn(backend)(batch, state, abs=abs_, normalize=normalize, return_maps=True)
        assert maps.dtype == torch.float32 and maps.shape == batch.shape
        assert rel_err(maps, saliency_process_reference(batch, abs_, normalize)) < 1e-6
    mean, std = saliency_reference(batches, abs_, normalize)
    assert state.count == 9
    assert rel_err(state.mean(), mean) < 1e-6
    assert rel_err(state.std(), std) < 1e-6


def test_max_normalisation_scales_each_sample_to_one_and_keeps_zero_maps(backend):
    g = torch.zeros(3, *MAP, device=backend.device)
    g[0, 1, 2, 3] = -4.0
    g[0, 0, 0, 0] = 2.0
    g[2] = 0.5
    state = SaliencyState.empty(MAP, backend.device)
    maps = accumulate_fn(backend)(g, state, abs=True, normalize="max", return_maps=True)
    assert maps[0, 1, 2, 3].item() == 1.0 and maps[0, 0, 0, 0].item() == 0.5
    assert torch.equal(maps[1], torch.zeros(MAP, device=backend.device))  # all-zero map: no NaN
    assert torch.equal(maps[2], torch.ones(MAP, device=backend.device))
    assert torch.isfinite(state.mean()).all()


def test_no_maps_returned_unless_asked(backend):
    state = SaliencyState.empty(MAP, backend.device)
    assert accumulate_fn(backend)(torch.ones(2, *MAP, device=backend.device), state) is None
    assert torch.equal(state.mean(), torch.ones(MAP, device=backend.device))


def test_ten_thousand_maps_keep_float32_relative_error_far_under_1e5(backend):
    # 10,000 maps of 8^3 (batches of 10; 100 in the slow interpreter, which adds sample by sample
    # anyway). Uncompensated float32 sums of these batches are off by ~1.5e-6; compensated ~3e-8.
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(10_000, 8, 8, 8, generator=gen).abs_() + 1.0
    state = SaliencyState.empty((8, 8, 8), backend.device)
    for batch in data.split(100 if backend.triton else 10):
        accumulate_fn(backend)(batch.to(backend.device), state)
    mean, std = data.double().mean(0), data.double().std(0, correction=0)
    assert state.count == 10_000
    assert ((state.mean().double().cpu() - mean).abs() / mean).max() < 2e-7
    assert ((state.std().double().cpu() - std).abs() / std).max() < 5e-7


def test_std_is_population_std():
    state = SaliencyState.empty((1,))
    saliency_accumulate_torch(torch.tensor([[1.0], [3.0]]), state)
    assert state.mean().item() == 2.0
    assert state.std().item() == 1.0  # ddof=0: sqrt(((1-2)^2 + (3-2)^2) / 2)


def test_empty_state_has_zero_mean():
    state = SaliencyState.empty((2, 3))
    assert state.count == 0 and torch.equal(state.mean(), torch.zeros(2, 3))


def test_rejects_maps_of_another_shape(backend):
    state = SaliencyState.empty(MAP, backend.device)
    with pytest.raises(ValueError, match=r"\(5, 6, 8\).*\(5, 6, 7\)"):
        accumulate_fn(backend)(torch.ones(2, 5, 6, 8, device=backend.device), state)


def test_rejects_unknown_normalisation():
    with pytest.raises(ValueError, match="normalize"):
        saliency_accumulate_torch(torch.ones(1, *MAP), SaliencyState.empty(MAP), normalize="sum")
