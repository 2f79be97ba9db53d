"""Apply locks. A step locks its home folder (a MAPS or a CAPS) as a whole, or only its scope inside it
(`split-<i>` for training and the results of one split), so cluster jobs that each run one split of
the same MAPS (`apply --target 'model.cnn.train[split-3]'`) run side by side, while two applies writing
the same split, or a MAPS-wide step, are refused with a clear message.

Files: `<home>/.neuroexec/lock` (whole folder) and `<home>/.neuroexec/lock.<scope>`, each holding the pid,
host and start time of its apply. A lock left by a dead process on this host is taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from neuroexec.errors import LockHeld

WHOLE = ""  # the scope that covers the whole folder


def lock_file(home: Path, scope: str = WHOLE) -> Path:
    return home / ".neuroexec" / ("lock" if scope == WHOLE else f"lock.{scope}")


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _held_by_other(path: Path) -> dict | None:
    """The holder of `path` when it is another live process (or another host); None otherwise."""
    holder = _read(path)
    if holder is None:
        return None
    mine = holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()
    if mine:
        return None
    if holder.get("host") != socket.gethostname() or _alive(int(holder.get("pid", -1))):
        return holder
    return None


def _refuse(home: Path, path: Path, holder: dict, what: str) -> LockHeld:
    return LockHeld(
        f"{home} is being written by another apply ({what}: pid {holder.get('pid')} on {holder.get('host')}, "
        f"since {holder.get('started')}); wait for it to finish. If that process is gone, remove {path}."
    )


def _create(path: Path) -> bool:
    """Create the lock file exclusively; take over a stale one. False when a live process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if (
                holder is not None
                and holder.get("pid") == os.getpid()
                and holder.get("host") == socket.gethostname()
            ):
                return True  # re-entrant within one process
            if _held_by_other(path) is not None:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale: a dead process on this host, or unreadable
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(_me(), f)
        return True
    return False


def acquire(home: Path, scope: str = WHOLE) -> Path:
    path = lock_file(home, scope)
    whole = lock_file(home)
    if scope != WHOLE:
        holder = _held_by_other(whole)
        if holder is not None:
            raise _refuse(home, whole, holder, "the whole folder")
    if not _create(path):
        holder = _read(path) or {}
        raise _refuse(home, path, holder, "the whole folder" if scope == WHOLE else scope)
    others = [p for p in path.parent.glob("lock.*")] if scope == WHOLE else [whole]
    for other in others:
        holder = _held_by_other(other)
        if holder is not None:
            release(path)
            raise _refuse(
                home,
                other,
                holder,
                other.name.removeprefix("lock.") if other != whole else "the whole folder",
            )
    return path


def release(path: Path) -> None:
    holder = _read(path)
    if holder is None or holder.get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


@contextlib.contextmanager
def locked(scopes: list[tuple[Path, str]]) -> Iterator[None]:
    """Hold the locks of all (home, scope) pairs for the block: a folder locked whole needs no scope lock;
    sorted, so two applies never deadlock."""
    wanted = set(scopes)
    whole_homes = {home for home, scope in wanted if scope == WHOLE}
    wanted = {(home, scope) for home, scope in wanted if scope == WHOLE or home not in whole_homes}
    taken: list[Path] = []
    try:
        for home, scope in sorted(wanted, key=lambda hs: (str(hs[0]), hs[1])):
            taken.append(acquire(home, scope))
        yield
    finally:
        for path in reversed(taken):
            release(path)
