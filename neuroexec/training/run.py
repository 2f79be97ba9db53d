"""`train_split`: train one split of a model and write its part of the MAPS (ClinicaDL 1.x layout).

Per epoch: one training pass (its running predictions give the train metrics), one validation
pass, a training.tsv row, the best model of each selection metric when it improves, early stopping
on the validation loss, and the resume checkpoint in tmp/. At the end, for each selection metric,
the train and validation results of its best model; tmp/ is removed.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time

import torch
from torch.utils.data import DataLoader, Dataset

from neuroexec import distributed
from neuroexec.context import RunContext
from neuroexec.errors import NeuroexecError
from neuroexec.evaluation import (
    ResultSet,
    amp_type,
    frame_metrics,
    predict_frames,
    split_loss,
    write_results,
)
from neuroexec.maps.checkpoints import load_model_state, save_model
from neuroexec.maps.layout import MapsLayout
from neuroexec.metrics import is_improvement
from neuroexec.optim import make_optimizer, make_scheduler
from neuroexec.spec.model import Compute, Train, canonical_metric
from neuroexec.training import observers, outputs, preemption, resume, setup
from neuroexec.training.epoch_rules import check_finite, determinism, early_stop, log_row
from neuroexec.training.loop import Skipping, StopRequested, Trainer
from neuroexec.training.resume import Progress
from neuroexec.training.task import TrainTask


def _value(values: dict[str, float], metric: str) -> float:
    if metric not in values:
        raise NeuroexecError(f"selection metric {metric!r} is not computed; available: {', '.join(values)}")
    return float(values[metric])


@dataclasses.dataclass(frozen=True)
class SplitRun:
    """What the epoch loop and the final results of one split's training share."""

    task: TrainTask
    ctx: RunContext  # with the step's settings
    maps: MapsLayout
    trainer: Trainer
    train_data: Dataset
    valid_data: Dataset
    label_code: dict[str, int] | None
    selection: list[str]  # the selection metrics, canonical names
    key: str  # the resume key (neuroexec.training.task.TrainTask.resume_key)
    network: int | None = None  # the network of a multi-network model (training/networks.py)
    # metric -> validation (frame, loss) of its best epoch, filled by the epoch loop, re-used at the end
    best_valid: dict[str, tuple] = dataclasses.field(default_factory=dict)

    @property
    def split(self) -> int:
        return self.task.split

    @property
    def train(self) -> Train:
        return self.task.model.train

    @property
    def n_classes(self) -> int:
        return len(self.label_code) if self.label_code else 0

    @property
    def label(self) -> str:
        """`split-<i>`, or `split-<i> network-<k>`: how progress lines and the log name this training."""
        return f"split-{self.split}" + ("" if self.network is None else f" network-{self.network}")


def train_split(task: TrainTask, ctx: RunContext) -> dict:
    """Train split `task.split` of `task.model` (a neuroexec.training.task.TrainTask); every rank calls
    it under torchrun, rank 0 writes. Returns a small summary for the state record.

    The step that calls it (neuroexec/steps/train.py) is its example: it needs a whole model and its
    data, which tests/training/test_run.py builds (TinyCNN, a tiny CAPS, one epoch).
    """
    model, split = task.model, task.split
    c, t = model.compute, model.train
    maps = MapsLayout(model.maps)
    ctx = ctx.with_settings(c)  # device, kernels, amp, loader: resolved once for the step
    main = ctx.is_main
    setup.check_compile(c, ctx.settings.device)
    selection = list(dict.fromkeys(canonical_metric(m) for m in t.selection_metrics))
    label_code = setup.label_code_of(model, maps)
    train_data, valid_data = split_datasets(task, label_code, ctx)
    input_size = list(train_data.input_size)
    output_size = setup.output_size_of(model, label_code)
    c = dataclasses.replace(c, channels_last=setup.channels_last_for(c, input_size))
    key = task.resume_key(ctx.upstream)

    with determinism(c.deterministic, c.compensation):
        resume.seed_everything(c.seed)
        trainer = make_trainer(task, c, input_size, output_size, ctx)
        run = SplitRun(task, ctx, maps, trainer, train_data, valid_data, label_code, selection, key)
        progress, resumed_from = start_run(run)
        if main:
            # num_networks: the parts per image, as ClinicaDL writes it (its predict soft-votes only then)
            parameters = outputs.maps_parameters(
                model,
                task.dataset,
                label_code,
                input_size,
                output_size,
                task.transfer_maps,
                train_data.n_parts,
            )
            outputs.write_run_files(maps, parameters, trainer.plain or trainer.net, split, resumed_from)
        stopped = run_epochs(run, progress)
        trainer.unshard()  # FSDP: the final results load the best models into a plain network
        distributed.barrier(ctx)
        if main:
            outputs.append_information(
                maps,
                split,
                f"split-{split}: training finished after {progress.epoch + 1} epochs"
                + (" (early stopping)" if stopped else ""),
            )
            _final_results(run)
            outputs.publish_training(maps, split, selection, t.tensorboard,
                                     all_models=t.save_all_models, emissions=t.calculate_emissions)  # fmt: skip
            resume.clear(maps, split)
    return {
        "epochs": progress.epoch + 1,
        "resumed_after_epoch": resumed_from,
        "stopped_early": stopped,
        "best": {m: {"value": progress.best.get(m), "epoch": progress.best_epoch.get(m)} for m in selection},
    }


def split_datasets(
    task: TrainTask, label_code: dict[str, int] | None, ctx: RunContext, part_index: int | None = None
) -> tuple[Dataset, Dataset]:
    """The split's training and validation items (compute.cache: shared by this machine's processes);
    `part_index`: that part of each image only (network k of a multi-network model)."""
    model, ds, c, rep = task.model, task.dataset, task.model.compute, ctx.reporter
    train_frame, valid_frame = task.split_frames()
    processes = distributed.local_world_size() if ctx.world_size > 1 else 1
    common = (label_code, c.cache, rep.warn, processes, part_index)
    train_data = setup.make_dataset(model, ds, train_frame, *common)
    valid_data = setup.make_dataset(model, ds, valid_frame, *common)
    if getattr(train_data, "shared_cache", False):
        rep.info(
            f"compute.cache: the images are in memory once, shared by the {processes} processes on this machine"
        )
    return train_data, valid_data


def make_trainer(
    task: TrainTask, c: Compute, input_size: list[int], output_size: int | None, ctx: RunContext
) -> Trainer:
    """The network (seeded by the caller), on the step's device, with its optimizer; under torchrun
    with compute.fully_sharded_data_parallel, wrapped in FSDP first (the optimizer is on its shards)."""
    model, t = task.model, task.model.train
    net = setup.build(model, input_size, output_size)
    if c.channels_last:
        net = net.to(memory_format=torch.channels_last_3d)
    net = net.to(ctx.settings.device)
    setup.freeze(net, task.model.transfer, task.transfer_from)  # before the optimizer, as ClinicaDL
    sharded = plain = None
    if c.fully_sharded_data_parallel and ctx.world_size > 1:
        plain = copy.deepcopy(net).cpu()  # off the GPU while the shards train (`Trainer.unshard`)
        sharded = distributed.fsdp_wrap(net, ctx.settings.device, amp_type(ctx.settings))
        if ctx.is_main:
            ctx.reporter.info(f"  FSDP: the network is sharded over {ctx.world_size} processes (FULL_SHARD)")
    parameters = (sharded or net).parameters()
    optimizer = make_optimizer(t.optimizer, parameters, t.learning_rate, t.weight_decay)
    options = t.scheduler.options if t.scheduler else ()
    scheduler = make_scheduler(optimizer, t.adaptive_learning_rate, t.scheduler and t.scheduler.name, options)
    return Trainer(
        net, optimizer, model.task, model.mode, c, max(1, t.accumulation_steps), ctx,
        loss_name=t.loss, scheduler=scheduler, sampling=t.sampler, augmentation=t.data_augmentation,
        sharded=sharded, plain=plain,
    )  # fmt: skip


def start_run(run: SplitRun) -> tuple[Progress, int | None]:
    """Where the training starts: after the last saved epoch of an interrupted run made with the same
    key (weights, optimizer, scaler and RNG restored), else from the first epoch, with the transferred
    weights when the model has a transfer source. Returns the progress and the epoch resumed after."""
    task, trainer, maps, split = run.task, run.trainer, run.maps, run.split
    main, rep = run.ctx.is_main, run.ctx.reporter
    found = resume.load_resume(maps, split, run.key, run.network)
    if found is not None:
        checkpoint, optimizer_checkpoint, state = found
        trainer.load(checkpoint["model"], optimizer_checkpoint["optimizer"])
        if state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        if state.get("scheduler") and trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(state["scheduler"])
        progress = Progress.from_state(state["progress"])
        resume.set_rng_state(state["rng"])
        if main:
            at = progress.in_epoch
            within = "" if at is None else f" and {at['batch']} batches of epoch {at['epoch'] + 1}"
            rep.info(
                f"  {run.label}: resuming after epoch {progress.epoch + 1} of {run.train.epochs}{within}"
            )
        return progress, progress.epoch
    if main and run.network is None and maps.resume_state(split).is_file():
        rep.info(
            f"  split-{split}: the interrupted run cannot be resumed (other settings, data or transfer "
            "source, or incomplete checkpoints); training starts over"
        )
    if task.transfer_from is not None:
        target = trainer.plain or trainer.net  # under FSDP, into the plain copy, then sharded
        copied = setup.transfer(
            target, task.transfer_from, task.transfer_maps, task.model.task == "reconstruction"
        )
        if trainer.sharded is not None:
            trainer.load(target.state_dict())
        if main:
            rep.info(f"  {run.label}: {len(copied)} tensors transferred from {task.transfer_from}")
    if main and run.network is None:
        resume.clear(maps, split)  # the finished training's files stay until this one finishes
    elif main:
        resume.clear_network(maps, split, run.network, run.selection)  # the other networks' stay
    return Progress(), None


@dataclasses.dataclass(frozen=True)
class _Epoch:
    """One epoch's metrics and what they decided."""

    index: int
    train: dict[str, float]
    valid: dict[str, float]
    improved: list[str]  # the selection metrics whose best model this epoch is
    stop: bool  # early stopping
    midway: tuple = ()  # train.evaluation_steps' points: (batch index, elapsed, train, validation values)
    learning_rate: float = math.nan  # the epoch's (its first parameter group's), before the scheduler's step


def run_epochs(run: SplitRun, progress: Progress) -> bool:
    """The epoch loop; True when early stopping ended it. `run.best_valid` receives each selection
    metric's validation predictions at its best epoch (re-used at the end)."""
    t, trainer, main = run.train, run.trainer, run.ctx.is_main
    sampler = Skipping(trainer.sampler(run.train_data, shuffle=True))  # a mid-epoch resume skips batches
    loader = trainer.loader(trainer.augmented(run.train_data), sampler)
    start = time.monotonic() - progress.elapsed
    with contextlib.ExitStack() as stack:
        board, profiler = observers.open_observers(stack, run.maps, run.split, run.network, t, main)
        stack.enter_context(preemption.deferred())  # SIGTERM: checkpoint at the next optimizer step
        epochs = range(progress.epoch + 1, t.epochs)  # the overall bar counts a resumed run's epochs
        for epoch in run.ctx.reporter.iterate(epochs, t.epochs, f"{run.label} epochs", done=epochs.start):
            midway = _Midway(run, epoch, start, profiler)
            try:
                done = _epoch(run, loader, epoch, progress, midway)
            except StopRequested as stopped:
                trainer.gather()  # FSDP: every rank, before rank 0 writes
                preemption.save_in_epoch(run, progress, midway, stopped.position, len(loader))
                preemption.stop(f"SIGTERM in epoch {epoch + 1}")
            trainer.gather()
            if main:
                _save_epoch(run, done, progress, board, len(loader))
            trainer.release()  # FSDP: the gathered full state no longer held until the next epoch
            distributed.barrier(run.ctx)
            if resume.interrupt_requested(epoch, run.network):
                raise KeyboardInterrupt(f"{resume.INTERRUPT_ENV}={epoch}")
            if preemption.stop_requested(run.ctx):  # SIGTERM in the validation: the epoch's checkpoint
                preemption.stop(f"SIGTERM after epoch {epoch + 1}")
            if done.stop:
                if main:
                    run.ctx.reporter.info(
                        f"  early stopping: no validation loss decrease for {t.patience} epochs"
                    )
                return True
    return False


@dataclasses.dataclass
class _Midway:
    """Called after each training batch: the profiler's step, and train.evaluation_steps as ClinicaDL
    runs it: after the optimizer step of batch i, when i + 1 is a multiple of evaluation_steps, the
    train and validation sets are evaluated (eval mode) for a training.tsv row and TensorBoard points at
    that iteration. They decide nothing: best models and early stopping read the epoch's end only, and
    an evaluation draws no random number, so the weights are those of a training without them."""

    run: SplitRun
    epoch: int
    start: float  # as _epoch's
    profiler: observers.Profiler
    points: list = dataclasses.field(default_factory=list)  # (i, elapsed, train values, valid values)

    def __call__(self, i: int) -> None:
        preemption.signal_for_test(self.epoch, i, self.run.ctx.rank)
        self.profiler.step()
        every, run = self.run.train.evaluation_steps, self.run
        if not every or (i + 1) % run.trainer.accumulation_steps or (i + 1) % every:
            return
        train, valid = _evaluated(run, run.train_data), _evaluated(run, run.valid_data)
        run.trainer.net.train()
        self.points.append((i, time.monotonic() - self.start, train, valid))
        if run.ctx.is_main:
            run.ctx.reporter.info(
                f"  {run.label} epoch {self.epoch + 1} iteration {i}: loss {train['loss']:.4g}/"
                f"{valid['loss']:.4g} (train/valid)"
            )


def _evaluated(run: SplitRun, data: Dataset) -> dict[str, float]:
    """The metrics and loss of the network as it is now on `data` (eval mode, every rank)."""
    frame, loss = split_loss(run.trainer.evaluate(data))
    return {**frame_metrics(frame, run.trainer.task, run.n_classes), "loss": loss}


def _epoch(run: SplitRun, loader: DataLoader, epoch: int, progress: Progress, midway: _Midway) -> _Epoch:
    """Train and validate one epoch; `progress` takes its rows (train.evaluation_steps' first), the
    improved best values and the early-stopping count (`midway.start`: the monotonic time the training
    began, resumed time included)."""
    t, trainer, maps, split, start = run.train, run.trainer, run.maps, run.split, midway.start
    desc = f"{run.label} epoch {epoch + 1}/{t.epochs}"
    position = preemption.resumed_position(run, progress, midway)
    learning_rate = float(trainer.optimizer.param_groups[0]["lr"])  # a mid-epoch resume restored it
    stop = lambda: preemption.stop_requested(run.ctx)  # noqa: E731
    train_out, steps = trainer.train_epoch(loader, epoch, desc, midway, position, stop)
    if t.evaluation_steps and not midway.points and epoch == 0 and run.ctx.is_main:
        run.ctx.reporter.warn(
            f"train.evaluation_steps = {t.evaluation_steps}: no evaluation falls within an epoch of "
            f"{len(loader)} batches (accumulation_steps {trainer.accumulation_steps}); the model is "
            "evaluated at the end of each epoch only"
        )
    progress.rows.extend(log_row(epoch, i, elapsed, tr, va) for i, elapsed, tr, va in midway.points)
    train_frame, train_loss = split_loss(train_out)
    valid_frame, valid_loss = split_loss(trainer.evaluate(run.valid_data))
    check_finite(epoch, train_loss, valid_loss, t.learning_rate, maps.tmp_dir(split))
    trainer.end_epoch(valid_loss)  # the learning-rate scheduler's step, before the epoch's checkpoint
    train_values = {**frame_metrics(train_frame, trainer.task, run.n_classes), "loss": train_loss}
    valid_values = {**frame_metrics(valid_frame, trainer.task, run.n_classes), "loss": valid_loss}
    progress.elapsed = time.monotonic() - start
    progress.iteration += steps
    progress.rows.append(log_row(epoch, len(loader) - 1, progress.elapsed, train_values, valid_values))
    improved = [m for m in run.selection if is_improvement(m, _value(valid_values, m), progress.best.get(m))]
    for m in improved:
        progress.best[m], progress.best_epoch[m] = _value(valid_values, m), epoch
        run.best_valid[m] = (valid_frame, valid_loss)
    stop = early_stop(progress, valid_loss, t.patience, t.tolerance)
    progress.epoch = epoch
    return _Epoch(epoch, train_values, valid_values, improved, stop, tuple(midway.points), learning_rate)


def _save_epoch(
    run: SplitRun, done: _Epoch, progress: Progress, board: observers.Observer, batches: int
) -> None:
    """Rank 0 after an epoch: the improved best models and with train.save_all_models the epoch's
    (staged in tmp/), training.tsv, TensorBoard and the trackers (the train values with the epoch's
    learning rate), the resume checkpoint and the progress line."""
    trainer, maps, split, epoch, network = run.trainer, run.maps, run.split, done.index, run.network
    name = trainer.net.architecture_name
    for m in done.improved:
        save_model(maps.staged_best_model(split, m, network), trainer.state_dict(), epoch, name)
    if run.train.save_all_models:  # ClinicaDL's all_models/model_epoch_<e>.pth.tar
        save_model(maps.staged_epoch_model(split, epoch, network), trainer.state_dict(), epoch, name)
    outputs.write_training_tsv(maps, split, progress.rows, network)
    for i, _, train, valid in done.midway:  # train.evaluation_steps' points, at their iteration
        board.log("train", train, epoch * batches + i)
        board.log("validation", valid, epoch * batches + i)
    step = epoch * batches + batches - 1  # ClinicaDL's global step: batches so far
    board.log("train", {**done.train, observers.LEARNING_RATE: done.learning_rate}, step)
    board.log("validation", done.valid, step)
    resume.save_epoch(maps, split, trainer, progress, run.key, network)
    who = "" if network is None else f"network-{network} "
    run.ctx.reporter.info(
        _summary(epoch, run.train.epochs, done.train, done.valid, run.selection, done.improved, who)
    )


def _summary(epoch, epochs, train, valid, selection, improved, who: str = "") -> str:
    shown = [m for m in dict.fromkeys(["loss", *selection])]
    parts = [f"{m} {train.get(m, math.nan):.4g}/{valid.get(m, math.nan):.4g}" for m in shown]
    star = f"  best: {', '.join(improved)}" if improved else ""
    return f"  {who}epoch {epoch + 1}/{epochs} (train/valid) " + ", ".join(parts) + star


def _final_results(run: SplitRun) -> None:
    """Train and validation results of each selection metric's best model, and the autoencoder
    reconstructions (`visualization`) from the best-loss model. Everything is written to tmp/
    (`staged_results`), published with the models."""
    out = run.maps.staged_results(run.split)
    train_by_epoch: dict[int, tuple] = {}  # metrics sharing a best epoch share one train-set pass
    for metric in run.selection:
        _best_model_results(run, metric, out, train_by_epoch)
    model, net = run.task.model, run.trainer.net
    if model.task == "reconstruction" and model.train.visualization and model.mode == "image":
        metric = "loss" if "loss" in run.selection else run.selection[0]
        net.load_state_dict(load_model_state(outputs.trained_model(run.maps, run.split, metric))[0])
        for phase, data in (("train", run.train_data), ("validation", run.valid_data)):
            outputs.write_reconstructions(out, run.split, phase, net, data, run.ctx.settings.device)


def _best_model_results(
    run: SplitRun, metric: str, out: MapsLayout, train_by_epoch: dict[int, tuple]
) -> None:
    """The validation and train results of the best-`metric` model. The validation predictions of a
    best epoch were made by the same weights in the epoch loop and are re-used (after a resume, the
    epochs before it are not in memory: then they are recomputed)."""
    net, model, maps, split = run.trainer.net, run.task.model, run.maps, run.split
    threshold = model.selection_threshold
    model_file = outputs.trained_model(maps, split, metric)
    if not model_file.is_file():
        raise NeuroexecError(
            f"split {split}: no best-{metric} model was saved: the validation {metric} was never a "
            "number; choose other train.selection_metrics in the spec and apply again"
        )
    state, epoch, _ = load_model_state(model_file)
    net.load_state_dict(state)
    # validation first: the soft vote of the train results reads its weights
    for group, data in (("validation", run.valid_data), ("train", run.train_data)):
        if group == "validation" and metric in run.best_valid:
            frame, loss = run.best_valid[metric]
        elif group == "train" and epoch in train_by_epoch:
            frame, loss = train_by_epoch[epoch]
        else:
            frame, loss = predict_frames(
                net, data, model.task, run.trainer.settings, run.label_code, model_file=model_file,
                loss=model.train.loss,
            )  # fmt: skip
            if group == "train":
                train_by_epoch[epoch] = (frame, loss)
        write_results(
            ResultSet(out, split, metric, group, model.task, model.mode, run.n_classes, True, threshold),
            frame,
            loss,
            description=f"Prediction of the {group} group of split {split} with the best-{metric} model "
            f"(epoch {epoch}) of {maps.root.name}.",
        )
