"""torchrun support: process-group setup from the environment, and a barrier that is a no-op alone."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> None:
    """Under torchrun (WORLD_SIZE > 1) join the process group: nccl on GPU, gloo on CPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))


def local_world_size() -> int:
    """Training processes on this machine: torchrun's LOCAL_WORLD_SIZE, 1 outside torchrun."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def local_rank() -> int:
    """This process's rank on its machine: torchrun's LOCAL_RANK, 0 outside torchrun."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def any_rank(flag: bool, ctx) -> bool:
    """Whether `flag` is true on any rank (every rank gets the answer; alone: `flag`). A SIGTERM can
    reach the ranks at different batches: they stop at the same one."""
    if ctx.world_size <= 1 or not dist.is_initialized():
        return flag
    cuda = dist.get_backend() == "nccl"
    value = torch.tensor(
        [int(flag)], device=torch.device("cuda", torch.cuda.current_device()) if cuda else "cpu"
    )
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(value: object, ctx) -> list:
    """Every rank's `value`, by rank (alone: `[value]`)."""
    if ctx.world_size <= 1 or not dist.is_initialized():
        return [value]
    values: list = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def barrier(ctx) -> None:
    if ctx.world_size > 1 and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
