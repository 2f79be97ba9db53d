"""Optional Triton: a lazy import and a lazy `jit`, shared by every kernel module.

Triton fixes, when it is imported and when a kernel is decorated, whether kernels run compiled (GPU)
or in its CPU interpreter (TRITON_INTERPRET=1). So nothing here imports triton until the first kernel
launch: kernel sources are plain functions wrapped in `LazyKernel`, which imports triton, puts
`triton.language` into the source module's globals as `tl` and calls `triton.jit` at that moment.
One process uses one mode; switching after the first launch is refused with a clear message.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

tl: Any = None  # `triton.language` once loaded; kernel modules import this name for annotations only
_loaded: dict[str, Any] = {}  # "triton", "mode" (the interpret flag at import time)


def available() -> bool:
    """True when triton is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


def interpret_mode() -> bool:
    """True when TRITON_INTERPRET=1: kernels then run in Triton's interpreter, on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def loaded_mode() -> bool | None:
    """The interpret flag triton was imported with, or None when it is not imported yet."""
    return _loaded.get("mode")


def load() -> Any:
    """Import triton (once), remembering the mode it was imported in."""
    global tl
    if "triton" not in _loaded:
        if not available():
            raise RuntimeError("triton is not installed: the Triton kernels cannot run")
        import triton
        import triton.language

        tl = triton.language
        _loaded.update(triton=triton, mode=interpret_mode())
    return _loaded["triton"]


def _release(version: str) -> tuple[int, int]:
    """(major, minor) of a version string such as "3.6.0" or "2.4.0rc1"."""
    parts = (version.split(".") + ["0"])[:2]
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def interpreter_problem(triton_version: str | None = None, numpy_version: str | None = None) -> str | None:
    """Why the installed Triton's CPU interpreter (TRITON_INTERPRET=1) cannot run these kernels, or None.

    Found by running the kernel tests on Triton 3.0 to 3.9. Compiled for a GPU, every kernel builds on all
    of them (tests/kernels/test_gpu_compile.py); the interpreter is what fails on some.
    """
    if triton_version is None or numpy_version is None:
        import importlib.metadata

        import numpy

        triton_version = triton_version or importlib.metadata.version("triton")
        numpy_version = numpy_version or numpy.__version__
    triton_release, numpy_release = _release(triton_version), _release(numpy_version)
    if triton_release < (3, 2):
        return (
            f"Triton {triton_version}'s interpreter takes constexpr parameters written as string annotations "
            "(as in these kernels) for runtime values; Triton 3.2 fixed that"
        )
    if triton_release < (3, 7) and numpy_release >= (2, 4):
        return (
            f"Triton {triton_version}'s interpreter calls int() on 1-element arrays, which numpy "
            f"{numpy_version} refuses; Triton 3.7 fixed that (or use numpy < 2.4)"
        )
    return None


def next_pow2(n: int) -> int:
    """Smallest power of two >= n (>= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


class LazyKernel:
    """A Triton kernel source, jitted on first launch (`kernel[grid](...)`)."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self._jitted: Any = None

    def __getitem__(self, grid: Any) -> Any:
        triton = load()
        if loaded_mode() != interpret_mode():
            raise RuntimeError(
                f"triton was imported with TRITON_INTERPRET={'1' if loaded_mode() else 'unset'} but is now "
                f"asked to run {self.fn.__name__} with it {'set' if interpret_mode() else 'unset'}; "
                "choose the mode before the first kernel launch of the process"
            )
        if self._jitted is None:
            self.fn.__globals__["tl"] = triton.language
            self._jitted = triton.jit(self.fn)
        return self._jitted[grid]


def check_float(t: Any, name: str, allow_f64: bool = False) -> None:
    """Reject dtypes the kernels do not handle, naming the argument."""
    import torch

    ok = [torch.float32, torch.float16, torch.bfloat16] + ([torch.float64] if allow_f64 else [])
    if t.dtype not in ok:
        names = ", ".join(str(d).replace("torch.", "") for d in ok)
        raise ValueError(f"{name} has dtype {str(t.dtype).replace('torch.', '')}; expected one of {names}")


__all__ = [
    "LazyKernel",
    "available",
    "check_float",
    "interpret_mode",
    "interpreter_problem",
    "load",
    "loaded_mode",
    "next_pow2",
]
