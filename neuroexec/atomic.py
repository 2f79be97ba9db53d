"""Atomic writes: every file neuroexec puts into a MAPS or CAPS is written to a temporary file in the
same folder, flushed, then renamed over the target. An interrupted run leaves either the old file or
the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; on success rename it to `path`.

    >>> with atomic_open(tmp / "a.txt", "w") as f:
    ...     f.write("hello")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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


def save_torch(path: str | Path, obj: Any) -> None:
    """torch.save, atomically. Tensors are cloned by the caller when they are views of a batch."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


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
