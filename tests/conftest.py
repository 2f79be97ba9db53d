"""Session-wide test setup.

Triton fixes interpreted vs compiled mode for the whole process when it is first imported, and other
code (torch.compile's inductor) may import it before the kernel tests run. Without a GPU every Triton
kernel in this process must run in the interpreter, so the mode is set here, before anything imports
triton. On a CUDA machine the kernels are tested compiled (export TRITON_INTERPRET=1 to interpret them).
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def specs_round_trip(monkeypatch):
    """Every spec a ClinicaDL-style command writes or prints in a test reads back as the document it
    built (tests/spec/test_toml_writer.py)."""
    from neuroexec.spec import toml_writer
    from tests.helpers import round_trip_checked

    monkeypatch.setattr(toml_writer, "tomli_w", round_trip_checked(toml_writer.tomli_w.dumps))
