"""One epoch of training and one validation pass, on one process, under DistributedDataParallel or
under FullyShardedDataParallel (compute.fully_sharded_data_parallel: `Trainer.sharded`).

The training pass records its own running predictions (a `Collector`), so the train metrics of
training.tsv cost nothing extra: the training set is never evaluated a second time per epoch.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler

from neuroexec import distributed, losses, ops, optim
from neuroexec.context import Kernels, RunContext
from neuroexec.data.augmentation import with_augmentation
from neuroexec.evaluation import Collector, amp_type, autocast, collect, make_loader, to_device
from neuroexec.spec.model import Compute
from neuroexec.training.sampling import WeightedSampler, weighted_sampler


def task_loss(
    task: str,
    outputs: torch.Tensor,
    labels: torch.Tensor,
    images: torch.Tensor,
    kernels: Kernels,
    loss_name: str | None = None,
) -> torch.Tensor:
    """Mean loss of a batch with train.loss (None: the task's default); the reconstruction MSE on
    ops.recon_loss's fused kernel (Triton on the GPU), the others as neuroexec/losses.py computes them."""
    if task == "reconstruction" and losses.loss_of(task, loss_name) == "MSELoss":
        return ops.recon_loss(outputs.float(), images.float(), kernels=kernels)
    return losses.batch_loss(task, loss_name, outputs, labels, images)


def gather_frames(frame: pd.DataFrame, ctx: RunContext) -> pd.DataFrame:
    """Concatenate every rank's frame (alone: the frame itself)."""
    if ctx.world_size <= 1 or not dist.is_initialized():
        return frame
    frames: list = [None] * ctx.world_size
    dist.all_gather_object(frames, frame)
    return pd.concat(frames, ignore_index=True)


@dataclass
class Position:
    """Where a training pass stands in its epoch: the batches done, the optimizer steps they made and
    their running predictions (what a mid-epoch checkpoint keeps: training/preemption.py)."""

    batch: int = 0
    steps: int = 0
    collector: Collector | None = None


class StopRequested(Exception):  # noqa: N818 (a request, not an error)
    """`train_epoch` stopped after an optimizer step because `stop()` said so; `position` is where."""

    def __init__(self, position: Position):
        super().__init__(f"stopped after batch {position.batch}")
        self.position = position


def ignore_sigterm(worker_id: int) -> None:
    """A DataLoader worker's start: SIGTERM is for the training process, which checkpoints on it
    (training/preemption.py); a SIGTERM sent to every process of a job (SLURM's to a job step, `kill` of
    the process group) would otherwise end the workers, and the epoch with them, before the checkpoint.
    A worker still ends with its training process (DataLoader's own watch on its parent)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


COLLECTOR_FIELDS = ("participants", "sessions", "mode_ids", "labels", "values", "losses", "nonfinite")


def collector_state(collector: Collector) -> dict[str, Any]:
    """A Collector's rows so far as weights_only-loadable values (lists of strings, ints, tensors)."""
    return {name: getattr(collector, name) for name in COLLECTOR_FIELDS}


def restore_collector(collector: Collector, state: dict[str, Any]) -> Collector:
    """`collector` holding the rows of `collector_state`."""
    for name in COLLECTOR_FIELDS:
        setattr(collector, name, state[name])
    return collector


class Skipping(Sampler[int]):
    """The training sampler, able to start an epoch part-way: after `start_at(k)` its next pass leaves
    out the first k items (the batches a mid-epoch checkpoint had done), then it is whole again. Its
    length stays the epoch's (the loader's len counts the epoch's batches).

    >>> sampler = Skipping(list(range(6)))
    >>> sampler.start_at(4)
    >>> list(sampler), list(sampler), len(sampler)
    ([4, 5], [0, 1, 2, 3, 4, 5], 6)
    """

    def __init__(self, sampler):
        self.sampler, self.skip = sampler, 0

    def start_at(self, items: int) -> None:
        self.skip = items

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0  # read now: workers start the pass before the first batch
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler)


@dataclass
class Trainer:
    """The network, its optimizer and how to run it; `net` is the bare module (its state dict has no
    `module.` prefix), `forward` what training calls (compiled and/or DDP-wrapped). The device, kernels,
    amp and loader settings are the step's (`ctx.settings`); `compute` gives the model's own (compile,
    seed, channels_last).

    Under FSDP, `sharded` is the FullyShardedDataParallel root that training, validation and the
    checkpoints go through (`net` holds its units), the optimizer is on its parameters, and `plain` is an
    unwrapped copy of the network for the final results (`unshard`). Its state dicts are gathered on
    every rank at once (`gather`), saved by rank 0 (`state_dict`, `optimizer_state_dict`), then dropped
    (`release`). Under FSDP training runs without autocast: FSDP's MixedPrecision casts (as ClinicaDL's)."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    task: str
    mode: str
    compute: Compute
    accumulation_steps: int
    ctx: RunContext
    loss_name: str | None = None  # train.loss; None: the task's default
    scheduler: optim.Scheduler | None = None  # stepped by `end_epoch`
    sampling: str = "random"  # train.sampler: "random" (shuffled) or "weighted" (training/sampling.py)
    augmentation: tuple[str, ...] = ()  # train.data_augmentation (data/augmentation.py)
    sharded: nn.Module | None = None  # the FSDP root (training/run.make_trainer wraps before the optimizer)
    plain: nn.Module | None = None  # under FSDP, an unwrapped copy of `net` (`unshard`)

    def __post_init__(self) -> None:
        self.ctx = self.ctx.with_settings(self.compute)
        self.settings = self.ctx.settings
        self.device = self.settings.device
        self.ddp = self.sharded  # the wrapper whose no_sync() accumulates gradients
        self.gathered: tuple[dict, dict] | None = None  # FSDP's full state dicts (`gather`)
        forward: nn.Module = self.net if self.sharded is None else self.sharded
        if self.ctx.world_size > 1 and self.sharded is None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.net, device_ids=ids)
            forward = self.ddp
        self.forward = torch.compile(forward) if self.compute.compile else forward
        # float16 autocast needs a loss scaler (ClinicaDL's GradScaler; FSDP's sharded one under FSDP,
        # whose gradients are shards); bfloat16 has float32's range
        float16 = amp_type(self.settings) == torch.float16
        if self.sharded is not None:
            from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

            self.scaler = ShardedGradScaler("cuda", enabled=float16)
        else:
            self.scaler = torch.amp.GradScaler("cuda", enabled=float16)

    # --- data ------------------------------------------------------------------------------------
    def sampler(self, dataset, shuffle: bool) -> DistributedSampler | WeightedSampler:
        """A seeded sampler for every case: alone it is a plain seeded shuffle (seed + epoch via
        set_epoch), under DDP each rank gets its shard of the same permutation. The training items of
        `sampling = "weighted"` are drawn by class weight instead, seeded alike."""
        if shuffle and self.sampling == "weighted":
            return weighted_sampler(dataset, self.compute.seed, max(1, self.ctx.world_size), self.ctx.rank)
        return DistributedSampler(
            dataset,
            num_replicas=max(1, self.ctx.world_size),
            rank=self.ctx.rank,
            shuffle=shuffle,
            seed=self.compute.seed,
        )

    def loader(self, dataset, sampler: DistributedSampler) -> DataLoader:
        """A loader whose own seeded generator draws the seed of its worker processes. DataLoader
        otherwise draws it from the global RNG, which dropout draws from too, each time an iterator
        starts: every epoch with 0 workers, once with persistent workers, and again after a resume, so
        `compute.workers` and an interruption would change the model. The items themselves draw no
        random numbers from a worker's RNG (augmented ones from one seeded per item: `augmented`), so
        the worker seeds change nothing. Its worker processes ignore SIGTERM (`ignore_sigterm`)."""
        loader = make_loader(dataset, self.settings, sampler)
        loader.generator = torch.Generator().manual_seed(self.compute.seed)
        if loader.num_workers > 0 and loader.worker_init_fn is None:
            loader.worker_init_fn = ignore_sigterm
        return loader

    def augmented(self, dataset):
        """The training loader's items: `dataset`'s, with train.data_augmentation drawn per (seed, epoch,
        item) (data/augmentation.py). Validation and the final results read `dataset` itself."""
        return with_augmentation(dataset, self.augmentation, self.compute.seed)

    # --- passes ----------------------------------------------------------------------------------
    def train_epoch(
        self,
        loader: DataLoader,
        epoch: int,
        desc: str,
        after_batch: Callable[[int], None] | None = None,
        position: Position | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """One pass over the training data; returns (running predictions of every rank, optimizer
        steps made). The optimizer steps every `accumulation_steps` batches and at the end.
        `after_batch(i)` is called after batch i and its optimizer step (training/run.py: the profiler's
        step, train.evaluation_steps). `position`: continue the epoch from there (a mid-epoch
        checkpoint's; the loader's sampler is a `Skipping`). After each optimizer step, `stop()` true
        raises StopRequested with the position reached."""
        position = position or Position()
        set_epoch = getattr(loader.sampler, "set_epoch", None)
        if set_epoch is not None:  # the epoch's shuffle (or weighted draw)
            set_epoch(epoch)
        set_epoch = getattr(loader.dataset, "set_epoch", None)
        if set_epoch is not None:  # augmented items: their draws depend on the epoch (`augmented`)
            set_epoch(epoch)
        self.net.train()
        collector = position.collector or self.collector()
        n_batches, start, steps = len(loader), position.batch, position.steps
        if start:
            loader.sampler.start_at(start * loader.batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        batches = self.ctx.reporter.iterate(loader, total=n_batches - start, desc=desc)
        for i, batch in enumerate(batches, start):
            if self.sharded is not None:  # rank 0's batch-norm statistics, as DDP's broadcast_buffers
                self.sync_buffers()
            images = to_device(batch["image"], self.device, self.compute.channels_last)
            labels = batch["label"].to(self.device, non_blocking=True)
            step_now = (i + 1) % self.accumulation_steps == 0 or i + 1 == n_batches
            sync = contextlib.nullcontext() if step_now or self.ddp is None else self.ddp.no_sync()
            with sync:
                with self.autocast():
                    raw = self.forward(images)
                    outputs, loss = self.batch_loss(raw, images, labels)
                self.scaler.scale(loss / self.accumulation_steps).backward()
            if step_now:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                steps += 1
            collector.add(batch, outputs, images, self.item_losses(raw, images))
            if after_batch is not None:
                after_batch(i)
            if step_now and stop is not None and stop():
                raise StopRequested(Position(i + 1, steps, collector))
        return gather_frames(collector.frame(), self.ctx), steps

    def autocast(self) -> contextlib.AbstractContextManager:
        """The training pass's autocast (`evaluation.autocast`); none under FSDP, whose MixedPrecision
        (distributed.fsdp_wrap) casts the parameters to the same type, as ClinicaDL's."""
        return contextlib.nullcontext() if self.sharded is not None else autocast(self.settings)

    def collector(self) -> Collector:
        """An empty Collector of this training's predictions."""
        return Collector(self.task, self.mode, self.settings.kernels, loss=self.loss_name)

    def batch_loss(
        self, raw, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs the collector records, mean loss) of a training batch from the network's raw output:
        the network's own loss when it has one (VAEs: `training_loss(raw, images, loss_name)`), else
        the task's."""
        own = getattr(self.net, "training_loss", None)
        if own is not None:
            return own(raw, images, self.loss_name)
        return raw, task_loss(self.task, raw, labels, images, self.settings.kernels, self.loss_name)

    @torch.no_grad()
    def item_losses(self, raw, images: torch.Tensor) -> torch.Tensor | None:
        """Per-sample losses of a training batch when the network has its own (VAEs: `item_losses`,
        from the latent it sampled), else None: the collector computes the task's."""
        own = getattr(self.net, "item_losses", None)
        return None if own is None else own(raw, images, self.loss_name)

    def evaluate(self, dataset) -> pd.DataFrame:
        """Validation predictions (eval mode) of every rank, each rank evaluating its shard."""
        self.sync_buffers()
        loader = self.loader(dataset, self.sampler(dataset, shuffle=False))
        collector = self.collector()
        net = self.net if self.sharded is None else self.sharded  # FSDP gathers each unit's weights
        frame = collect(net, loader, collector, self.settings, self.compute.channels_last)
        return gather_frames(frame, self.ctx)

    def end_epoch(self, validation_loss: float) -> None:
        """After an epoch's validation: the scheduler's step (ReduceLROnPlateau on the validation loss,
        as ClinicaDL's adaptive learning rate); a new learning rate is reported (not in training.tsv,
        whose columns are ClinicaDL's)."""
        if self.scheduler is None:
            return
        before = [group["lr"] for group in self.optimizer.param_groups]
        optim.step(self.scheduler, validation_loss)
        after = [group["lr"] for group in self.optimizer.param_groups]
        if after != before and self.ctx.is_main:
            self.ctx.reporter.info(f"  learning rate now {', '.join(f'{lr:.4g}' for lr in after)}")

    def sync_buffers(self) -> None:
        """Give every rank rank 0's batch-norm running statistics (what rank 0 saves)."""
        if self.ddp is None:
            return
        for buffer in self.net.buffers():
            dist.broadcast(buffer, src=0)

    def gather(self) -> None:
        """Every rank at once, before rank 0 saves (training/run.py): under FSDP, the full state dicts of
        the network and its optimizer, gathered on rank 0 (`distributed.fsdp_full_state`); nothing else."""
        if self.sharded is not None:
            self.gathered = distributed.fsdp_full_state(self.sharded, self.optimizer)

    def release(self) -> None:
        """Drop the gathered full state dicts (`gather`) once saved."""
        self.gathered = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's weights under its own names (rank 0's, gathered, under FSDP)."""
        if self.sharded is None:
            return self.net.state_dict()
        assert self.gathered is not None, "Trainer.gather() first: FSDP's state dicts are collective"
        return self.gathered[0]

    def optimizer_state_dict(self) -> dict:
        """The optimizer's state dict (what resume.save_epoch writes to optimizer.pth.tar); under FSDP,
        rank 0's gathered one (`gather` first): FSDP's full optimizer state dict, keyed by parameter
        names, as ClinicaDL's under FSDP. Full rather than one file per rank's shard: rank 0 writes one
        file, as under DDP, and `load` cuts the shards again with the same values (a bit-identical
        resume with the same process count; with another, the data shards and so the sums differ)."""
        if self.sharded is None:
            return self.optimizer.state_dict()
        assert self.gathered is not None, "Trainer.gather() first: FSDP's state dicts are collective"
        return self.gathered[1]

    def load(self, model: dict[str, torch.Tensor], optimizer: dict | None = None) -> None:
        """Every rank: load a network's full state dict (and an optimizer's, `optimizer_state_dict`'s)."""
        if self.sharded is not None:
            distributed.fsdp_load_full_state(self.sharded, self.optimizer, model, optimizer)
            return
        self.net.load_state_dict(model)
        if optimizer is not None:
            self.optimizer.load_state_dict(optimizer)

    def unshard(self) -> None:
        """Every rank, after the epochs: under FSDP, `net` becomes the unwrapped copy, for the final
        results, which load the best models into it on rank 0 alone (on the device there; the other
        ranks keep it on the CPU). The shards, the wrapper and the optimizer state go first."""
        if self.sharded is not None and self.plain is not None:
            self.optimizer.state.clear()
            self.gathered = self.sharded = self.ddp = None
            self.net = self.plain.to(self.device) if self.ctx.is_main else self.plain
            self.forward = self.net
