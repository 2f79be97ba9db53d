"""Rule 11, shared disks: a real apply (generate, extract, split, train, predict, interpret) creates every
file and folder of its CAPS and MAPS with the user's umask, and the next apply removes the temporary
files a killed run left, never those of a live one."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "other"
models = ["cnn"]
interpret = [{ name = "grad", target = "AD" }]
"""


def _apply(spec: Path, target: str | None = None, messages: list[str] | None = None):
    reporter = Reporter(quiet=True)
    if messages is not None:
        reporter.info = messages.append  # what apply tells the user
    return apply(make_plan(load_spec(spec)), RunContext(reporter=reporter), target)


def _modes(root: Path) -> dict[str, set[str]]:
    """mode -> paths under root, for files and folders (symbolic links are not followed)."""
    found: dict[str, set[str]] = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            continue
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
        found.setdefault(f"{kind} {st.st_mode & 0o777:o}", set()).add(str(path.relative_to(root)))
    return found


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_every_file_and_folder_of_an_apply_follows_the_umask(tmp_path, umask):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    previous = os.umask(umask)
    try:
        result = _apply(spec)
    finally:
        os.umask(previous)
    assert any(".predict" in step for step in result.ran) and any(".train" in step for step in result.ran)
    for home in ("data/demo", "data/other", "maps/cnn"):
        modes = _modes(tmp_path / home)
        expected = {f"file {0o666 & ~umask:o}", f"folder {0o777 & ~umask:o}"}
        assert set(modes) == expected, {mode: sorted(paths)[:5] for mode, paths in modes.items()}
        files = modes[f"file {0o666 & ~umask:o}"]
        assert len(files) > 5 and not [f for f in files if f.endswith(".tmp")]
    maps_files = _modes(tmp_path / "maps/cnn")[f"file {0o666 & ~umask:o}"]
    assert any(f.endswith("model.pth.tar") for f in maps_files)
    assert any("events.out.tfevents" in f for f in maps_files)  # TensorBoard's own writer too
    assert any(f.endswith(".pt") for f in _modes(tmp_path / "data/demo")[f"file {0o666 & ~umask:o}"])


WRITER = """
import sys
from neuroexec.atomic import atomic_open
with atomic_open(sys.argv[1], "wb") as f:
    f.write(b"half a checkpoint")
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()
"""


def _writer(target: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "writing\n"
    return process


def test_the_next_apply_removes_what_a_killed_run_left_and_keeps_a_live_writers_file(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    _apply(spec, "model.cnn.split")  # generate, extract, split: the CAPS and the MAPS exist
    killed = [_writer(tmp_path / path) for path in ("maps/cnn/split-0/model.pth.tar", "data/demo/x.pt")]
    for process in killed:
        process.send_signal(signal.SIGKILL)
        process.wait()
    live = _writer(tmp_path / "maps/cnn/split-1/model.pth.tar")  # another job, on another split
    left = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.tmp"))
    assert len(left) == 3
    messages: list[str] = []
    try:
        _apply(spec, "model.cnn.train*", messages)
        remaining = [p.relative_to(tmp_path) for p in tmp_path.rglob("*.tmp")]
        assert [str(p.parent) for p in remaining] == ["maps/cnn/split-1"]
    finally:
        live.communicate("go\n")
    assert live.returncode == 0 and (tmp_path / "maps/cnn/split-1/model.pth.tar").read_bytes()
    assert any("Removed 1 temporary file(s)" in m and "data/demo" in m for m in messages)
    assert any("Removed 1 temporary file(s)" in m and "maps/cnn" in m for m in messages)
