"""Network locks (`split-<i>/network-<k>`, a multi-network training's `--target
'model.M.train[split-i,network-k]'`): two networks of one split side by side, while the split's own run
and a whole-folder step are refused, and the other way round; `neuroexec unlock` shows them. Real
processes hold the locks."""

from __future__ import annotations

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
        pass  # one process, two networks: the split's shared lock is taken once for both
    release(acquire(tmp_path))


def test_unlock_shows_the_network_locks_and_the_split_they_share(tmp_path, hold):
    other = hold(tmp_path, "split-0/network-2")
    text = unlock(tmp_path)
    assert f"{lock_file(tmp_path, 'split-0')}: held by the applies of single networks of this split" in text
    assert f"{lock_file(tmp_path, 'split-0/network-2')}: held by pid {other.pid}" in text
    assert lock_file(tmp_path, "split-0/network-2").name == "lock.split-0.network-2"
