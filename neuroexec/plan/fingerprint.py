"""Fingerprints: sha256 over the step's config slice, its upstream fingerprints, the identity of its
input files and the format version. File identity = content hash, recomputed only when (size, mtime)
differ from the cached value, so a plan over thousands of images costs one stat per file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from neuroexec import FORMAT_VERSION


def file_identity(path: Path, cache: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """(identity, cache entry to store or None). A missing file has the identity 'missing'."""
    key = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing", None
    if path.is_dir():
        return f"dir:{st.st_mtime_ns}", None
    hit = cache.get(key)
    if hit and hit["size"] == st.st_size and hit["mtime_ns"] == st.st_mtime_ns:
        return hit["sha256"], None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
    return entry["sha256"], entry


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
