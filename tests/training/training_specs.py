"""Tiny training specs (synthetic CAPS at 8 mm, TinyCNN) run through the real plan/apply path."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

HEADER = """
version = 1
[compute]
workers = 0
batch_size = {batch_size}
seed = 0
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = {subjects}, resolution_mm = 8, seed = 1 }}
"""

MODEL = """
[models.{name}]
maps = "maps/{name}"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
{body}
"""


def write_spec(tmp_path: Path, models: dict[str, str], subjects: int = 12, batch_size: int = 4) -> Path:
    """A spec with the demo dataset and one TinyCNN model per entry (`body` = its extra TOML lines)."""
    text = HEADER.format(subjects=subjects, batch_size=batch_size)
    text += "".join(MODEL.format(name=name, body=body) for name, body in models.items())
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def run_apply(path: Path, target: str | None = None):
    spec = load_spec(path)
    return apply(make_plan(spec), RunContext(reporter=Reporter(quiet=True)), target)


def train_task(path: Path, model: str, split: int = 0):
    """The TrainTask payload of `model.<model>.train[split-<split>]`."""
    plan = make_plan(load_spec(path))
    step_id = f"model.{model}.train[split-{split}]"
    return next(p.step.payload for p in plan.steps if p.step.id == step_id)


TORCHRUN = Path(sys.executable).parent / "torchrun"
# for the tests that launch torchrun: skipped where the environment has none
needs_torchrun = pytest.mark.skipif(
    shutil.which("torchrun", path=str(TORCHRUN.parent)) is None, reason="no torchrun"
)


def apply_with_torchrun(path: Path, target: str, processes: int = 2) -> str:
    """`neuroexec apply PATH --target TARGET` in `processes` CPU processes under torchrun, on a port no
    other test (or run) holds now; asserts it succeeded and returns its output."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    command = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", port, "-m", "neuroexec"]
    done = subprocess.run(
        [*command, "apply", str(path), "--target", target],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr
