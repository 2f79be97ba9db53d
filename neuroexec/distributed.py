"""torchrun support: process-group setup from the environment, a barrier that is a no-op alone, and
FSDP (compute.fully_sharded_data_parallel): the wrap and its full state dicts."""

from __future__ import annotations

import functools
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


# --- fully sharded data parallel (compute.fully_sharded_data_parallel), as ClinicaDL 1.6.1 wraps it


def fsdp_wrap(net: torch.nn.Module, device: torch.device, amp_dtype: torch.dtype | None) -> torch.nn.Module:
    """`net` in FullyShardedDataParallel as ClinicaDL's (utils/maps_manager/ddp.py): FULL_SHARD, every
    module with a parameter its own unit (size-based wrap, 1 parameter at least), no CPU offload. With
    amp on a GPU (`amp_dtype`), ClinicaDL's MixedPrecision: parameters in that type (ClinicaDL's
    float16), gradient reduction and buffers in float32 (untested here: no GPU). `device`: the step's
    (on the CPU, gloo; FSDP needs it named there). `use_orig_params` keeps the network's own parameters
    visible to the optimizer (neuroexec/optim.py takes those that require a gradient, so frozen layers
    and the parameter groups are those of a DDP training); the optimizers are element-wise, so a shard's
    update is the whole one's. The caller builds the optimizer on the wrapper's parameters."""
    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    precision = None
    if amp_dtype is not None and device.type == "cuda":
        precision = MixedPrecision(
            param_dtype=amp_dtype, reduce_dtype=torch.float32, buffer_dtype=torch.float32
        )
    return FullyShardedDataParallel(
        net,
        sharding_strategy=ShardingStrategy.FULL_SHARD,
        auto_wrap_policy=functools.partial(size_based_auto_wrap_policy, min_num_params=1),
        mixed_precision=precision,
        device_id=device,
        use_orig_params=True,
    )


def _full_state_dicts(root: torch.nn.Module, rank0_only: bool):
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return FSDP.state_dict_type(
        root,
        StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),  # offloading needs CUDA
        FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=rank0_only),
    )


def fsdp_full_state(root: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Every rank at once (collective): the network's full state dict, under its own parameter names
    (no `_fsdp_wrapped_module.` prefix), and FSDP's full optimizer state dict (keyed by those names),
    gathered on rank 0 as ClinicaDL saves them; the other ranks get empty dicts."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with _full_state_dicts(root, rank0_only=True):
        return root.state_dict(), FSDP.optim_state_dict(root, optimizer)


def fsdp_load_full_state(
    root: torch.nn.Module, optimizer: torch.optim.Optimizer | None, model: dict, optim: dict | None
) -> None:
    """Every rank at once: load a full state dict (every rank read the file) into the sharded network,
    and a full optimizer state dict (`fsdp_full_state`'s) into its optimizer: each rank keeps its shard."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with _full_state_dicts(root, rank0_only=False):
        root.load_state_dict(model)
        if optimizer is not None and optim is not None:
            optimizer.load_state_dict(FSDP.optim_state_dict_to_load(root, optimizer, optim))
