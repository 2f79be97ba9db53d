"""Scoped apply locks: one split per cluster job on the same MAPS runs side by side; the same split or a
MAPS-wide step is refused; state records of concurrent applies are merged, not lost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.errors import LockHeld
from neuroexec.lock import acquire, lock_file, locked, release
from neuroexec.plan.state import StateStore


@pytest.fixture
def foreign_pid():
    """A live process that is not us (a lock it 'holds' is not stale)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def hold(home: Path, scope: str, pid: int) -> None:
    path = lock_file(home, scope)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "earlier"}))


def test_other_splits_run_side_by_side_but_the_same_split_and_the_whole_folder_are_refused(
    tmp_path, foreign_pid
):
    hold(tmp_path, "split-0", foreign_pid)
    release(acquire(tmp_path, "split-1"))
    with pytest.raises(LockHeld, match=f"split-0: pid {foreign_pid}"):
        acquire(tmp_path, "split-0")
    with pytest.raises(LockHeld, match="split-0"):
        acquire(tmp_path)  # a MAPS-wide step waits for no split: it is refused
    assert not lock_file(tmp_path).exists()  # the refused whole lock was released


def test_a_whole_folder_lock_refuses_every_split(tmp_path, foreign_pid):
    hold(tmp_path, "", foreign_pid)
    with pytest.raises(LockHeld, match="the whole folder"):
        acquire(tmp_path, "split-2")


def test_locked_takes_whole_folder_once_and_releases_everything(tmp_path):
    with locked([(tmp_path, "split-0"), (tmp_path, ""), (tmp_path / "other", "split-1")]):
        assert lock_file(tmp_path).exists() and not lock_file(tmp_path, "split-0").exists()
        assert lock_file(tmp_path / "other", "split-1").exists()
    assert not list(tmp_path.rglob("lock*"))


def test_stale_split_lock_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hold(tmp_path, "split-0", dead.pid)
    release(acquire(tmp_path, "split-0"))


def test_state_records_of_two_writers_are_merged(tmp_path):
    first, second = StateStore(tmp_path), StateStore(tmp_path)
    assert first.record("a") is None and second.record("b") is None  # both loaded before either wrote
    first.put("a", {"fingerprint": "1"}, {"x.tsv": {"size": 1}})
    second.put("b", {"fingerprint": "2"}, {})
    merged = StateStore(tmp_path)
    assert merged.record("a") == {"fingerprint": "1"} and merged.record("b") == {"fingerprint": "2"}
    assert merged.file_cache() == {"x.tsv": {"size": 1}}
