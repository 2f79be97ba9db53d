from __future__ import annotations

import pytest
import torch

from neuroexec import kernels, ops
from neuroexec.errors import DeviceError, InputError
from neuroexec.kernels import _triton
from neuroexec.kernels.patches import extract_patches_reference, fold_patches_reference
from neuroexec.kernels.recon import recon_stats_reference
from neuroexec.kernels.saliency import saliency_reference

needs_triton = pytest.mark.skipif(not kernels.triton_available(), reason="triton is not installed")


@pytest.fixture
def interpret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run Triton kernels in the interpreter for this test (when triton allows it in this process)."""
    if _triton.loaded_mode() is False:
        pytest.skip("triton already runs compiled in this process")
    if _triton.available() and (problem := _triton.interpreter_problem()):
        pytest.skip(problem)
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def test_auto_on_cpu_uses_the_torch_fallback(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the Triton path was chosen for a CPU tensor")

    for name in ("recon_stats_triton", "recon_loss_triton"):
        monkeypatch.setattr(ops._recon, name, boom)
    monkeypatch.setattr(ops._patches, "extract_patches_triton", boom)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter is for tests, never chosen by auto
    x, y = torch.rand(2, 1, 5, 6, 7), torch.rand(2, 1, 5, 6, 7)
    assert not ops.use_triton("auto", x, y)
    got, want = ops.recon_stats(x, y), recon_stats_reference(x, y)
    assert torch.allclose(got.sse.double(), want.sse, rtol=1e-5)
    assert torch.allclose(ops.recon_loss(x, y), torch.nn.functional.mse_loss(x, y))
    assert ops.extract_patches(x, 2, 2).shape == (2 * 2 * 3 * 3, 1, 2, 2, 2)


def test_torch_is_always_honoured():
    assert not ops.use_triton("torch", torch.zeros(1))


@needs_triton
def test_triton_on_cpu_without_interpreter_is_a_device_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(DeviceError, match=r"CUDA.*cpu.*TRITON_INTERPRET=1"):
        ops.recon_stats(torch.zeros(1, 4), torch.zeros(1, 4), kernels="triton")


def test_triton_without_triton_installed_is_a_device_error(monkeypatch):
    monkeypatch.setattr(ops._triton, "available", lambda: False)
    with pytest.raises(DeviceError, match="not installed"):
        ops.extract_patches(torch.zeros(1, 1, 4, 4, 4), 2, 2, kernels="triton")
    assert ops.extract_patches(torch.zeros(1, 1, 4, 4, 4), 2, 2).shape == (8, 1, 2, 2, 2)  # auto still works


def test_unknown_kernel_choice_names_the_field():
    with pytest.raises(InputError, match=r"\[kernels\].*auto, triton, torch.*'cuda'"):
        ops.recon_stats(torch.zeros(1, 4), torch.zeros(1, 4), kernels="cuda")


@needs_triton
def test_triton_under_the_interpreter_runs_on_cpu(interpret):
    x, y = torch.rand(2, 1, 3, 4, 5), torch.rand(2, 1, 3, 4, 5)
    assert ops.use_triton("triton", x, y)
    got, want = ops.recon_stats(x, y, kernels="triton"), recon_stats_reference(x, y)
    assert torch.allclose(got.sae.double(), want.sae, rtol=1e-5)
    patches = ops.extract_patches(x, 2, 1, kernels="triton")
    assert torch.equal(patches.double(), extract_patches_reference(x, 2, 1))
    folded = ops.fold_patches(patches, x.shape, 2, 1, kernels="triton")
    assert torch.allclose(folded.double(), fold_patches_reference(patches, x.shape, 2, 1), atol=1e-6)


@needs_triton
def test_triton_on_cpu_names_an_interpreter_that_cannot_run_the_kernels(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(_triton, "interpreter_problem", lambda: "Triton 3.6.0's interpreter calls int() ...")
    with pytest.raises(DeviceError, match=r"on cpu needs Triton's interpreter, but Triton 3\.6\.0's"):
        ops.recon_stats(torch.zeros(1, 4), torch.zeros(1, 4), kernels="triton")


@pytest.mark.parametrize(
    "triton_version, numpy_version, fixed_in",
    [
        ("3.0.0", "1.26.4", "3.2"),
        ("3.1.0", "2.4.6", "3.2"),
        ("3.6.0", "2.4.0", "3.7"),
        ("3.2.0", "2.4.6", "3.7"),
    ],
)
def test_interpreter_problem_names_the_triton_that_fixed_it(triton_version, numpy_version, fixed_in):
    problem = _triton.interpreter_problem(triton_version, numpy_version)
    assert problem is not None and f"Triton {triton_version}'s interpreter" in problem
    assert f"Triton {fixed_in} fixed that" in problem


@pytest.mark.parametrize(
    "triton_version, numpy_version",
    [("3.2.0", "2.3.5"), ("3.6.0", "1.26.4"), ("3.7.1", "2.4.6"), ("3.9.0", "2.4.6")],
)
def test_interpreters_that_run_the_kernels_have_no_problem(triton_version, numpy_version):
    assert _triton.interpreter_problem(triton_version, numpy_version) is None


@needs_triton
def test_triton_refuses_float64(interpret):
    with pytest.raises(InputError, match="float64"):
        ops.recon_stats(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 4), kernels="triton")


def test_kernel_argument_errors_become_input_errors():
    with pytest.raises(InputError, match=r"patch size 9 is larger than the image size \(4, 5, 6\)"):
        ops.extract_patches(torch.zeros(1, 1, 4, 5, 6), 9, 1)
    with pytest.raises(InputError, match="differs"):
        ops.recon_stats(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(InputError, match=r"larger than the image size"):
        ops.patch_grid((4, 5, 6), 9, 1)
    with pytest.raises(InputError, match=r"out must be a torch.float32 tensor of shape \(8, 1, 2, 2, 2\)"):
        ops.extract_patches(torch.zeros(1, 1, 4, 4, 4), 2, 2, out=torch.zeros(8, 1, 2, 2, 3))


def test_saliency_and_fold_through_ops_match_references():
    g = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 1, 4, 5, 6, generator=g) for _ in range(3)]
    state = ops.SaliencyState.empty((1, 4, 5, 6))
    for b in batches:
        ops.saliency_accumulate(b, state, normalize="max")
    mean, std = saliency_reference(batches, True, "max")
    assert torch.allclose(state.mean().double(), mean, rtol=1e-6, atol=1e-7)
    assert torch.allclose(state.std().double(), std, rtol=1e-5, atol=1e-7)
    patches = torch.randn(2 * 2 * 2 * 2, 1, 3, 3, 3, generator=g)
    got = ops.fold_patches(patches, (2, 1, 5, 5, 5), 3, 2)
    assert torch.allclose(got.double(), fold_patches_reference(patches, (2, 1, 5, 5, 5), 3, 2), atol=1e-6)
    assert ops.patch_grid((2, 1, 5, 5, 5), 3, 2) == (2, 2, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_auto_on_cuda_uses_triton_when_installed():
    x = torch.rand(2, 1, 8, 8, 8, device="cuda")
    assert ops.use_triton("auto", x) == kernels.triton_available()
    assert not ops.use_triton("auto", x.double())
    got, want = ops.recon_stats(x, x * 0.5), recon_stats_reference(x, x * 0.5)
    assert torch.allclose(got.sse.double().cpu(), want.sse.cpu(), rtol=1e-5)
