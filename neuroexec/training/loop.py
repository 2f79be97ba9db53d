"""One epoch of training and one validation pass, on one process or under DistributedDataParallel.

The training pass records its own running predictions (a `Collector`), so the train metrics of
training.tsv cost nothing extra: the training set is never evaluated a second time per epoch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from neuroexec import ops
from neuroexec.context import Kernels, RunContext
from neuroexec.errors import NeuroexecError
from neuroexec.evaluation import Collector, autocast, collect, make_loader, to_device
from neuroexec.spec.model import Compute


def make_optimizer(name: str, parameters, learning_rate: float, weight_decay: float) -> torch.optim.Optimizer:
    """torch.optim.<name> (Adam, AdamW, SGD, RMSprop, ...) with the learning rate and weight decay.

    >>> make_optimizer("AdamW", torch.nn.Linear(2, 1).parameters(), 1e-4, 1e-2).defaults["weight_decay"]
    0.01
    >>> make_optimizer("Adamm", torch.nn.Linear(2, 1).parameters(), 1e-4, 0.0)
    Traceback (most recent call last):
    neuroexec.errors.NeuroexecError: train.optimizer: unknown optimizer 'Adamm' (expected a torch.optim class, e.g. Adam)
    """
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise NeuroexecError(
            f"train.optimizer: unknown optimizer {name!r} (expected a torch.optim class, e.g. Adam)"
        )
    return cls(parameters, lr=learning_rate, weight_decay=weight_decay)


def task_loss(task: str, outputs: torch.Tensor, labels: torch.Tensor, images: torch.Tensor, kernels: Kernels):
    """Mean loss of a batch: cross-entropy, MSE on the first output, or the reconstruction MSE."""
    if task == "classification":
        return F.cross_entropy(outputs.float(), labels)
    if task == "regression":
        return F.mse_loss(outputs[:, 0].float(), labels.float())
    return ops.recon_loss(outputs.float(), images.float(), kernels=kernels)


def gather_frames(frame: pd.DataFrame, ctx: RunContext) -> pd.DataFrame:
    """Concatenate every rank's frame (alone: the frame itself)."""
    if ctx.world_size <= 1 or not dist.is_initialized():
        return frame
    frames: list = [None] * ctx.world_size
    dist.all_gather_object(frames, frame)
    return pd.concat(frames, ignore_index=True)


@dataclass
class Trainer:
    """The network, its optimizer and how to run it; `net` is the bare module (its state dict has no
    `module.` prefix), `forward` what training calls (compiled and/or DDP-wrapped). The device, kernels,
    amp and loader settings are the step's (`ctx.settings`); `compute` gives the model's own (compile,
    seed, channels_last)."""

    net: nn.Module
    optimizer: torch.optim.Optimizer
    task: str
    mode: str
    compute: Compute
    accumulation_steps: int
    ctx: RunContext
    loss_name: str | None = None  # train.loss; None: the task's default

    def __post_init__(self) -> None:
        self.ctx = self.ctx.with_settings(self.compute)
        self.settings = self.ctx.settings
        self.device = self.settings.device
        self.ddp = None
        forward: nn.Module = self.net
        if self.ctx.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.net, device_ids=ids)
            forward = self.ddp
        self.forward = torch.compile(forward) if self.compute.compile else forward
        use_fp16 = self.settings.amp and self.device.type == "cuda" and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)

    # --- data ------------------------------------------------------------------------------------
    def sampler(self, dataset, shuffle: bool) -> DistributedSampler:
        """A seeded sampler for every case: alone it is a plain seeded shuffle (seed + epoch via
        set_epoch), under DDP each rank gets its shard of the same permutation."""
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
        random numbers (see neuroexec.data.datasets), so the worker seeds change nothing."""
        loader = make_loader(dataset, self.settings, sampler)
        loader.generator = torch.Generator().manual_seed(self.compute.seed)
        return loader

    # --- passes ----------------------------------------------------------------------------------
    def train_epoch(self, loader: DataLoader, epoch: int, desc: str) -> tuple[pd.DataFrame, int]:
        """One pass over the training data; returns (running predictions of every rank, optimizer
        steps made). The optimizer steps every `accumulation_steps` batches and at the end."""
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        self.net.train()
        collector = Collector(self.task, self.mode, self.settings.kernels)
        n_batches, steps = len(loader), 0
        self.optimizer.zero_grad(set_to_none=True)
        batches = self.ctx.reporter.iterate(loader, total=n_batches, desc=desc)
        for i, batch in enumerate(batches):
            images = to_device(batch["image"], self.device, self.compute.channels_last)
            labels = batch["label"].to(self.device, non_blocking=True)
            step_now = (i + 1) % self.accumulation_steps == 0 or i + 1 == n_batches
            sync = contextlib.nullcontext() if step_now or self.ddp is None else self.ddp.no_sync()
            with sync:
                with autocast(self.settings):
                    outputs, loss = self.batch_loss(self.forward(images), images, labels)
                self.scaler.scale(loss / self.accumulation_steps).backward()
            if step_now:
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                steps += 1
            collector.add(batch, outputs, images)
        return gather_frames(collector.frame(), self.ctx), steps

    def batch_loss(
        self, raw, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(outputs the collector records, mean loss) of a training batch from the network's raw output:
        the network's own loss when it has one (VAEs: `training_loss(raw, images, loss_name)`), else
        the task's."""
        own = getattr(self.net, "training_loss", None)
        if own is not None:
            return own(raw, images, self.loss_name)
        return raw, task_loss(self.task, raw, labels, images, self.settings.kernels)

    def evaluate(self, dataset) -> pd.DataFrame:
        """Validation predictions (eval mode) of every rank, each rank evaluating its shard."""
        self.sync_buffers()
        loader = self.loader(dataset, self.sampler(dataset, shuffle=False))
        frame = collect(self.net, loader, self.task, self.mode, self.settings, self.compute.channels_last)
        return gather_frames(frame, self.ctx)

    def sync_buffers(self) -> None:
        """Give every rank rank 0's batch-norm running statistics (what rank 0 saves)."""
        if self.ddp is None:
            return
        for buffer in self.net.buffers():
            dist.broadcast(buffer, src=0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()
