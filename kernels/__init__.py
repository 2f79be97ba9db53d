"""Triton kernels for the hot paths, each with its torch fallback and a float64 reference.

One module per kernel (`recon`, `saliency`, `patches`). Importing this package never requires triton;
`neuroexec.ops` is the only place that chooses between a kernel and its fallback.
"""

from __future__ import annotations

from neuroexec.kernels._triton import available as triton_available
from neuroexec.kernels._triton import interpret_mode

__all__ = ["interpret_mode", "triton_available"]
