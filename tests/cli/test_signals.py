"""SIGTERM, what SLURM sends at a job's time limit, stops an apply as Ctrl-C does: exit 130, one clean
sentence, no traceback, locks released, and the next apply resumes the training where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SPEC = """
version = 1
[compute]
workers = 0
[datasets.demo]
caps = "data/demo"
generate = { subjects = 6, resolution_mm = 8, seed = 1 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 500 }
"""
ROOT = Path(__file__).resolve().parents[2]
INTERRUPTED = "interrupted: finished steps are kept; run apply again to continue."


def start_apply(spec: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "neuroexec", "apply", str(spec), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
    )


def wait_for(condition, proc: subprocess.Popen, log: Path, limit_s: float = 240) -> None:
    """Poll until `condition()` holds (the apply has reached a point), failing if the apply ends first."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert proc.poll() is None, f"apply ended early ({proc.returncode}):\n{log.read_text()}"
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def terminate(proc: subprocess.Popen, log: Path) -> str:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 130, log.read_text()
    err = log.read_text()
    assert err.rstrip().endswith(INTERRUPTED) and "Traceback" not in err, err
    return err


def test_sigterm_stops_apply_like_ctrl_c_and_the_next_apply_resumes(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    maps = tmp_path / "maps/cnn"
    resume_file = maps / "split-0/tmp/resume.pth.tar"

    log = tmp_path / "first.log"
    proc = start_apply(spec, log)
    wait_for(resume_file.is_file, proc, log)  # at least one epoch done and saved for a resume
    terminate(proc, log)

    log = tmp_path / "second.log"
    proc = start_apply(spec, log)
    wait_for(lambda: "resuming after epoch" in log.read_text(), proc, log)
    err = terminate(proc, log)  # a second time limit, just as clean
    assert "[1/1] + model.cnn.train[split-0]" in err  # generate, extract, split...: kept, not redone
    assert "split-0: resuming after epoch " in err and "training starts over" not in err
