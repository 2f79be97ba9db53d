"""neuroexec: declarative, TOML-driven deep learning on 3D brain MRI."""

from __future__ import annotations

__version__ = "0.1.0"

# Bumped whenever the bytes a step writes change meaning; part of every step fingerprint.
FORMAT_VERSION = 1
