"""A real SIGTERM (os.kill) to `neuroexec apply` in training: exit 130 after the checkpoint, the lock
released, the job requeued where it asks for it (a stand-in `scontrol` records the call, or fails:
a warning only: tests/cluster/test_preempt_slurm.py), and the training resumed to the model of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.test_preempt import assert_same_training, body, to_the_end
from tests.training.training_specs import run_apply, write_spec


def fake_scontrol(folder: Path, exit_code: int, state: str = "RUNNING") -> Path:
    """A `scontrol` that appends its arguments to folder/calls; `show job` says JobState=`state`,
    `requeue` exits with `exit_code`."""
    folder.mkdir()
    script = folder / "scontrol"
    script.write_text(
        f'#!/bin/sh\necho "$@" >> {folder}/calls\n'
        f'if [ "$2" = show ]; then echo "JobId=$4 JobState={state} Reason=None"; exit 0; fi\n'
        f'echo "no such job" >&2\nexit {exit_code}\n'
    )
    script.chmod(0o755)
    return folder


def killed_in_training(path: Path, maps: MapsLayout, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`neuroexec apply` of model a's training, sent SIGTERM once its first epoch's checkpoint is written."""
    argv = [sys.executable, "-m", "neuroexec", "apply", str(path), "--target", "model.a.train*"]
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 120
        while not maps.resume_state(0).is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


EPOCHS = 5


def test_sigterm_in_training_exits_130_checkpointed_and_requeued(tmp_path):
    path = write_spec(tmp_path, {"ref": body(epochs=EPOCHS), "a": body(epochs=EPOCHS)}, batch_size=2)
    run_apply(path, target="dataset.*")
    bin_dir = fake_scontrol(tmp_path / "bin", 0)
    env = {
        **os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "NEUROEXEC_SLURM_REQUEUE": "1", "SLURM_JOB_ID": "4242",
    }  # fmt: skip
    env.pop(INTERRUPT_ENV, None)
    maps = MapsLayout(tmp_path / "maps/a")
    done = killed_in_training(path, maps, env)
    assert done.returncode == 130, done.stderr[-2000:]
    assert "interrupted: finished steps are kept" in done.stderr
    assert "requeue: scontrol requeue 4242" in done.stderr
    assert (bin_dir / "calls").read_text() == "-o show job 4242\nrequeue 4242\n"
    assert load_checkpoint(maps.resume_state(0))["progress"]["epoch"] < EPOCHS - 1
    # the lock is released and the staged run resumes, to the model of an uninterrupted training
    to_the_end(path, "a", EPOCHS)
    assert "split-0: training resumed" in maps.staged_information_log(0).read_text()
    to_the_end(path, "ref", EPOCHS)
    assert_same_training(tmp_path, "ref", "a")
