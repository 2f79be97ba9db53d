"""Scoped apply locks on kernel file locks: one split per cluster job on the same MAPS runs side by side;
the same split or a MAPS-wide step is refused; contending processes never overlap; a lock goes with its
process (kill -9 included) and nobody else's release frees it; state records of concurrent applies are
merged, not lost."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec import lock as lock_module
from neuroexec.errors import FolderNotWritable, LockHeld, LockUnsupported
from neuroexec.lock import acquire, lock_file, locked, release, unlock
from neuroexec.plan.state import StateStore

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import json, sys
from pathlib import Path
from neuroexec.lock import acquire
path = acquire(Path(sys.argv[1]), sys.argv[2])
if len(sys.argv) > 3:  # pretend to run on another host (a cluster node)
    Path(path).write_text(json.dumps({"pid": 4242, "host": sys.argv[3], "started": "earlier"}))
print("held", flush=True)
sys.stdin.read()  # hold until the test closes stdin or kills us
"""


@pytest.fixture
def holders():
    """Start processes that take a lock and hold it: holders(home, scope[, host]) -> Popen."""
    started: list[subprocess.Popen] = []

    def start(home: Path, scope: str = "", host: str | None = None) -> subprocess.Popen:
        argv = [sys.executable, "-c", HOLDER, str(home), scope, *([host] if host else [])]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        started.append(proc)
        line = proc.stdout.readline()
        assert line == "held\n", proc.stderr.read()
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def free(home: Path, scope: str = "") -> bool:
    """Whether another process could take this lock now (a fresh open conflicts like another process)."""
    path = lock_file(home, scope)
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_other_splits_run_side_by_side_but_the_same_split_and_the_whole_folder_are_refused(tmp_path, holders):
    other = holders(tmp_path, "split-0")
    release(acquire(tmp_path, "split-1"))
    with pytest.raises(LockHeld, match=f"split-0: pid {other.pid} on "):
        acquire(tmp_path, "split-0")
    with pytest.raises(LockHeld, match="split-0"):
        acquire(tmp_path)  # a MAPS-wide step waits for no split: it is refused
    assert free(tmp_path, "split-1") and not free(tmp_path, "split-0")
    other.stdin.close()
    other.wait()
    release(acquire(tmp_path))  # the refused attempts left nothing behind


def test_a_whole_folder_lock_refuses_every_split(tmp_path, holders):
    other = holders(tmp_path, "")
    with pytest.raises(LockHeld, match=f"the whole folder: pid {other.pid}"):
        acquire(tmp_path, "split-2")
    assert free(tmp_path, "split-2")  # the refused split released what it had taken


def test_locked_takes_whole_folder_once_and_releases_everything(tmp_path):
    with locked([(tmp_path, "split-0"), (tmp_path, ""), (tmp_path / "other", "split-1")]):
        assert not free(tmp_path) and not lock_file(tmp_path, "split-0").exists()
        assert not free(tmp_path / "other", "split-1")
        assert json.loads(lock_file(tmp_path).read_text())["pid"] == os.getpid()
    assert free(tmp_path) and free(tmp_path / "other", "split-1") and free(tmp_path / "other")
    assert lock_file(tmp_path).read_text() == ""  # the holder's note goes with the lock


def test_locks_are_reentrant_within_a_process(tmp_path, holders):
    path = acquire(tmp_path, "split-0")
    assert acquire(tmp_path, "split-0") == path
    release(path)
    assert not free(tmp_path, "split-0")  # one user left
    assert acquire(tmp_path) == lock_file(tmp_path)  # the split's shared lock becomes exclusive
    release(lock_file(tmp_path))
    release(path)
    assert free(tmp_path) and free(tmp_path, "split-0")
    # A refused upgrade keeps the split it had: the other job's split and ours still exclude a MAPS-wide step.
    holders(tmp_path, "split-1")
    path = acquire(tmp_path, "split-0")
    with pytest.raises(LockHeld, match="split-1"):
        acquire(tmp_path)
    assert not free(tmp_path, "split-0")
    release(path)
    assert free(tmp_path, "split-0")


def test_an_empty_just_created_lock_file_is_held_not_stale(tmp_path):
    path = lock_file(tmp_path, "split-0")
    path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # another apply, between creating and writing its name
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(LockHeld, match="split-0: a process that has not written its name yet"):
            acquire(tmp_path, "split-0")
        release(path)  # not ours: the other holder keeps it
        assert path.exists() and not free(tmp_path, "split-0")
        with pytest.raises(LockHeld):
            acquire(tmp_path, "split-0")
    finally:
        os.close(fd)
    assert acquire(tmp_path, "split-0") == path  # an empty file nobody holds is simply free
    release(path)
    assert free(tmp_path, "split-0")


def test_a_killed_holder_frees_its_lock_at_once(tmp_path, holders):
    other = holders(tmp_path, "split-0")
    with pytest.raises(LockHeld):
        acquire(tmp_path, "split-0")
    os.kill(other.pid, signal.SIGKILL)
    other.wait()
    assert free(tmp_path, "split-0") and free(tmp_path)  # at once: no timeout, no stale-lock guess
    assert json.loads(lock_file(tmp_path, "split-0").read_text())["pid"] == other.pid  # its note stays
    assert acquire(tmp_path, "split-0") == lock_file(tmp_path, "split-0")
    release(lock_file(tmp_path, "split-0"))
    assert acquire(tmp_path) == lock_file(tmp_path)
    release(lock_file(tmp_path))
    assert free(tmp_path, "split-0") and free(tmp_path)


def test_release_by_another_process_leaves_the_lock_held(tmp_path, holders):
    holders(tmp_path, "")
    release(lock_file(tmp_path))
    assert not free(tmp_path)
    with pytest.raises(LockHeld):
        acquire(tmp_path)


CONTENDER = """
import json, os, sys, time
from pathlib import Path
from neuroexec.errors import LockHeld
from neuroexec.lock import acquire, release
home, scope, go, rounds = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
marks = home / "marks"
while not go.exists():
    time.sleep(0.001)
entered = overlaps = refused = 0
deadline = time.monotonic() + 60
while entered < rounds and time.monotonic() < deadline:
    try:
        path = acquire(home, scope)
    except LockHeld:
        refused += 1
        time.sleep(0.0005)
        continue
    present = set(os.listdir(marks))
    if (present if not scope else present & {"whole", scope}):
        overlaps += 1
    try:
        os.close(os.open(marks / (scope or "whole"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        overlaps += 1
    time.sleep(0.001)
    try:
        os.unlink(marks / (scope or "whole"))
    except FileNotFoundError:  # another holder inside removed it
        overlaps += 1
    release(path)
    entered += 1
print(json.dumps({"entered": entered, "overlaps": overlaps, "refused": refused}))
"""


def test_contending_processes_never_hold_conflicting_locks_at_once(tmp_path):
    (tmp_path / "marks").mkdir()
    go = tmp_path / "go"
    scopes = ["", "", "", "split-0", "split-0", "split-1"]  # 3 whole-folder, 2 on one split, 1 on another
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(tmp_path), scope, str(go), "15"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for scope in scopes
    ]
    go.touch()  # all start together
    results = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    assert all(r["overlaps"] == 0 for r in results), results
    assert all(r["entered"] == 15 for r in results), results  # everyone got its turn
    assert sum(r["refused"] for r in results) > 0  # they did contend


def test_a_read_only_folder_is_named_not_a_traceback(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / ".neuroexec").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(FolderNotWritable, match=f"cannot write into {tmp_path}: it is on a read-only file"):
        acquire(tmp_path, "split-0")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_folder_without_write_permission_is_named(tmp_path):
    maps = tmp_path / "maps"
    maps.mkdir()
    maps.chmod(0o555)
    try:
        with pytest.raises(FolderNotWritable, match=f"cannot write into {maps}: permission denied"):
            acquire(maps)
    finally:
        maps.chmod(0o755)


def test_a_file_system_without_locks_is_a_sentence(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_locks)
    with pytest.raises(LockUnsupported, match=f"{tmp_path}: its file system refuses file locks"):
        acquire(tmp_path)


def test_unlock_shows_the_holders_and_removes_only_a_lock_held_from_another_host(tmp_path, holders):
    assert "no neuroexec locks" in unlock(tmp_path)
    release(acquire(tmp_path, "split-0"))
    assert "No lock is held: nothing to do" in unlock(tmp_path)
    local = holders(tmp_path, "split-0")
    text = unlock(tmp_path)
    assert f"lock.split-0: held by pid {local.pid} on " in text and "on this host holds it" in text
    with pytest.raises(LockHeld, match=f"not unlocking {tmp_path}: pid {local.pid}"):
        unlock(tmp_path, force=True)
    assert not free(tmp_path, "split-0")
    local.kill()
    local.wait()
    holders(tmp_path, "split-1", host="node-gone")  # a job on a node that crashed, as NFS would keep it
    text = unlock(tmp_path)
    assert "lock.split-1: held by pid 4242 on node-gone" in text and "--force" in text
    with pytest.raises(LockHeld, match="split-1: pid 4242 on node-gone"):
        acquire(tmp_path, "split-1")
    assert "Removed 2 held lock file(s)" in unlock(tmp_path, force=True)  # lock.split-1 and lock
    release(acquire(tmp_path))  # new applies lock fresh files


def test_state_records_of_two_writers_are_merged(tmp_path):
    first, second = StateStore(tmp_path), StateStore(tmp_path)
    assert first.record("a") is None and second.record("b") is None  # both loaded before either wrote
    first.put("a", {"fingerprint": "1"}, {"x.tsv": {"size": 1}})
    second.put("b", {"fingerprint": "2"}, {})
    merged = StateStore(tmp_path)
    assert merged.record("a") == {"fingerprint": "1"} and merged.record("b") == {"fingerprint": "2"}
    assert merged.file_cache() == {"x.tsv": {"size": 1}}


def test_the_unlock_command_prints_the_locks_and_refuses_to_break_a_local_holder(tmp_path, holders, capsys):
    from neuroexec.cli import main

    local = holders(tmp_path, "split-3")
    assert main(["unlock", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{lock_file(tmp_path)}: held by the applies of single splits" in out
    assert f"{lock_file(tmp_path, 'split-3')}: held by pid {local.pid}" in out
    assert main(["unlock", str(tmp_path), "--force"]) == 3
    assert (
        f"error: not unlocking {tmp_path}: pid {local.pid} on this host holds it" in capsys.readouterr().err
    )
    assert lock_file(tmp_path, "split-3").exists() and not free(tmp_path, "split-3")


def test_unlock_of_a_folder_that_does_not_exist_or_is_a_file_is_exit_2_naming_it(tmp_path, capsys):
    from neuroexec.cli import main

    missing, a_file = tmp_path / "nonexistent", tmp_path / "spec.toml"
    a_file.write_text("version = 1\n")
    assert main(["unlock", str(missing)]) == 2
    assert f"{missing}: no such folder" in capsys.readouterr().err
    assert main(["unlock", str(a_file), "--force"]) == 2
    assert f"{a_file}: is a file, not a folder" in capsys.readouterr().err
    assert not missing.exists() and a_file.read_text() == "version = 1\n"
