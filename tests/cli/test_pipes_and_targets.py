"""Failures of the command line's surroundings are sentences, not tracebacks: a stdout closed early
(`plan --json | head -1`), a --target that matches nothing (exit 2, naming the steps there are), a
read-only MAPS or CAPS (exit 2, naming the folder)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.cli import main

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
split = { n_splits = 5 }
train = { epochs = 1 }
[groups.test]
dataset = "demo"
models = ["cnn"]
skip_leak_check = true
"""
ROOT = Path(__file__).resolve().parents[2]
CLEAN = ("Traceback", "BrokenPipeError", "Exception ignored")


def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def run_with_closed_stdout(*argv: str) -> subprocess.CompletedProcess:
    """Run neuroexec with a stdout whose reader is already gone (as `| head -1` once head has exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "neuroexec", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
    finally:
        os.close(write_end)


def test_plan_json_into_a_closed_pipe_is_not_an_error(tmp_path):
    path = spec_file(tmp_path)
    done = run_with_closed_stdout("plan", str(path), "--json")
    assert done.returncode == 0 and not any(word in done.stderr for word in CLEAN), done.stderr


def test_apply_with_a_closed_stdout_still_applies(tmp_path):
    path = spec_file(tmp_path)
    done = run_with_closed_stdout("apply", str(path), "--target", "dataset.demo.generate", "--quiet")
    assert done.returncode == 0 and not any(word in done.stderr for word in CLEAN), done.stderr
    assert "Applied 1 step." in done.stderr and (tmp_path / "data/demo/participants.tsv").is_file()


def test_a_target_that_matches_nothing_is_bad_input_naming_the_steps(tmp_path, capsys):
    path = spec_file(tmp_path)
    for command in ("plan", "apply"):
        assert main([command, str(path), "--target", "model.cnn.trian*"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --target 'model.cnn.trian*' matches no step; the steps are: ")
        assert "dataset.demo.generate, dataset.demo.extract[image], model.cnn.split, " in err
        assert "model.cnn.train[split-0] ... [split-4] (5 steps)" in err
        assert "group.test.predict[cnn/split-0/best-loss] ... [cnn/split-4/best-loss] (5 steps)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]  # nothing ran


def read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` behave as on a read-only mount (tests run as root, which chmod does not stop)."""
    real_open, real_mkdir = os.open, os.mkdir

    def refuse(path) -> None:
        if str(path).startswith(str(folder)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    def fake_open(path, *args, **kwargs):
        refuse(path)
        return real_open(path, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


def test_a_read_only_caps_or_maps_is_named_in_one_sentence(tmp_path, monkeypatch, capsys):
    path = spec_file(tmp_path)
    caps, maps = tmp_path / "data/demo", tmp_path / "maps/cnn"
    with monkeypatch.context() as patch:
        read_only(patch, caps)
        assert main(["apply", str(path), "--target", "dataset.demo.generate", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write into {caps}: it is on a read-only file system;" in err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: ")  # the last word
    assert main(["apply", str(path), "--target", "dataset.demo.extract[image]", "--quiet"]) == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:
        read_only(patch, maps)
        assert main(["apply", str(path), "--target", "model.cnn.split", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write into {maps}: it is on a read-only file system;" in err
    assert "Traceback" not in err and not maps.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into folders without write permission")
def test_a_maps_without_write_permission_is_named(tmp_path, capsys):
    path = spec_file(tmp_path)
    assert main(["apply", str(path), "--target", "dataset.demo.extract[image]", "--quiet"]) == 0
    maps = tmp_path / "maps/cnn"
    maps.mkdir(parents=True)
    maps.chmod(0o555)
    try:
        assert main(["apply", str(path), "--target", "model.cnn.split", "--quiet"]) == 2
    finally:
        maps.chmod(0o755)
    assert f"error: cannot write into {maps}: permission denied;" in capsys.readouterr().err
