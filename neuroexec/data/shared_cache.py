"""One in-memory copy of a dataset's images per machine, shared by the torchrun processes on it.

Under torchrun every process trains on every image over the epochs (a shuffled DistributedSampler),
so `compute.cache` would otherwise hold one copy per process. Here local rank 0 reads the images into
a file in /dev/shm (memory, not disk); the others wait, then every process maps that file with
`torch.from_file(shared=True)`. Once all have mapped it, the file is unlinked: the memory lives as
long as a process maps it, and nothing is left behind, even when a process dies later.

Every process of the job calls `share_images` at the same point (it holds collective barriers).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist

SHM = Path("/dev/shm")


def shm_file(paths: Sequence[Path]) -> Path:
    """The /dev/shm file of one job's copy of these images (the same name in every process of it)."""
    job = os.environ.get("TORCHELASTIC_RUN_ID", "") + os.environ.get("MASTER_PORT", "")
    digest = hashlib.sha256("\n".join([job, *map(str, paths)]).encode()).hexdigest()[:16]
    return SHM / f"neuroexec-cache-{digest}.f32"


def _all_agree(flag: bool) -> bool:
    """True when `flag` is true in every process of the job."""
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"  # nccl reduces CUDA tensors only
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def _create(path: Path, nbytes: int) -> None:
    """The file, its memory reserved now: writing into a mapped tmpfs file that ran out of room would
    kill the process (SIGBUS), while posix_fallocate fails cleanly (ENOSPC)."""
    path.unlink(missing_ok=True)  # left by a process of this job that died before unlinking it
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    finally:
        os.close(fd)


def _map(path: Path, count: int, shape: Sequence[int]) -> torch.Tensor:
    size = count * math.prod(shape)
    return torch.from_file(str(path), shared=True, size=size, dtype=torch.float32).view(count, *shape)


def share_images(
    paths: Sequence[Path],
    shape: Sequence[int],
    read: Callable[[int], torch.Tensor],
    local_rank: int,
    fits: bool = True,
) -> torch.Tensor | None:
    """[len(paths), *shape] float32 images shared through /dev/shm, read once per machine with `read(i)`
    by local rank 0. None, in every process, when some process says the images do not `fit` its memory
    budget, or /dev/shm is missing or too small: the caller then keeps a private cache or reads from
    disk. An error of `read` is raised in local rank 0 (torchrun then stops the others)."""
    path = shm_file(paths)
    nbytes = len(paths) * math.prod(shape) * 4
    room = fits and SHM.is_dir() and shutil.disk_usage(SHM).free > nbytes * 1.05
    if not _all_agree(room):
        return None
    error: Exception | None = None
    if local_rank == 0:
        try:
            _create(path, nbytes)
            images = _map(path, len(paths), shape)
            for i in range(len(paths)):
                images[i] = read(i)
        except Exception as err:  # noqa: BLE001 - every process must hear of it before anyone raises
            error = err
    if not _all_agree(error is None):
        path.unlink(missing_ok=True)
        if error is not None and not isinstance(error, OSError):
            raise error
        return None
    if local_rank != 0:
        images = _map(path, len(paths), shape)
    dist.barrier()  # every process has mapped the file
    if local_rank == 0:
        path.unlink(missing_ok=True)
    return images
