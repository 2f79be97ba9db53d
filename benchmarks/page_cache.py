"""Cold reads for the pipeline benchmarks: files dropped from the page cache with
posix_fadvise(DONTNEED), which needs no privileges (dropping the whole cache would need root), so
every byte is read from disk again."""

from __future__ import annotations

import os
from pathlib import Path


def evict(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
