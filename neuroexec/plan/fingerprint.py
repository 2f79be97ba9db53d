"""Fingerprints: sha256 over the step's config slice, its upstream fingerprints, the identity of its
input files and the format version.

File identity = content hash, recomputed only when the file's stat differs from the cached value, so a
plan over thousands of images costs one stat per file. Images and tables are trusted on (size, mtime):
a copied CAPS keeps them, and is not hashed again. Model files (`*.pth.tar`, `*.pth`: checkpoints, small
next to images) are trusted only on (size, mtime, ctime, inode) as well: a byte changed in place with its
mtime put back (`os.utime`) or a file replaced by another still changes ctime or inode, which no user
call can restore, so a changed model is always hashed again and its results re-planned."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from neuroexec import FORMAT_VERSION

MODEL_SUFFIXES = (".pth.tar", ".pth")  # model files; extracted image tensors are `.pt` and stay fast
# A model file whose ctime is this close to the moment it was hashed may have been changed again within
# one tick of the file system's clock (1-2 s on some network file systems): its cache entry is not
# trusted, and it is hashed at each plan until a later apply records it again.
RACY_NS = 2_000_000_000


def is_model_file(path: Path) -> bool:
    return path.name.endswith(MODEL_SUFFIXES)


def file_identity(path: Path, cache: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(identity, cache entry to store or None). A missing file has the identity 'missing'.

    >>> _ = Path("model.pth.tar").write_bytes(b"abc")
    >>> ident, entry = file_identity(Path("model.pth.tar"), {})
    >>> ident == entry["sha256"] == hashlib.sha256(b"abc").hexdigest(), sorted(entry)  # a model: inode too
    (True, ['ctime_ns', 'hashed_ns', 'ino', 'mtime_ns', 'sha256', 'size'])
    >>> file_identity(Path("nowhere.pt"), {})
    ('missing', None)
    """
    key = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing", None
    if path.is_dir():
        return f"dir:{st.st_mtime_ns}", None
    hit = cache.get(key)
    if hit and _trusted(hit, st, is_model_file(path)):
        return hit["sha256"], None
    hashed_ns = time.time_ns()
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": content_hash(path)}
    if is_model_file(path):
        entry.update(ctime_ns=st.st_ctime_ns, ino=st.st_ino, hashed_ns=hashed_ns)
    return entry["sha256"], entry


def _trusted(hit: dict[str, Any], st: os.stat_result, model: bool) -> bool:
    """Whether a cache entry still tells the content of a file with this stat."""
    if hit.get("size") != st.st_size or hit.get("mtime_ns") != st.st_mtime_ns:
        return False
    if not model:
        return True
    return (
        hit.get("ctime_ns") == st.st_ctime_ns
        and hit.get("ino") == st.st_ino
        and hit.get("hashed_ns", 0) - st.st_ctime_ns >= RACY_NS
    )


def content_hash(path: Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(kind: str, config: dict[str, Any], upstream: dict[str, str], inputs: dict[str, str]) -> str:
    blob = json.dumps(
        {"format": FORMAT_VERSION, "kind": kind, "config": config, "upstream": upstream, "inputs": inputs},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def input_key(path: Path | str, home: Path) -> str:
    """An input file's key in fingerprints and records: its path relative to the step's home folder,
    so that a project copied or moved elsewhere, data beside its MAPS included, keeps its records.

    >>> input_key("/lab/proj/maps/cnn/split-0/best-loss/model.pth.tar", Path("/lab/proj/maps/cnn"))
    'split-0/best-loss/model.pth.tar'
    >>> input_key("/lab/proj/data/participants.tsv", Path("/lab/proj/maps/cnn"))
    '../../data/participants.tsv'
    """
    return os.path.relpath(path, home)


def recorded_keys(recorded: Iterable[str], home: Path, current: Collection[str]) -> dict[str, str]:
    """Recorded input key -> the same input's key today (relative to `home`). Records written before
    keys were relative hold absolute paths: each is made relative to `home` when that names a
    `current` input (the file did not move), else to where `home` was before the project moved (the
    folder a move maps to `home`, found from the paths' common ends, that names most inputs).

    >>> now = ["split-0/model.pth.tar", "../../data/p.tsv", "../../../../caps/sub-1.nii.gz"]
    >>> old = ["/old/proj/maps/cnn/split-0/model.pth.tar", "/old/proj/data/p.tsv", "/caps/sub-1.nii.gz"]
    >>> sorted(recorded_keys(old, Path("/new/here/proj/maps/cnn"), now).values()) == sorted(now)
    True
    """
    here, current = os.path.abspath(home), set(current)
    keys = {key: os.path.relpath(key, here) if os.path.isabs(key) else key for key in recorded}
    moved = [key for key, now in keys.items() if os.path.isabs(key) and now not in current]
    if moved:
        base = _recorded_home(moved, here, current)
        keys.update({key: os.path.relpath(key, base) for key in moved})
    return keys


def _recorded_home(moved: list[str], here: str, current: set[str], tries: int = 8) -> str:
    """Where the home folder was when these absolute keys, of files now elsewhere, were written: the
    candidate (see _moved_home) that makes most of them `current` keys; `here` when none does."""
    by_name: dict[str, list[str]] = {}
    for rel in current:
        by_name.setdefault(os.path.basename(rel), []).append(os.path.normpath(os.path.join(here, rel)))
    candidates = [
        _moved_home(key, now, here)
        for key in moved[:tries]
        for now in by_name.get(os.path.basename(key), [])[:tries]
    ]
    best, found = here, 0
    for base in dict.fromkeys(candidates):
        count = sum(os.path.relpath(key, base) in current for key in moved)
        if count > found:
            best, found = base, count
    return best


def _moved_home(old: str, now: str, here: str) -> str:
    """The old place of folder `here` if a move took file `old` to `now`: the paths' common end is
    what moved with the folder, and `here` keeps its place relative to what is left of `now`."""
    a, b = Path(old).parts, Path(now).parts
    common = 0
    while common < min(len(a), len(b)) - 1 and a[-1 - common] == b[-1 - common]:
        common += 1
    old_root, new_root = os.path.join(*a[: len(a) - common]), os.path.join(*b[: len(b) - common])
    return os.path.normpath(os.path.join(old_root, os.path.relpath(here, new_root)))


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Field-level differences: ['train.learning_rate: 0.0001 -> 0.0003', ...]."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: (unset) -> {_short(new[key])}")
            elif key not in new:
                out.append(f"{path}: {_short(old[key])} -> (unset)")
            else:
                out.extend(config_diff(old[key], new[key], path))
        return out
    if old != new:
        return [f"{prefix}: {_short(old)} -> {_short(new)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
