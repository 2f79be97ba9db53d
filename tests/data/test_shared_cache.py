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

# what the cases leave in /dev/shm is compared with what was there: no other test's caches may come and go
pytestmark = [pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm"), pytest.mark.same_worker("dev-shm")]
SHAPE = (1, 3, 4, 5)


def _image(i: int) -> torch.Tensor:
    return torch.full(SHAPE, float(i)) + torch.arange(60.0).view(SHAPE)


CASES = ("ok", "no room", "bad image")


def _case(rank: int, folder: Path, case: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    paths = [folder / f"image-{i}.pt" for i in range(3)]
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
        del images
    except ValueError as err:
        outcome["error"] = str(err)
    dist.barrier()  # both ranks are done with the case: what it left in /dev/shm is what stays
    if rank == 0:
        outcome["left_in_shm"] = sorted(str(p) for p in SHM.glob("neuroexec-cache-*"))
    (folder / f"rank-{rank}.json").write_text(json.dumps(outcome))
    dist.destroy_process_group()


def _worker(rank: int, root: str) -> None:
    """Each case in a process group of its own, one after another, in the same two processes (two
    processes started once: most of their time is importing torch)."""
    for case in CASES:
        _case(rank, Path(root) / case, case)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """What each rank saw in each case, and what each case left in /dev/shm besides what was there."""
    root = tmp_path_factory.mktemp("shared_cache")
    for case in CASES:
        (root / case).mkdir()
    before = {str(p) for p in SHM.glob("neuroexec-cache-*")}
    mp.spawn(_worker, args=(str(root),), nprocs=2, join=True)
    seen = {
        case: [json.loads((root / case / f"rank-{r}.json").read_text()) for r in range(2)] for case in CASES
    }
    after_exit = sorted({str(p) for p in SHM.glob("neuroexec-cache-*")} - before)
    for zero, _ in seen.values():
        zero["left_in_shm"], zero["left_after_exit"] = sorted(set(zero["left_in_shm"]) - before), after_exit
    return seen


def _run(outcomes: dict[str, list[dict]], case: str) -> list[dict]:
    zero, one = outcomes[case]
    assert zero["left_in_shm"] == zero["left_after_exit"] == []  # unlinked, whatever happened
    return [zero, one]


def test_one_copy_read_once_and_seen_by_both_processes(outcomes):
    zero, one = _run(outcomes, "ok")
    expected = torch.stack([_image(i) for i in range(3)]).tolist()
    assert zero["images"] == one["images"] == expected
    assert zero["reads"] == [0, 1, 2] and one["reads"] == []  # read by local rank 0 only
    assert one["after_write"] == -1.0  # the same memory, not a copy


def test_one_process_without_room_means_no_sharing_anywhere(outcomes):
    zero, one = _run(outcomes, "no room")
    assert zero["images"] is None and one["images"] is None and zero["reads"] == []


def test_a_bad_image_is_raised_in_the_process_that_read_it(outcomes):
    zero, one = _run(outcomes, "bad image")
    assert "image-1.pt: corrupt" in zero["error"]
    assert one["images"] is None and "error" not in one
