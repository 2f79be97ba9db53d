"""The run context: what a step needs besides its own config. The device, the kernel choice, amp, the
loader settings (`StepSettings`, resolved once per step from the step's `compute` block), the reporter
and the distributed rank travel here instead of in globals."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

import torch

from neuroexec.errors import DeviceError, InputError
from neuroexec.progress import Reporter
from neuroexec.views import View

if TYPE_CHECKING:
    from neuroexec.spec.model import Compute

# compute.kernels: "auto" (Triton for CUDA tensors when importable), "triton" (always) or "torch".
Kernels = Literal["auto", "triton", "torch"]
KERNELS: tuple[str, ...] = get_args(Kernels)


def resolve_device(requested: str) -> torch.device:
    """`auto` -> cuda when available else cpu; `cuda` without a GPU is an error, not a silent fallback.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("compute.device = 'cuda' but no CUDA GPU is available (use 'cpu' or 'auto')")
    return torch.device(requested)


@dataclass(frozen=True)
class StepSettings:
    """How one step runs, from its `compute` block: the device (this rank's GPU under torchrun), the
    kernel choice handed to every `neuroexec.ops` call, mixed precision and the loader settings."""

    device: torch.device
    kernels: Kernels
    amp: bool
    workers: int
    batch_size: int
    amp_dtype: torch.dtype | None = None  # autocast's type with amp on a GPU (`choose_amp_dtype`)


def resolve_settings(compute: Compute, rank: int = 0, world_size: int = 1) -> StepSettings:
    """The one place a step's compute settings become a device and a kernel choice. Under torchrun
    with GPUs the device is this rank's GPU (set by `distributed.init_from_env`); `cuda` without a GPU
    and amp on the CPU are DeviceErrors, an unknown kernel choice an InputError.

    >>> from neuroexec.spec.model import Compute
    >>> resolve_settings(Compute(device="cpu", kernels="torch", workers=0))
    StepSettings(device=device(type='cpu'), kernels='torch', amp=False, workers=0, batch_size=8, amp_dtype=None)
    """
    device = resolve_device(compute.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    if compute.amp and device.type != "cuda":
        raise DeviceError(
            f"compute.amp = true needs a CUDA GPU; this step would run on the {device.type.upper()}"
        )
    if compute.kernels not in KERNELS:
        raise InputError(
            None, f"compute.kernels must be one of {', '.join(KERNELS)}; got {compute.kernels!r}", "kernels"
        )
    dtype = choose_amp_dtype(compute.amp_dtype, torch.cuda.is_bf16_supported()) if compute.amp else None
    return StepSettings(device, compute.kernels, compute.amp, compute.workers, compute.batch_size, dtype)


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def choose_amp_dtype(requested: str, bf16_supported: bool) -> torch.dtype:
    """compute.amp_dtype: "float16" is ClinicaDL's mixed precision (with a grad scaler, see
    neuroexec.training.loop.Trainer), "bfloat16" needs a GPU that has it, "auto" takes bfloat16 where
    the GPU has it, else float16.

    >>> choose_amp_dtype("auto", bf16_supported=False), choose_amp_dtype("float16", bf16_supported=True)
    (torch.float16, torch.float16)
    >>> choose_amp_dtype("bfloat16", bf16_supported=False)
    Traceback (most recent call last):
    neuroexec.errors.DeviceError: compute.amp_dtype = 'bfloat16' but this GPU has no bfloat16; use 'float16' or 'auto'
    """
    if requested == "auto":
        return torch.bfloat16 if bf16_supported else torch.float16
    if requested not in AMP_DTYPES:
        raise InputError(
            None,
            f"compute.amp_dtype must be one of auto, {', '.join(AMP_DTYPES)}; got {requested!r}",
            "amp_dtype",
        )
    if requested == "bfloat16" and not bf16_supported:
        raise DeviceError(
            "compute.amp_dtype = 'bfloat16' but this GPU has no bfloat16; use 'float16' or 'auto'"
        )
    return AMP_DTYPES[requested]


@contextlib.contextmanager
def cpu_threads(compute: Compute | None) -> Iterator[None]:
    """torch's intra-op threads set to `compute.threads` while a step runs, and set back after; nothing
    when unset (torch's default: the machine's cores).

    >>> from neuroexec.spec.model import Compute
    >>> before = torch.get_num_threads()
    >>> with cpu_threads(Compute(threads=1)):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    wanted = compute.threads if compute is not None else None
    if wanted is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class RunContext:
    """Handed to every step's run function."""

    reporter: Reporter = field(default_factory=Reporter)
    rank: int = 0
    world_size: int = 1
    # Fingerprints of the steps the running step depends on, as they are for this run (set by the
    # executor for each step): what a step that resumes partial work checks that work against.
    upstream: dict[str, str] = field(default_factory=dict)
    # The running step's compute settings, resolved once by the executor (`for_step`).
    settings: StepSettings | None = None
    # Where apply's events go (neuroexec/views.py); None: today's lines through `reporter`.
    view: View | None = None

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes into a MAPS."""
        return self.rank == 0

    def for_step(self, compute: Compute | None, upstream: dict[str, str]) -> RunContext:
        """The context of one step: its upstream fingerprints, its settings resolved from its `compute`
        block (None: a step that runs nothing on a device), and a quiet reporter on ranks other than 0
        (every rank runs a DDP training; rank 0 speaks for all)."""
        settings = None if compute is None else resolve_settings(compute, self.rank, self.world_size)
        reporter = self.reporter if self.is_main else Reporter(quiet=True)
        return replace(self, upstream=upstream, settings=settings, reporter=reporter)

    def with_settings(self, compute: Compute) -> RunContext:
        """This context when the executor resolved the step's settings; otherwise (a function called
        outside apply: a test, a benchmark) one with `compute` resolved now.

        >>> from neuroexec.spec.model import Compute
        >>> RunContext().with_settings(Compute(device="cpu")).settings.device
        device(type='cpu')
        """
        if self.settings is not None:
            return self
        return replace(self, settings=resolve_settings(compute, self.rank, self.world_size))

    @classmethod
    def from_env(cls, reporter: Reporter | None = None) -> RunContext:
        """Pick up torchrun's RANK / WORLD_SIZE when launched under it."""
        return cls(
            reporter=reporter or Reporter(),
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )
