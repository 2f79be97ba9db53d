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


def test_a_sigterm_that_lands_in_an_import_stops_cleanly_and_requeues(monkeypatch, capsys):
    # SLURM's warning can come while the command still imports torch: the interrupt raised inside a
    # C extension's import surfaces as an ImportError ("cannot load module more than once per process").
    # It is a stop (130, requeued), not a failure: seen in a real job at its time limit.
    from neuroexec import cli
    from neuroexec.cluster import preempt

    requeued = []
    monkeypatch.setattr(preempt, "requeue_self", lambda: requeued.append(True))

    def importing(argv, flags):
        try:
            cli._terminated(signal.SIGTERM, None)
        except KeyboardInterrupt:
            raise ImportError("cannot load module more than once per process") from None

    monkeypatch.setattr(cli, "_run", importing)
    assert cli.main(["apply", "spec.toml"]) == 130
    assert requeued == [True]
    assert capsys.readouterr().err.rstrip().endswith(INTERRUPTED)


def test_an_error_without_sigterm_is_still_an_error(monkeypatch):
    from neuroexec import cli

    def broken(argv, flags):
        raise ImportError("no module named x")

    monkeypatch.setattr(cli, "_run", broken)
    cli._TERMINATED.clear()
    try:
        cli.main(["apply", "spec.toml"])
    except ImportError as exc:
        assert "no module named x" in str(exc)
    else:
        raise AssertionError("an ImportError without SIGTERM must not pass as an interrupt")
