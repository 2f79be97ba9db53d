"""Apply locks, on the kernel's own file locks (`flock`). A step locks its home folder (a MAPS or a CAPS)
as a whole, or only its scope inside it (`split-<i>` for training and the results of one split), so
cluster jobs that each run one split of the same MAPS (`apply --target 'model.cnn.train[split-3]'`) run
side by side, while two applies writing the same split, or a MAPS-wide step, are refused (never waited
for) with a clear message.

Files, in `<home>/.neuroexec/`:
- `lock`: the whole folder takes it exclusively; every scope takes it shared, so the two exclude each
  other while scopes coexist;
- `lock.<scope>`: one scope, exclusively;
- `lock.<scope>.<part>`: a part of a scope (`split-0/network-1`, one network of a multi-network
  training: `--target 'model.M.train[split-0,network-1]'`), exclusively, with the whole folder's and the
  scope's files shared: two networks of one split train side by side, while the split's own run (which
  publishes it) and the networks' runs exclude each other.
A lock is held by an open file, not by the file's existence: it vanishes with its process (kill -9
included), so there are no stale locks, an empty just-created file is just a file, and releasing can
never free another process's lock. Lock files are never removed (removing one while it is held would let
a second holder in on a fresh file). After taking a lock exclusively, its holder writes its pid, host and
start time into the file, for the refusal message and `neuroexec unlock`; it empties it on release.

Within one process, locks are re-entrant: flock locks of two opens of one file conflict even inside one
process, so each lock file is opened once and counted (`_HELD`). A scope held, then the whole folder
asked for, upgrades the shared lock (kept exclusive until every user has released it).

Network file systems: on NFS, Linux turns `flock` into whole-file POSIX locks that the server keeps, so
jobs on different hosts exclude each other (NFSv4 directly, NFSv3 through lockd). If the holder's host
crashes, the server frees its locks when the host's lease expires (NFSv4, about 90 s) or when it reboots
(NFSv3); `neuroexec unlock FOLDER` shows who holds what and, with `--force`, removes the lock files of
a host that is gone. Mounts with `local_lock=flock` (or BeeGFS without global locks) keep locks local
to each host: jobs of different hosts are then not excluded. A file system that refuses locks (ENOLCK:
NFS without lockd; ENOSYS/EOPNOTSUPP: Lustre mounted without `-o flock`) makes apply stop with a
sentence saying so: neuroexec does not write a folder it cannot lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from neuroexec.errors import DiskFull, FolderNotWritable, InputError, LockHeld, LockUnsupported
from neuroexec.records import WHOLE, lock_file, lock_files, parent_scopes, scope_lock_files, scope_of

NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
NO_ROOM = {errno.ENOSPC, errno.EDQUOT}
NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


@dataclass
class _Held:
    """One lock file this process has open and locked, with how many acquire() calls use it."""

    fd: int
    mode: int  # fcntl.LOCK_SH or fcntl.LOCK_EX
    count: int


_HELD: dict[str, _Held] = {}  # realpath of the lock file -> its one open file in this process
_MUTEX = threading.RLock()


def _me(scope: str) -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "scope": scope or "the whole folder",
    }


def _open(home: Path, path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the user's umask decides the mode
    except OSError as exc:
        if exc.errno in NOT_WRITABLE:
            raise FolderNotWritable(home, exc) from exc
        if exc.errno in NO_ROOM:
            raise DiskFull(path, exc) from exc
        raise


def _flock(home: Path, fd: int, mode: int) -> bool:
    """Lock without waiting; False when another holder conflicts."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in NO_LOCKS:
            raise LockUnsupported(home, exc) from exc
        raise
    return True


def _write_holder(fd: int, scope: str) -> None:
    """The holder's note, for messages only: a full disk must not turn a held lock into an error."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me(scope)).encode(), 0)


def _take(home: Path, path: Path, mode: int, scope: str) -> bool:
    """Lock `path` in `mode` for this process (re-entrant); False when another process conflicts."""
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is not None:  # never open it twice: on NFS closing any open of a file drops its locks
        if mode == fcntl.LOCK_EX and held.mode == fcntl.LOCK_SH:
            if not _flock(home, held.fd, fcntl.LOCK_EX):
                # Linux drops the shared lock before trying the exclusive one: take it back (the
                # other shared holders keep every exclusive one out meanwhile).
                if not _flock(home, held.fd, fcntl.LOCK_SH):
                    raise LockHeld(
                        f"{home}: another apply took the whole folder while this one held a split; stop both and run apply again."
                    )
                return False
            held.mode = fcntl.LOCK_EX
            _write_holder(held.fd, scope)
        held.count += 1
        return True
    while True:
        fd = _open(home, path)
        try:
            if not _flock(home, fd, mode):
                os.close(fd)
                return False
        except BaseException:
            os.close(fd)
            raise
        if _same_file(path, fd):
            break
        os.close(fd)  # removed by `neuroexec unlock --force` meanwhile: lock the new file instead
    _HELD[key] = _Held(fd, mode, 1)
    if mode == fcntl.LOCK_EX:
        _write_holder(fd, scope)
    return True


def _same_file(path: Path, fd: int) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def _drop(path: Path) -> None:
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is None:
        return  # not ours: another process's lock is left alone
    held.count -= 1
    if held.count > 0:
        return
    del _HELD[key]
    with contextlib.suppress(OSError):
        if held.mode == fcntl.LOCK_EX:
            os.ftruncate(held.fd, 0)
    os.close(held.fd)  # closing the only open of the file releases its lock


def holder(path: Path) -> dict | None:
    """What the last exclusive holder of `path` wrote, when it looks current (a live process on this
    host, or one on another host); None for an empty file or a process that is gone."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("host") == socket.gethostname() and not _alive(record.get("pid")):
        return None  # killed without releasing: its lock went with it, its note stayed
    return record


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(what: str, record: dict | None) -> str:
    if record is None:
        return f"{what}: a process that has not written its name yet"
    return f"{what}: pid {record.get('pid')} on {record.get('host')}, since {record.get('started')}"


def _refuse(home: Path, held: list[str]) -> LockHeld:
    return LockHeld(
        f"{home} is being written by another apply ({'; '.join(held)}); wait for it to finish. "
        f"`neuroexec unlock {home}` shows who holds what and what is safe to do."
    )


def _scope_holders(home: Path) -> list[str]:
    """The scopes of `home` that others seem to hold, for the refusal of a whole-folder lock."""
    held = []
    for path in scope_lock_files(home):
        if os.path.realpath(path) not in _HELD and (record := holder(path)) is not None:
            held.append(_describe(scope_of(path), record))
    return held


def acquire(home: Path, scope: str = WHOLE) -> Path:
    """Lock `scope` of `home` (WHOLE: all of it) for this process, or raise LockHeld naming the holder.
    Returns the lock file to give to release().

    >>> release(acquire(Path("maps/cnn"), "split-0"))
    """
    whole = lock_file(home)
    with _MUTEX:
        if scope == WHOLE:
            if not _take(home, whole, fcntl.LOCK_EX, WHOLE):
                record = holder(whole)
                others = [_describe("the whole folder", record)] if record else _scope_holders(home)
                raise _refuse(home, others or [_describe("the whole folder or a split", None)])
            return whole
        if not _take(home, whole, fcntl.LOCK_SH, scope):
            raise _refuse(home, [_describe("the whole folder", holder(whole))])
        taken = [whole]
        try:
            for outer in parent_scopes(scope):  # shared: the parts of one scope coexist
                path = lock_file(home, outer)
                if not _take(home, path, fcntl.LOCK_SH, scope):
                    raise _refuse(home, [_describe(outer, holder(path))])
                taken.append(path)
            path = lock_file(home, scope)
            if not _take(home, path, fcntl.LOCK_EX, scope):
                raise _refuse(home, _holders_of(home, scope))
        except BaseException:
            for path in reversed(taken):
                _drop(path)
            raise
        return path


def _holders_of(home: Path, scope: str) -> list[str]:
    """Who holds `scope`: its exclusive holder, or the holders of its parts (which hold it shared). The
    note of an exclusive holder is believed only while the file is held exclusively (a holder killed
    on another host, or whose pid was reused, leaves its note behind)."""
    record = holder(lock_file(home, scope))
    if record is not None and _held_exclusively(home, lock_file(home, scope)):
        return [_describe(scope, record)]
    inner = lock_file(home, scope).name + "."
    parts = [
        p for p in scope_lock_files(home) if p.name.startswith(inner) and os.path.realpath(p) not in _HELD
    ]
    found = [_describe(scope_of(p), r) for p in parts if (r := holder(p)) is not None]
    return found or [_describe(scope, None)]


def _held_exclusively(home: Path, path: Path) -> bool:
    """Whether a process holds `path` exclusively now (a shared probe, released at once, is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _flock(home, fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def release(path: Path) -> None:
    """Release what acquire() returned; a lock this process does not hold is left as it is."""
    path = Path(path)
    with _MUTEX:
        if os.path.realpath(path) not in _HELD:
            return
        _drop(path)
        scope = scope_of(path)
        if scope != WHOLE:
            home = path.parent.parent
            for outer in reversed(parent_scopes(scope)):  # the scopes it is part of, held shared
                _drop(lock_file(home, outer))
            _drop(lock_file(home))  # the whole folder's, which every scope holds shared


@contextlib.contextmanager
def locked(scopes: list[tuple[Path, str]]) -> Iterator[None]:
    """Hold the locks of all (home, scope) pairs for the block: a folder locked whole needs no scope lock;
    sorted, so two applies always take them in the same order."""
    wanted = set(scopes)
    whole_homes = {home for home, scope in wanted if scope == WHOLE}
    wanted = {(home, scope) for home, scope in wanted if scope == WHOLE or home not in whole_homes}
    # a scope locked exclusively needs none of its parts' locks (one process: they would be re-entrant)
    wanted = {
        (home, scope) for home, scope in wanted if not any((home, o) in wanted for o in parent_scopes(scope))
    }
    taken: list[Path] = []
    try:
        for home, scope in sorted(wanted, key=lambda hs: (str(hs[0]), hs[1])):
            taken.append(acquire(home, scope))
        yield
    finally:
        for path in reversed(taken):
            release(path)


@dataclass(frozen=True)
class LockState:
    """One lock file of a folder as `neuroexec unlock` sees it."""

    path: Path
    state: str  # "free", "held" (exclusively) or "shared" (the whole-folder file, held by scopes)
    holder: dict | None


def inspect(home: Path) -> list[LockState]:
    """The lock files of `home` and whether someone holds them. Probing takes each lock for an instant,
    so an apply starting at that very moment may be refused (exit 3): run it again."""
    states = []
    for path in lock_files(home):
        if os.path.realpath(path) in _HELD:
            states.append(LockState(path, "held", _me(path.name)))
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if _flock(home, fd, fcntl.LOCK_EX):
                state = "free"
            else:
                state = "shared" if _flock(home, fd, fcntl.LOCK_SH) else "held"
        finally:
            os.close(fd)
        states.append(LockState(path, state, holder(path) if state == "held" else None))
    return states


def _words(s: LockState) -> str:
    if s.state == "free":
        return "free"
    if s.state == "shared":
        if scope_of(s.path) == WHOLE:
            return "held by the applies of single splits (below)"
        return "held by the applies of single networks of this split (below)"
    return "held by " + _describe("", s.holder).removeprefix(": ")


def unlock(home: Path, force: bool = False) -> str:
    """What `neuroexec unlock FOLDER [--force]` prints: who holds which lock of FOLDER and what is safe
    to do; with `force`, removes the held lock files unless their holder runs on this host. A FOLDER
    that does not exist, or is a file, is an InputError (exit 2) naming it."""
    if not home.is_dir():
        what = "is a file, not a folder" if home.exists() else "no such folder"
        raise InputError(home, f"{what}: give the MAPS or CAPS folder whose apply locks to show")
    states = inspect(home)
    if not states:
        return f"{home} has no neuroexec locks: nothing to do."
    lines = [f"{s.path}: {_words(s)}" for s in states]
    held = [s for s in states if s.state != "free"]
    here = socket.gethostname()
    local = sorted({str(s.holder["pid"]) for s in held if s.holder and s.holder.get("host") == here})
    if not held:
        lines.append(
            "No lock is held: nothing to do, an apply can start. (Locks vanish with their process, "
            "kill -9 included; lock files are never deleted by hand.)"
        )
    elif local:
        if force:
            raise LockHeld(
                f"not unlocking {home}: pid {', '.join(local)} on this host holds it; wait for it or stop "
                "it (`kill PID`, `scancel` for a SLURM job): its locks vanish with it."
            )
        lines.append(
            f"pid {', '.join(local)} on this host holds it and is running: wait for it to finish, or stop "
            "it (`kill PID`, `scancel` for a SLURM job); its locks vanish with it, nothing needs removing."
        )
    elif not force:
        lines.append(
            "Held by a process on another host (or one that has not written its name: `lsof` or "
            "/proc/locks on each host shows it). If it still runs, wait for it or stop it there. If its host "
            "crashed, the file server frees its locks when the host's lease expires (NFSv4: about 90 s) or "
            f"when it reboots. If that never happens and you are sure nothing writes {home}, "
            f"`neuroexec unlock {home} --force` removes the held lock files so new applies lock fresh ones."
        )
    else:
        for s in held:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(s.path)
        lines.append(
            f"Removed {len(held)} held lock file(s): new applies lock fresh ones. Should the old holder "
            "still be running after all, it is no longer excluded from them."
        )
    return "\n".join(lines)
