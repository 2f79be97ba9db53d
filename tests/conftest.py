"""Session-wide test setup.

Triton fixes interpreted vs compiled mode for the whole process when it is first imported, and other
code (torch.compile's inductor) may import it before the kernel tests run. Without a GPU every Triton
kernel in this process must run in the interpreter, so the mode is set here, before anything imports
triton. On a CUDA machine the kernels are tested compiled (export TRITON_INTERPRET=1 to interpret them).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from tests.xdist_groups import GROUPS_ENV, GroupScheduling, write_groups

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):  # one torch thread per worker (and in what it starts): workers
    # side by side already fill the cores, and a second thread on busy cores waits for its turn
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True)
def specs_round_trip(monkeypatch):
    """Every spec a ClinicaDL-style command writes or prints in a test reads back as the document it
    built (tests/spec/test_toml_writer.py)."""
    from neuroexec.spec import toml_writer
    from tests.helpers import round_trip_checked

    monkeypatch.setattr(toml_writer, "tomli_w", round_trip_checked(toml_writer.tomli_w.dumps))


def pytest_configure(config):
    """Under pytest-xdist, the folder where the workers write the groups of tests (tests/xdist_groups.py)."""
    if config.getoption("dist", "no") != "no" and not os.environ.get("PYTEST_XDIST_WORKER"):
        config.test_groups = Path(tempfile.mkdtemp(prefix="neuroexec-test-groups-"))
        os.environ[GROUPS_ENV] = str(config.test_groups)


def pytest_unconfigure(config):
    folder = getattr(config, "test_groups", None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_xdist_make_scheduler(config, log):
    return GroupScheduling(config, log, config.test_groups)


def pytest_collection_modifyitems(items):
    write_groups(items)
