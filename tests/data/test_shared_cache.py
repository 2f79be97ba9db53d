"""neuroexec/data/shared_cache.py with 2 real processes (gloo): one copy through /dev/shm, agreed
fallbacks, errors raised where they happen, no file left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from neuroexec.data.shared_cache import SHM, share_images

pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm")
SHAPE = (1, 3, 4, 5)


def _image(i: int) -> torch.Tensor:
    return torch.full(SHAPE, float(i)) + torch.arange(60.0).view(SHAPE)


def _worker(rank: int, folder: str, case: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    paths = [Path(folder) / f"image-{i}.pt" for i in range(3)]
    reads: list[int] = []

    def read(i: int) -> torch.Tensor:
        reads.append(i)
        if case == "bad image" and i == 1:
            raise ValueError(f"{paths[i]}: corrupt")
        return _image(i)

    fits = not (case == "no room" and rank == 1)
    outcome: dict = {"reads": reads}
    try:
        images = share_images(paths, SHAPE, read, local_rank=rank, fits=fits)
        outcome["images"] = None if images is None else images.tolist()
        if images is not None and rank == 1:
            dist.barrier()  # rank 0 writes into its mapping below: rank 1 must see it (one copy)
            dist.barrier()
            outcome["after_write"] = float(images[0, 0, 0, 0, 0])
        elif images is not None:
            dist.barrier()
            images[0, 0, 0, 0, 0] = -1.0
            dist.barrier()
    except ValueError as err:
        outcome["error"] = str(err)
    Path(folder, f"rank-{rank}.json").write_text(json.dumps(outcome))
    dist.destroy_process_group()


def _run(tmp_path: Path, case: str) -> list[dict]:
    before = set(SHM.glob("neuroexec-cache-*"))
    mp.spawn(_worker, args=(str(tmp_path), case), nprocs=2, join=True)
    assert set(SHM.glob("neuroexec-cache-*")) == before  # unlinked, whatever happened
    return [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]


def test_one_copy_read_once_and_seen_by_both_processes(tmp_path):
    zero, one = _run(tmp_path, "ok")
    expected = torch.stack([_image(i) for i in range(3)]).tolist()
    assert zero["images"] == one["images"] == expected
    assert zero["reads"] == [0, 1, 2] and one["reads"] == []  # read by local rank 0 only
    assert one["after_write"] == -1.0  # the same memory, not a copy


def test_one_process_without_room_means_no_sharing_anywhere(tmp_path):
    zero, one = _run(tmp_path, "no room")
    assert zero["images"] is None and one["images"] is None and zero["reads"] == []


def test_a_bad_image_is_raised_in_the_process_that_read_it(tmp_path):
    zero, one = _run(tmp_path, "bad image")
    assert "image-1.pt: corrupt" in zero["error"]
    assert one["images"] is None and "error" not in one
