"""Every Triton kernel compiles for NVIDIA GPUs, down to a cubin, on a machine with no GPU.

The interpreter (TRITON_INTERPRET=1, which the other kernel tests use on CPU) runs a kernel's Python
with numpy semantics, so it misses what only the compiler rejects: a block shape that is not a constexpr
power of two, a type clash between int and float values, a cast the hardware lacks. `gpu_compile.py`
compiles each kernel ahead of time for Hopper (sm_90: H100, H200) and Ampere (sm_80: A100), with the
arguments its wrapper really passes, in a process of its own with the interpreter off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.kernels import _triton

pytestmark = pytest.mark.skipif(not _triton.available(), reason="triton is not installed")

ROOT = Path(__file__).resolve().parents[2]
WRAPPERS = [
    "extract_patches",
    "fold_patches",
    "mse_grad",
    "mse_grad_x_only",
    "recon_stats",
    "saliency_max_maps",
    "saliency_signed",
]


@pytest.fixture(scope="module")
def compiled() -> list[dict]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TRITON_INTERPRET": "0", "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("gpu_compile.py"))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _records(compiled: list[dict], wrapper: str, dtype: str, target: str) -> list[dict]:
    found = [r for r in compiled if (r["wrapper"], r["dtype"], r["target"]) == (wrapper, dtype, target)]
    assert found, f"no launch recorded for {wrapper} {dtype} {target}"
    return found


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_kernels_compile_to_cubin_for_hopper(compiled, wrapper, dtype):
    for record in _records(compiled, wrapper, dtype, "sm_90"):
        assert record["ok"], f"{record['kernel']}: {record.get('error')}"
        assert record["ptx_target"].startswith(".target sm_90") and record["cubin_bytes"] > 0


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_kernels_compile_for_ampere(compiled, wrapper):
    for record in _records(compiled, wrapper, "bfloat16", "sm_80"):
        assert record["ok"], f"{record['kernel']}: {record.get('error')}"
        assert record["ptx_target"].startswith(".target sm_80")


def test_a_kernel_only_the_compiler_rejects_is_caught(compiled):
    """The check has teeth: a block that is not a power of two runs in the interpreter, not on a GPU."""
    (record,) = _records(compiled, "extract_patches_cols_6", "float32", "sm_90")
    assert not record["ok"] and "power of 2" in record["error"]
