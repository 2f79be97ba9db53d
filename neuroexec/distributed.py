"""torchrun support: process-group setup from the environment, a barrier that is a no-op alone, and
FSDP (compute.fully_sharded_data_parallel): the wrap and its full state dicts."""

from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist

from neuroexec.errors import InputError


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
    module with a parameter its own unit (size-based wrap, 1 parameter at least), no CPU offload, rank
    0's weights broadcast at the wrap on a GPU (`sync_module_states`, as DDP does; FSDP has it only on
    CUDA: on the CPU every rank built the same seeded network). With amp on a GPU,
    MixedPrecision in `amp_dtype`, the step's resolved amp type (`evaluation.amp_type`: compute.amp_dtype,
    "auto" being bfloat16 where the GPU has it, else ClinicaDL's float16), gradient reduction and buffers
    in float32; training then runs without autocast, as ClinicaDL's (untested here: no GPU). `device`: the step's
    (on the CPU, gloo; FSDP needs it named there). `use_orig_params` keeps the network's own parameters
    visible to the optimizer (neuroexec/optim.py takes those that require a gradient, so frozen layers
    and the parameter groups are those of a DDP training); the optimizers are element-wise, so a shard's
    update is the whole one's. The caller builds the optimizer on the wrapper's parameters.

    Every module with parameters becomes a unit that gathers its weights in its own forward, so a
    method of the network called outside forward (a VAE's `evaluation_losses`, which encodes again)
    sees whole weights through its submodules; such a network must hold no parameter of its own
    (it would stay a shard there): one that does is refused (InputError)."""
    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    own = [name for name, _ in net.named_parameters(recurse=False)]
    if own and hasattr(net, "evaluation_losses"):  # run outside forward (`Trainer.evaluate`)
        raise InputError(
            None,
            f"the network {type(net).__name__} holds parameters of its own ({', '.join(own)}), which "
            "FSDP leaves sharded when its methods run outside forward; set it to false",
            field="compute.fully_sharded_data_parallel",
        )
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
        sync_module_states=device.type == "cuda",  # needs CUDA; on the CPU the seeded builds agree
        use_orig_params=True,
    )


def _full_state_dicts(root: torch.nn.Module, rank0_only: bool):
    """FSDP's full state dicts, gathered in CPU memory on a GPU (as ClinicaDL's: the GPU keeps no full
    copy), on the device on the CPU (offloading needs CUDA)."""
    from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    offload = next(root.parameters()).device.type == "cuda"
    return FSDP.state_dict_type(
        root,
        StateDictType.FULL_STATE_DICT,
        FullStateDictConfig(offload_to_cpu=offload, rank0_only=rank0_only),
        FullOptimStateDictConfig(offload_to_cpu=offload, rank0_only=rank0_only),
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
    and a full optimizer state dict (`fsdp_full_state`'s) into its optimizer: each rank keeps its shard.
    An optimizer state dict keyed by parameter ids (a DDP or one-process run's, neuroexec's or
    ClinicaDL's) is first keyed by the parameters' names (`name_keyed`)."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    with _full_state_dicts(root, rank0_only=False):
        root.load_state_dict(model)
        if optimizer is not None and optim is not None:
            optim = name_keyed(root, optimizer, optim)
            optimizer.load_state_dict(FSDP.optim_state_dict_to_load(root, optimizer, optim))


def name_keyed(root: torch.nn.Module, optimizer: torch.optim.Optimizer, optim: dict) -> dict:
    """`optim` keyed by parameter names, as FSDP's full optimizer state dicts are: an id-keyed one
    (torch's own `Optimizer.state_dict()`: ids in the order of the optimizer's parameter groups, which
    the FSDP optimizer's follow, built on the same parameters) through FSDP.rekey_optim_state_dict."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import OptimStateKeyType

    ids = [p for group in optim.get("param_groups", []) for p in group["params"]]
    if not ids or not all(isinstance(p, int) for p in ids):
        return optim
    return FSDP.rekey_optim_state_dict(optim, OptimStateKeyType.PARAM_NAME, root, optim=optimizer)
