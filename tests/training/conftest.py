"""One DDP project for the session: the tests that compare 2 CPU processes (gloo, under torchrun) with one
process on the same global batch (test_ddp.py, test_evaluation_steps.py, test_weighted_sampler.py) read
their models from it. Each case is a pair of models on one dataset of 12 subjects, batch size 1: `<case>_one`
trained in this process with 6 accumulated batches, `<case>_two` with 3 in each of 2 processes. The three
`_two` trainings run in ONE torchrun launch (each launch costs a torch import in every rank)."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.training.training_specs import TORCHRUN, needs_torchrun, run_apply, write_spec

SGD = 'task = "classification"\ndropout = 0.0\ntrain = {{ epochs = 1, learning_rate = 0.05, optimizer = "SGD", weight_decay = 0.0, accumulation_steps = {n}{extra} }}'
CASES = {
    # test_ddp.py: the 2 processes also share one in-memory copy of the images (compute.cache)
    "ddp": ("", "\ncompute = { cache = true }"),
    # test_evaluation_steps.py: an evaluation after every optimizer step
    "steps": (", evaluation_steps = {n}", ""),
    # test_weighted_sampler.py: the ranks' shares of one weighted draw
    "weighted": (', sampler = "weighted"', ""),
}


@dataclass(frozen=True)
class DdpProject:
    root: Path
    output: str  # what the torchrun launch printed
    shm_before: frozenset[Path]  # /dev/shm's neuroexec caches before the launch


def _models() -> dict[str, str]:
    models = {}
    for case, (extra, two_extra) in CASES.items():
        for name, n in (("one", 6), ("two", 3)):
            models[f"{case}_{name}"] = SGD.format(n=n, extra=extra.format(n=n)) + (
                two_extra if name == "two" else ""
            )
    return models


@pytest.fixture(scope="session")
def ddp_project(tmp_path_factory: pytest.TempPathFactory) -> DdpProject:
    if needs_torchrun.args[0]:
        pytest.skip("no torchrun")
    root = tmp_path_factory.mktemp("ddp")
    path = write_spec(root, _models(), subjects=12, batch_size=1)
    for case in CASES:
        run_apply(path, target=f"model.{case}_one.train*")  # also prepares the data
    run_apply(path, target="model.*.split")
    shm_before = frozenset(Path("/dev/shm").glob("neuroexec-cache-*"))
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    command = [str(TORCHRUN), "--nproc-per-node", "2", "--master-port", port, "-m", "neuroexec"]
    command += ["apply", str(path), *(a for case in CASES for a in ("--target", f"model.{case}_two.train*"))]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return DdpProject(root, done.stdout + done.stderr, shm_before)
