"""compute.compensation's cuBLAS workspace under deterministic CUDA (the CUDA path faked, as in
test_compute_options.py): a CUBLAS_WORKSPACE_CONFIG the user set wins, the variable is restored after
the training, and a later training of the process that needs another workspace is refused (PyTorch
reads the variable once per process)."""

from __future__ import annotations

import os

import pytest
import torch

from neuroexec.errors import NeuroexecError
from neuroexec.training import epoch_rules
from neuroexec.training.epoch_rules import determinism

CUDA = "CUBLAS_WORKSPACE_CONFIG"


@pytest.fixture
def fresh_process(monkeypatch):
    """torch sees a GPU, used by the trainings (CUDA initialised); no cuBLAS workspace read yet."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(epoch_rules, "_process_workspace", {})
    monkeypatch.delenv(CUDA, raising=False)
    return monkeypatch


def test_the_users_workspace_wins_and_stays(fresh_process):
    fresh_process.setenv(CUDA, ":16:8")
    with determinism(True, "memory"):
        assert os.environ[CUDA] == ":16:8"
    assert os.environ[CUDA] == ":16:8"


def test_the_variable_is_restored_after_the_training(fresh_process):
    with determinism(True, "time"):
        assert os.environ[CUDA] == ":16:8"
    assert CUDA not in os.environ


def test_a_later_training_needing_another_workspace_is_refused(fresh_process):
    with determinism(True, "memory"):
        pass
    with determinism(True, "memory"):  # the same workspace: trains
        pass
    with pytest.raises(NeuroexecError) as error:
        with determinism(True, "time"):
            pytest.fail("trained under the first training's workspace")
    text = str(error.value)
    assert "compute.compensation = 'time' needs cuBLAS's workspace :16:8" in text
    assert "already runs with :4096:8" in text and "apply again" in text
    assert CUDA not in os.environ and not torch.are_deterministic_algorithms_enabled()


def test_the_users_workspace_serves_every_compensation(fresh_process):
    fresh_process.setenv(CUDA, ":4096:8")
    for compensation in ("memory", "time"):
        with determinism(True, compensation):
            assert os.environ[CUDA] == ":4096:8"


def test_a_training_that_did_not_use_cuda_fixes_no_workspace(fresh_process):
    fresh_process.setattr(torch.cuda, "is_initialized", lambda: False)
    with determinism(True, "memory"):
        pass
    with determinism(True, "time"):
        assert os.environ[CUDA] == ":16:8"
