"""The run context: what a step needs besides its own config. Device, kernel choice, reporter and the
distributed rank travel here instead of in globals."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neuroexec.errors import DeviceError
from neuroexec.progress import Reporter


def resolve_device(requested: str) -> torch.device:
    """`auto` -> cuda when available else cpu; `cuda` without a GPU is an error, not a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceError("compute.device = 'cuda' but no CUDA GPU is available (use 'cpu' or 'auto')")
    return torch.device(requested)


@dataclass
class RunContext:
    """Handed to every step's run function."""

    spec_dir: Path
    reporter: Reporter = field(default_factory=Reporter)
    rank: int = 0
    world_size: int = 1
    # Fingerprints of the steps the running step depends on, as they are for this run (set by the
    # executor for each step): what a step that resumes partial work checks that work against.
    upstream: dict[str, str] = field(default_factory=dict)

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes into a MAPS."""
        return self.rank == 0

    @classmethod
    def from_env(cls, spec_dir: Path, reporter: Reporter | None = None) -> RunContext:
        """Pick up torchrun's RANK / WORLD_SIZE when launched under it."""
        return cls(
            spec_dir=spec_dir,
            reporter=reporter or Reporter(),
            rank=int(os.environ.get("RANK", "0")),
            world_size=int(os.environ.get("WORLD_SIZE", "1")),
        )
