"""The apply lock of a MAPS or CAPS folder: `<home>/.neuroexec/lock` holding pid, host and start time.
A second apply on the same folder is refused; a lock left by a dead process on this host is taken over."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from neuroexec.errors import LockHeld


def lock_file(home: Path) -> Path:
    return home / ".neuroexec" / "lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(home: Path) -> Path:
    path = lock_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == me["host"]:
                return path  # re-entrant within one process
            if holder is not None and (
                holder.get("host") != me["host"] or _alive(int(holder.get("pid", -1)))
            ):
                raise LockHeld(
                    f"{home} is being written by another apply (pid {holder.get('pid')} on "
                    f"{holder.get('host')}, since {holder.get('started')}); wait for it to finish. If that "
                    f"process is gone, remove {path}."
                ) from None
            # A stale lock (dead process on this host, or unreadable): take it over.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise LockHeld(f"could not take the lock {path}")


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def release(path: Path) -> None:
    holder = _read(path)
    if holder is None or holder.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def locked(homes: list[Path]) -> Iterator[None]:
    """Hold the locks of all `homes` (sorted, so two applies never deadlock) for the block."""
    taken: list[Path] = []
    try:
        for home in sorted(set(homes)):
            taken.append(acquire(home))
        yield
    finally:
        for path in reversed(taken):
            release(path)
