"""Compile every Triton kernel for NVIDIA GPUs ahead of time, with no GPU: `python gpu_compile.py`
prints one JSON record per (wrapper, dtype, target, kernel) launch.

Run it in its own process with TRITON_INTERPRET=0 (test_gpu_compile.py does): in interpreter mode
Triton's compile-time helpers return plain Python values where the compiler expects constexprs, and a
process cannot switch modes cleanly. Launches are recorded from the wrappers called on small CPU
tensors, so each kernel is compiled with the argument types and constexpr values it really gets.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any

import torch

from neuroexec.kernels import _triton
from neuroexec.kernels.patches import extract_patches_triton, fold_patches_triton
from neuroexec.kernels.recon import mse_grad_triton, recon_stats_triton
from neuroexec.kernels.saliency import SaliencyState, saliency_accumulate_triton

TARGETS = {"sm_90": 90, "sm_80": 80}  # H100 / H200, A100
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
POINTER_TYPES = {
    torch.float32: "*fp32",
    torch.float16: "*fp16",
    torch.bfloat16: "*bf16",
    torch.int32: "*i32",
    torch.int64: "*i64",
}


@dataclass
class Launch:
    kernel: _triton.LazyKernel
    args: tuple
    kwargs: dict


def _volume(dtype: torch.dtype, shape: tuple[int, ...] = (2, 1, 9, 11, 10)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)


WRAPPER_CALLS = {
    "recon_stats": lambda d: recon_stats_triton(_volume(d), _volume(d)),
    "mse_grad": lambda d: mse_grad_triton(_volume(d), _volume(d), torch.ones(()), need_y=True),
    "mse_grad_x_only": lambda d: mse_grad_triton(_volume(d), _volume(d), torch.ones(()), need_y=False),
    "saliency_max_maps": lambda d: saliency_accumulate_triton(
        _volume(d), SaliencyState.empty((1, 9, 11, 10)), normalize="max", return_maps=True
    ),
    "saliency_signed": lambda d: saliency_accumulate_triton(
        _volume(d), SaliencyState.empty((1, 9, 11, 10)), abs=False
    ),
    "extract_patches": lambda d: extract_patches_triton(_volume(d), 4, 3),
    "fold_patches": lambda d: fold_patches_triton(
        _volume(d, (2 * 2 * 3 * 3, 1, 4, 4, 4)), (2, 1, 9, 11, 10), 4, 3
    ),
}


def record_launches(call) -> list[Launch]:
    """The kernel launches `call()` makes, recorded instead of run."""
    launches: list[Launch] = []
    original = _triton.LazyKernel.__getitem__
    _triton.LazyKernel.__getitem__ = lambda self, grid: (
        lambda *args, **kwargs: launches.append(Launch(self, args, kwargs))
    )
    try:
        call()
    finally:
        _triton.LazyKernel.__getitem__ = original
    return launches


def _arg_type(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return POINTER_TYPES[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for {type(value).__name__}")


def compile_launch(launch: Launch, capability: int) -> dict[str, str]:
    """triton.compile of the launch's kernel down to a cubin for CUDA `capability`; returns its PTX
    header and the cubin size."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = launch.kernel.fn
    fn.__globals__["tl"] = triton.language
    jit = triton.jit(fn)
    values = dict(zip(jit.arg_names, launch.args), **launch.kwargs)
    if set(values) != set(jit.arg_names):
        raise TypeError(f"launched with {sorted(values)}, the kernel takes {jit.arg_names}")
    signature, constexprs = {}, {}
    for param in jit.params:
        value = values[param.name]
        if param.is_constexpr:
            signature[param.name], constexprs[param.name] = "constexpr", value
        else:
            signature[param.name] = _arg_type(value)
    if "constexprs" in inspect.signature(ASTSource.__init__).parameters:  # Triton >= 3.3
        source = ASTSource(fn=jit, signature=signature, constexprs=constexprs)
    else:  # Triton 3.0-3.2: constexprs are left out of the signature and passed as constants
        runtime = {name: kind for name, kind in signature.items() if kind != "constexpr"}
        source = ASTSource(jit, runtime, constexprs)
    compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32))
    target = next((line for line in compiled.asm["ptx"].splitlines() if line.startswith(".target")), "")
    return {"ptx_target": target, "cubin_bytes": len(compiled.asm["cubin"])}


def _explain(err: BaseException) -> str:
    """The error and its causes: Triton before 3.5 puts the reason (say, "must be a power of 2") in the
    cause of its CompilationError, not in its message."""
    lines = []
    while err is not None:
        lines.append(f"{type(err).__name__}: {err}")
        err = err.__cause__
    return "\ncaused by ".join(lines)


def run_case(name: str, dtype: str, target: str, call, edit=None) -> list[dict[str, Any]]:
    records = []
    for launch in record_launches(lambda: call(DTYPES[dtype])):
        if edit is not None:
            launch.kwargs.update(edit)
        record = {"wrapper": name, "dtype": dtype, "target": target, "kernel": launch.kernel.fn.__name__}
        try:
            record.update(ok=True, **compile_launch(launch, TARGETS[target]))
        except Exception as err:  # noqa: BLE001 - every compiler error is reported, none is fatal here
            record.update(ok=False, error=_explain(err))
        records.append(record)
    return records


def main() -> None:
    records = []
    for name, call in WRAPPER_CALLS.items():
        for dtype in DTYPES:
            records += run_case(name, dtype, "sm_90", call)
        records += run_case(name, "bfloat16", "sm_80", call)
    # A control the compiler must reject (tl.arange needs a power of two), which the interpreter runs.
    records += run_case(
        "extract_patches_cols_6", "float32", "sm_90", WRAPPER_CALLS["extract_patches"], {"COLS": 6}
    )
    print(json.dumps(records))


if __name__ == "__main__":
    main()
