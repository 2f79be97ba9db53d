"""Atomic writes: every file neuroexec puts into a MAPS or CAPS is written to a temporary file in the
same folder, flushed, then renamed over the target. An interrupted run leaves either the old file or
the new one, never half of one.

Files and folders get the user's umask (0o666 & ~umask, 0o777 & ~umask), so that a lab sharing a disk
can read each other's results, as with any other tool.

The temporary file is `.<name>.<pid>-<pidns>@<host>.<8 hex>.tmp` beside the target. A kill -9 leaves it
behind; `sweep_temporaries`, called by apply on the folders it is about to write, removes those whose
writer is gone: a process of this host (same host name and pid namespace) that no longer runs, or, for
a writer on another host, a file untouched for `STALE_AFTER_S` (a live write touches its file every few
seconds and lasts minutes at most). So the temporary files of a concurrent live apply on the same MAPS
(cluster jobs on other splits) are kept. Files of any other name are never removed, including the
`.<name>.<8 characters>.tmp` files of earlier versions (delete those by hand, with no apply running).

Running out of room (ENOSPC, EDQUOT) becomes `DiskFull` naming the file being written, and a folder
that refuses the write (EROFS, EACCES, EPERM) `FolderNotWritable` naming the folder; in both cases the
old file is intact and the temporary file removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from neuroexec.errors import DiskFull, FolderNotWritable

STALE_AFTER_S = 3600  # a temporary file of another host's write untouched this long is left over
NO_ROOM = {errno.ENOSPC, errno.EDQUOT}
REFUSED = {errno.EROFS, errno.EACCES, errno.EPERM}
NAME_MAX = 255
_OURS = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<ns>\d+)@(?P<host>[^@/]+)\.[0-9a-f]{8}\.tmp$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:64] or "localhost"


def _pid_namespace() -> str:
    """The inode of this process's pid namespace: pids of two containers of one host are not comparable."""
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        return "0"


def _temp_path(path: Path) -> Path:
    tail = f".{os.getpid()}-{_pid_namespace()}@{_host()}.{secrets.token_hex(4)}.tmp"
    return path.with_name("." + path.name[: NAME_MAX - 1 - len(tail)] + tail)


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _make_folder(folder: Path, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)  # mode 0o777 & ~umask
    except OSError as exc:
        if exc.errno in NO_ROOM:
            raise DiskFull(path, exc) from exc
        if exc.errno in REFUSED:
            raise FolderNotWritable(_nearest_existing(folder), exc) from exc
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary sibling of `path`, opened for writing, mode 0o666 & ~umask."""
    while True:
        tmp = _temp_path(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in NO_ROOM:
                raise DiskFull(path, exc) from exc
            if exc.errno in REFUSED:
                raise FolderNotWritable(path.parent, exc) from exc
            raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success rename it to `path`.

    >>> with atomic_open(Path("a.txt"), "w") as f:
    ...     print("hello", file=f)
    >>> Path("a.txt").read_text()
    'hello\\n'
    """
    path = Path(path)
    _make_folder(path.parent, path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            raise DiskFull(path, exc) from exc
        raise


@contextlib.contextmanager
def exclusive(lock_path: str | Path) -> Iterator[None]:
    """Hold an exclusive kernel lock (flock) on `lock_path`, created if needed, for the block: for the
    read-modify-write of a file that processes working side by side update (the information.log of a
    MAPS whose splits train as separate cluster jobs). The lock vanishes with its process."""
    import fcntl

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_tsv(path: str | Path, frame: Any, na_rep: str = "") -> None:
    """Write a pandas DataFrame as a tab-separated file without index (ClinicaDL's convention), missing
    values as `na_rep`."""
    with atomic_open(path, "w") as f:
        frame.to_csv(f, sep="\t", index=False, na_rep=na_rep)


class _Recorded:
    """A file whose first write error is kept: torch's zip writer turns it into a RuntimeError
    ("[enforce fail at inline_container.cc...] unexpected pos") that no longer says why."""

    def __init__(self, file: IO[bytes]):
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save, atomically. Tensors are cloned by the caller when they are views of a batch."""
    import torch

    with atomic_open(path, "wb") as f:
        recorded = _Recorded(f)
        try:
            torch.save(obj, recorded)
        except RuntimeError:
            if recorded.error is not None:
                raise recorded.error from None
            raise


def save_nifti(path: str | Path, array: Any, affine: Any) -> None:
    """Write a 3D/4D array as .nii.gz with the given affine."""
    import nibabel as nib
    import numpy as np

    img = nib.Nifti1Image(np.asarray(array, dtype=np.float32), np.asarray(affine, dtype=np.float64))
    with atomic_open(path, "wb") as f:
        f.write(img.to_bytes() if not str(path).endswith(".gz") else _gzip(img.to_bytes()))


def _gzip(raw: bytes) -> bytes:
    import gzip

    return gzip.compress(raw, compresslevel=1, mtime=0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_temporary(file: Path) -> bool:
    """Whether `file` is named as the temporary file of an atomic write (a live or a dead writer's).

    >>> is_temporary(Path(".model.pth.tar.4242-4026531836@node1.1f2e3d4c.tmp")), is_temporary(Path("a.tmp"))
    (True, False)
    """
    return _OURS.match(file.name) is not None


def left_over(file: Path, now: float | None = None) -> bool:
    """Whether `file` is a temporary file of an atomic write whose writer is gone (see the module's
    docstring); a file of any other name is never one."""
    found = _OURS.match(file.name)
    if found and (found["host"], found["ns"]) == (_host(), _pid_namespace()):
        return not _alive(int(found["pid"]))
    if not found:
        return False
    try:
        st = file.lstat()
    except FileNotFoundError:
        return False
    age = (time.time() if now is None else now) - st.st_mtime
    return stat.S_ISREG(st.st_mode) and age > STALE_AFTER_S


def sweep_temporaries(folder: str | Path) -> list[Path]:
    """Remove, under `folder`, the temporary files that interrupted atomic writes left behind (never those
    of a live writer); returns what was removed. Symbolic links are not followed.

    >>> left = Path("maps/split-0/.model.pth.tar.4242-4026531836@node1.1f2e3d4c.tmp")  # node1 was killed
    >>> left.parent.mkdir(parents=True)
    >>> left.touch()
    >>> os.utime(left, (0, 0))  # long ago
    >>> sweep_temporaries("maps")
    [PosixPath('maps/split-0/.model.pth.tar.4242-4026531836@node1.1f2e3d4c.tmp')]
    """
    removed = []
    for root, _, names in os.walk(folder):
        for name in names:
            file = Path(root) / name
            if name.startswith(".") and name.endswith(".tmp") and left_over(file):
                with contextlib.suppress(FileNotFoundError):
                    file.unlink()
                    removed.append(file)
    return removed
