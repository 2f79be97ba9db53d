"""Atomic writes at the edges: a full disk, a folder that refuses writes, temporary files left by kill -9."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from neuroexec import atomic
from neuroexec.errors import DiskFull, FolderNotWritable
from neuroexec.maps.checkpoints import load_checkpoint, save_model


def _no_room(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FillsUp(io.BufferedWriter):
    """A file on a disk with `room` bytes left: the write past it fails as a real one would."""

    room = 2000

    def write(self, data) -> int:
        if self.tell() + len(memoryview(data).cast("B")) > self.room:
            _no_room()
        return super().write(data)


class _Tiny(_FillsUp):
    room = 5


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_full_disk_at_fsync_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "maps" / "maps.json"
    atomic.write_json(path, {"architecture": "TinyCNN"})
    old = path.read_bytes()
    monkeypatch.setattr(atomic.os, "fsync", _no_room)
    with pytest.raises(DiskFull) as error:
        atomic.write_json(path, {"architecture": "Conv5_FC3"})
    assert str(error.value).startswith(f"no space left on device while writing {path};")
    assert error.value.exit_code == 1
    assert path.read_bytes() == old and _leftovers(path.parent) == []


def test_a_full_disk_during_torch_save_is_not_torchs_enforce_fail(tmp_path, monkeypatch):
    path = tmp_path / "split-0" / "best-loss" / "model.pth.tar"
    save_model(path, {"w": torch.zeros(3)}, epoch=1, name="TinyCNN")
    old = path.read_bytes()
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _FillsUp(io.FileIO(fd, "w")))
    with pytest.raises(DiskFull, match=f"^no space left on device while writing {path}") as error:
        save_model(path, {"w": torch.randn(10_000)}, epoch=2, name="TinyCNN")
    assert "inline_container" not in str(error.value) and "enforce fail" not in str(error.value)
    monkeypatch.undo()
    assert path.read_bytes() == old and load_checkpoint(path)["epoch"] == 1
    assert _leftovers(path.parent) == []


def test_a_full_disk_while_writing_a_table_or_creating_its_folder(tmp_path, monkeypatch):
    frame = pd.DataFrame({"participant_id": ["sub-1"], "label": ["AD"]})
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: io.TextIOWrapper(_Tiny(io.FileIO(fd, "w"))))
    with pytest.raises(DiskFull, match="while writing .*data.tsv"):
        atomic.write_tsv(tmp_path / "data.tsv", frame)
    assert _leftovers(tmp_path) == [] and not (tmp_path / "data.tsv").exists()
    monkeypatch.setattr(Path, "mkdir", _no_room)
    with pytest.raises(DiskFull, match="while writing .*new/data.tsv"):
        atomic.write_tsv(tmp_path / "new" / "data.tsv", frame)


@pytest.mark.parametrize(
    ("code", "words"), [(errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")]
)
def test_a_folder_that_refuses_writes_is_named(tmp_path, monkeypatch, code, words):
    real_open = os.open

    def refusing_open(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args)

    (tmp_path / "maps").mkdir()
    monkeypatch.setattr(atomic.os, "open", refusing_open)
    with pytest.raises(FolderNotWritable, match=f"^cannot write into {tmp_path / 'maps'}: .*{words}"):
        atomic.write_text(tmp_path / "maps" / "maps.json", "{}")
    monkeypatch.undo()

    def refusing_mkdir(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "mkdir", refusing_mkdir)
    with pytest.raises(FolderNotWritable, match=f"^cannot write into {tmp_path}: .*{words}"):
        atomic.write_text(tmp_path / "caps" / "subjects" / "participants.tsv", "x")


def test_files_and_folders_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic.write_text(tmp_path / "a" / "b" / "c.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a" / "b" / "c.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750


WRITER = """
import sys
from neuroexec.atomic import atomic_open
with atomic_open(sys.argv[1], "w") as f:
    f.write("partial")
    f.flush()
    print("writing", flush=True)
    sys.stdin.readline()  # until told to finish (or killed)
"""


def _writer(target: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "writing\n"  # its temporary file exists now
    return process


def test_the_sweep_removes_a_killed_writers_file_and_keeps_a_live_ones(tmp_path):
    killed = _writer(tmp_path / "split-0" / "model.pth.tar")
    live = _writer(tmp_path / "split-1" / "model.pth.tar")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    dead_file = tmp_path.glob("split-0/.model.pth.tar.*.tmp").__next__()
    live_file = tmp_path.glob("split-1/.model.pth.tar.*.tmp").__next__()
    assert f".{killed.pid}-" in dead_file.name and f".{live.pid}-" in live_file.name
    try:
        assert atomic.sweep_temporaries(tmp_path) == [dead_file]
        assert live_file.exists() and atomic.sweep_temporaries(tmp_path) == []
    finally:
        live.communicate("go\n")
    assert live.returncode == 0 and (tmp_path / "split-1" / "model.pth.tar").read_text() == "partial"
    assert list(tmp_path.rglob("*.tmp")) == []


def test_the_sweep_waits_for_another_hosts_file_to_be_stale_and_leaves_other_names(tmp_path):
    other = tmp_path / ".data.tsv.4242-4026531836@node-17.cluster.0123abcd.tmp"
    older_name = tmp_path / ".data.tsv.k2j4h5g6.tmp"  # tempfile's name: not provably ours
    mine = tmp_path / "notes.tmp"
    for file in (other, older_name, mine):
        file.write_text("x")
    assert atomic.sweep_temporaries(tmp_path) == []  # written a moment ago: maybe a live job
    old = time.time() - atomic.STALE_AFTER_S - 60
    for file in (other, older_name, mine):
        os.utime(file, (old, old))
    assert atomic.sweep_temporaries(tmp_path) == [other]
    assert older_name.exists() and mine.exists()


def test_a_long_name_still_gets_a_temporary_file_within_the_name_limit(tmp_path):
    path = tmp_path / ("x" * 250 + ".pt")
    atomic.save_torch(path, {"w": torch.zeros(1)})
    assert load_checkpoint(path)["w"].shape == (1,)


CLI_SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
"""


def test_apply_on_a_full_disk_says_so_without_a_traceback_and_continues_later(tmp_path, monkeypatch, capsys):
    from neuroexec.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(CLI_SPEC)
    real_fdopen = os.fdopen

    def fills_up_on_models(fd, mode="r", *args, **kwargs):
        if "model.pth.tar" in os.readlink(f"/proc/self/fd/{fd}"):  # the disk fills up when training saves
            return _FillsUp(io.FileIO(fd, "w"))
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "fdopen", fills_up_on_models)
    assert main(["apply", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "no space left on device while writing " in err and "model.pth.tar" in err
    assert "Traceback" not in err and "enforce fail" not in err and "unexpected error" not in err
    assert list((tmp_path / "maps").rglob("*.tmp")) == []
    monkeypatch.undo()
    assert main(["apply", str(spec)]) == 0  # room again: apply continues
    assert list((tmp_path / "maps/cnn").rglob("model.pth.tar"))


def test_a_full_disk_in_tensorboards_own_writer_is_the_same_sentence(tmp_path, monkeypatch, capsys):
    from torch.utils.tensorboard import SummaryWriter

    from neuroexec.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(CLI_SPEC)
    monkeypatch.setattr(SummaryWriter, "add_scalar", _no_room)  # it raises without naming its file
    assert main(["apply", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"no space left on device while writing into {tmp_path / 'maps' / 'cnn'}: free some space" in err
    assert "unexpected error" not in err and "Traceback" not in err


def test_apply_into_a_read_only_folder_names_it_without_a_traceback(tmp_path, monkeypatch, capsys):
    from neuroexec.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(CLI_SPEC)
    real_open = os.open

    def read_only_split(path, flags, *args):
        if flags & os.O_CREAT and "split-0" in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(atomic.os, "open", read_only_split)
    assert main(["apply", str(spec)]) == 1
    err = capsys.readouterr().err
    folder = re.escape(str(tmp_path / "maps" / "cnn"))
    assert re.search(rf"cannot write into {folder}/\S*split-0: it is on a read-only file system", err)
    assert "Traceback" not in err and "unexpected error" not in err
