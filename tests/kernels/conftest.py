"""Backends every kernel test runs on: the torch fallback and the Triton kernel.

Triton runs either compiled or interpreted for a whole process, fixed when it is first imported
(kernels/_triton.py imports it at the first kernel launch). Without CUDA, Triton tests run in the
interpreter: this fixture sets TRITON_INTERPRET=1 around each of them, so `pytest tests/` needs
nothing exported. With CUDA they run compiled, unless TRITON_INTERPRET=1 was exported by the user."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch

from neuroexec import kernels
from neuroexec.kernels import _triton


@dataclass(frozen=True)
class Backend:
    device: str
    triton: bool

    def __str__(self) -> str:
        return f"{'triton' if self.triton else 'torch'}-{self.device}"


@pytest.fixture(params=["torch-cpu", "triton-interpret", "torch-cuda", "triton-cuda"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    impl, where = request.param.split("-")
    if where == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    if impl == "triton" and not kernels.triton_available():
        pytest.skip("triton is not installed")
    if impl == "triton":
        want_interpret = where == "interpret"
        user_interpret = os.environ.get("TRITON_INTERPRET") == "1"
        if want_interpret and torch.cuda.is_available() and not user_interpret:
            pytest.skip(
                "CUDA present: Triton kernels are tested compiled (export TRITON_INTERPRET=1 instead)"
            )
        if not want_interpret and user_interpret:
            pytest.skip("TRITON_INTERPRET=1 is exported: Triton kernels are tested in the interpreter")
        if want_interpret and (problem := _triton.interpreter_problem()):
            pytest.skip(problem)
        if _triton.loaded_mode() not in (None, want_interpret):
            pytest.skip("triton was already imported in the other mode in this process")
        monkeypatch.setenv("TRITON_INTERPRET", "1" if want_interpret else "0")
    return Backend("cuda" if where == "cuda" else "cpu", impl == "triton")


def _make(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g).to(dtype).to(device)


def _rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-300)).item()


@pytest.fixture
def make():
    """make(shape, dtype, device, seed=0): random normal values rounded to dtype, so that float64
    references see exactly the numbers the kernel sees."""
    return _make


@pytest.fixture
def rel_err():
    """rel_err(got, want): max absolute error relative to the largest reference magnitude."""
    return _rel_err
