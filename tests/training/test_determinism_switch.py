"""compute.deterministic's switch (training/epoch_rules.determinism): the eager flag and inductor's, set
and restored, without importing inductor (and dynamo, ~3 s per process) where nothing is compiled."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from neuroexec.training.epoch_rules import INDUCTOR_VARIABLE, determinism


def test_the_flags_are_set_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv(INDUCTOR_VARIABLE, raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    with determinism(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ[INDUCTOR_VARIABLE] == "1"  # a compile inside reads it
    assert torch.are_deterministic_algorithms_enabled() == before
    assert INDUCTOR_VARIABLE not in os.environ


def test_the_users_inductor_variable_is_left_alone(monkeypatch):
    monkeypatch.setenv(INDUCTOR_VARIABLE, "0")
    with determinism(True):
        assert os.environ[INDUCTOR_VARIABLE] == "0"
    assert os.environ[INDUCTOR_VARIABLE] == "0"


def test_a_deterministic_training_compiles_nothing_imports_no_inductor():
    code = (
        "import sys, torch\n"
        "from neuroexec.training.epoch_rules import determinism\n"
        "with determinism(True):\n"
        "    torch.nn.Linear(2, 1)(torch.ones(1, 2)).sum().backward()\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "print('torch._inductor.config' in sys.modules, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_where_inductor_is_loaded_its_flag_follows_too():
    code = (
        "import torch, torch._inductor.config as c\n"
        "from neuroexec.training.epoch_rules import determinism\n"
        "with determinism(True):\n"
        "    inside = c.deterministic\n"
        "print(inside, c.deterministic)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != INDUCTOR_VARIABLE}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["True", "False"]
