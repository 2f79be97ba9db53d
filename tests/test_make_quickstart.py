"""`make quickstart` runs apply, report and report --html with one torch thread (OMP_NUM_THREADS=1)
unless QUICKSTART_THREADS says otherwise: the README's numbers do not depend on the number of cores, and
on busy cores no convolution waits for a second thread. The commands run here are a stand-in
`neuroexec` that writes down its arguments and the thread variable it was given."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def run_quickstart(tmp_path: Path, *args: str) -> list[str]:
    """The lines the stand-in neuroexec wrote: 'OMP_NUM_THREADS=<value> <arguments>' per command."""
    venv, calls = tmp_path / "venv", tmp_path / "calls.txt"
    (venv / "bin").mkdir(parents=True)
    stand_in = venv / "bin" / "neuroexec"
    stand_in.write_text(f'#!/bin/sh\necho "OMP_NUM_THREADS=${{OMP_NUM_THREADS-unset}} $*" >> {calls}\n')
    stand_in.chmod(0o755)
    env = {**os.environ, "OMP_NUM_THREADS": "7"}  # a user's own setting does not leak into the quickstart
    command = ["make", "-s", "-o", f"{venv}/.installed", "quickstart", f"VENV={venv}", *args]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return calls.read_text().splitlines()


def test_make_quickstart_runs_its_three_commands_with_one_thread(tmp_path):
    spec = "spec/examples/quickstart.toml"
    assert run_quickstart(tmp_path) == [
        f"OMP_NUM_THREADS=1 apply {spec}",
        f"OMP_NUM_THREADS=1 report {spec}",
        f"OMP_NUM_THREADS=1 report {spec} --html",
    ]


def test_quickstart_threads_sets_another_thread_count(tmp_path):
    calls = run_quickstart(tmp_path, "QUICKSTART_THREADS=3")
    assert len(calls) == 3 and all(line.startswith("OMP_NUM_THREADS=3 ") for line in calls)
