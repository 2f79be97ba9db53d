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
