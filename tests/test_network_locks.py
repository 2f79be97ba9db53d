"""Network locks (`split-<i>/network-<k>`, a multi-network training's `--target
'model.M.train[split-i,network-k]'`): two networks of one split side by side, while the split's own run
and a whole-folder step are refused, and the other way round; `neuroexec unlock` shows them. Real
processes hold the locks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuroexec.errors import LockHeld
from neuroexec.lock import acquire, lock_file, locked, release, unlock

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from pathlib import Path
from neuroexec.lock import acquire
acquire(Path(sys.argv[1]), sys.argv[2])
print("held", flush=True)
sys.stdin.read()
"""


TRY = """
import sys
from pathlib import Path
from neuroexec.errors import LockHeld
from neuroexec.lock import acquire
try:
    acquire(Path(sys.argv[1]), sys.argv[2])
except LockHeld:
    print("refused")
else:
    print("taken")
"""


def tries(home: Path, scope: str) -> str:
    """Whether another process can take that lock now: `taken` or `refused`."""
    done = subprocess.run(
        [sys.executable, "-c", TRY, str(home), scope], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def hold():
    """hold(home, scope) -> a process holding that lock until the test ends (or closes its stdin)."""
    started: list[subprocess.Popen] = []

    def start(home: Path, scope: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(home), scope],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        started.append(proc)
        assert proc.stdout.readline() == "held\n", proc.stderr.read()
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_two_networks_of_a_split_side_by_side_but_the_split_and_the_folder_are_refused(tmp_path, hold):
    other = hold(tmp_path, "split-0/network-0")
    release(acquire(tmp_path, "split-0/network-1"))  # another network of the same split
    release(acquire(tmp_path, "split-1"))  # another split
    with pytest.raises(LockHeld, match=f"split-0/network-0: pid {other.pid} on "):
        acquire(tmp_path, "split-0")  # the split's own run publishes: it waits for no network
    with pytest.raises(LockHeld, match=f"split-0/network-0: pid {other.pid}"):
        acquire(tmp_path)
    with pytest.raises(LockHeld, match=f"split-0/network-0: pid {other.pid}"):
        acquire(tmp_path, "split-0/network-0")  # the same network
    other.stdin.close()
    other.wait()
    release(acquire(tmp_path, "split-0"))  # the refused attempts left nothing held
    release(acquire(tmp_path))


def test_a_split_held_refuses_its_networks_and_leaves_other_splits_networks(tmp_path, hold):
    other = hold(tmp_path, "split-0")
    with pytest.raises(LockHeld, match=f"split-0: pid {other.pid}"):
        acquire(tmp_path, "split-0/network-1")
    release(acquire(tmp_path, "split-1/network-1"))
    other.stdin.close()
    other.wait()
    with locked([(tmp_path, "split-0/network-0"), (tmp_path, "split-0/network-1")]):
        # one process, two networks: both held, the split's lock shared by them, taken by none else
        for scope in ("split-0/network-0", "split-0/network-1", "split-0"):
            assert tries(tmp_path, scope) == "refused", scope
        assert tries(tmp_path, "split-0/network-2") == "taken"
    release(acquire(tmp_path))  # all released when the block ends


def test_unlock_force_removes_network_lock_files_held_from_another_host(tmp_path, hold):
    other = hold(tmp_path, "split-0/network-2")
    note = {"pid": other.pid, "host": "elsewhere", "started": "2026-01-01T00:00:00"}
    lock_file(tmp_path, "split-0/network-2").write_text(json.dumps(note))  # a holder on a crashed host
    assert "Held by a process on another host" in unlock(tmp_path)
    assert tries(tmp_path, "split-0") == "refused"
    text = unlock(tmp_path, force=True)
    assert "Removed 3 held lock file(s)" in text  # the network's, the split's and the folder's
    assert not lock_file(tmp_path, "split-0/network-2").exists()
    assert tries(tmp_path, "split-0") == "taken" and tries(tmp_path, "split-0/network-2") == "taken"


def test_unlock_shows_the_network_locks_and_the_split_they_share(tmp_path, hold):
    other = hold(tmp_path, "split-0/network-2")
    text = unlock(tmp_path)
    assert f"{lock_file(tmp_path, 'split-0')}: held by the applies of single networks of this split" in text
    assert f"{lock_file(tmp_path, 'split-0/network-2')}: held by pid {other.pid}" in text
    assert lock_file(tmp_path, "split-0/network-2").name == "lock.split-0.network-2"


def test_a_stale_note_in_the_splits_lock_file_is_not_named_as_its_holder(tmp_path, hold):
    other = hold(tmp_path, "split-0/network-1")
    note = {"pid": 1, "host": "elsewhere", "started": "2026-01-01T00:00:00"}
    lock_file(tmp_path, "split-0").write_text(json.dumps(note))  # left by a holder killed on its host
    with pytest.raises(LockHeld, match=f"split-0/network-1: pid {other.pid}") as err:
        acquire(tmp_path, "split-0")
    assert "pid 1 on elsewhere" not in str(err.value)
