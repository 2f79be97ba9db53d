"""Multi-network models (`multi_network = true`): one network per part of the image (patch, region or
slice), trained inside the split's one train step as ClinicaDL 1.6.1 trains them (`_train_multi`).

Networks 0..n-1 train one after the other, network k on part k of every image only (datasets with
`part_index=k`), each from its own seed stream `network_seed(seed, split, k)` (initial weights,
dropout, shuffle, loaders): a network never depends on the ones before it in the same process, so a
resumed run and any worker count give the same models. A finished network's best models, log and
events wait in `tmp/network-<k>/` and `tmp/best-<m>/` with its record (`finished.json`, under the
resume key); an apply after an interruption skips the finished networks and resumes the interrupted
one after its last epoch. When the last one is done, the train and validation results of all networks
are written (`<mode>`-level rows of every network, one metrics row per network with `<mode>_id`, the
image level by soft voting) and the whole split is published at once (`outputs.publish_training`).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from neuroexec import atomic, distributed
from neuroexec.context import RunContext
from neuroexec.errors import NeuroexecError
from neuroexec.evaluation import ResultSet, part_id, predict_frames, write_results
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import canonical_metric
from neuroexec.training import outputs, resume, setup
from neuroexec.training.epoch_rules import determinism
from neuroexec.training.run import SplitRun, make_trainer, run_epochs, split_datasets, start_run
from neuroexec.training.task import TrainTask, network_names


def network_seed(seed: int, split: int, network: int) -> int:
    """The seed of network `network` of split `split` (31 bits, as torch, numpy and python take it).

    >>> len({network_seed(0, 0, 0), network_seed(0, 0, 1), network_seed(0, 1, 0), network_seed(1, 0, 0)})
    4
    """
    digest = hashlib.sha256(f"neuroexec/network/{seed}/{split}/{network}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


@dataclasses.dataclass(frozen=True)
class _Networks:
    """What the networks of one split share."""

    task: TrainTask
    ctx: RunContext  # with the step's settings
    selection: list[str]
    label_code: dict[str, int] | None
    count: int
    input_size: list[int]  # network 0's, which maps.json records (ClinicaDL's single input_size)
    key: str
    resuming: bool  # an interrupted run of this key is continued

    @property
    def n_classes(self) -> int:
        return len(self.label_code) if self.label_code else 0


def count_parts(task: TrainTask, label_code: dict[str, int] | None) -> tuple[int, list[int]]:
    """(parts per image of the model's mode: the networks to train, network 0's input size); refused
    below 2 parts, as ClinicaDL does. Counted on network 0's dataset (regions by name: boxes of different
    shapes cannot be read by one dataset of all regions, but each network reads its own)."""
    model = task.model
    train_frame, _ = task.split_frames()
    first = setup.make_dataset(model, task.dataset, train_frame, label_code, part_index=0)
    count = int(first.parts_per_image)
    if count < 2:
        raise NeuroexecError(
            f"models.{model.name}: multi_network = true cannot train a multi-network model with only "
            f"{count} {model.mode} per image; choose settings that give several parts (e.g. a smaller "
            "patch), or set multi_network = false"
        )
    return count, list(first.input_size)


def train_networks(task: TrainTask, ctx: RunContext) -> dict:
    """Train split `task.split` of a multi-network model (the train step's run, as
    `training/run.train_split` for one network); every rank calls it, rank 0 writes. Returns the step
    record's summary: one entry per network. With `task.network` set, trains that network only (staged,
    not published: a later apply of the split publishes it)."""
    maps, split, only = task.maps, task.split, task.network
    ctx = ctx.with_settings(task.model.compute)  # device, kernels, amp, loader: resolved once for the step
    setup.check_compile(task.model.compute, ctx.settings.device)
    selection = list(dict.fromkeys(canonical_metric(m) for m in task.model.train.selection_metrics))
    label_code = setup.label_code_of(task.model, maps)
    count, input_size = count_parts(task, label_code)
    if only is not None and not 0 <= only < count:
        raise NeuroexecError(
            f"models.{task.model.name}: network-{only} does not exist: the model has {count} networks "
            f"(network-0 to network-{count - 1})"
        )
    key = task.resume_key(ctx.upstream)
    _check_resumable(task, key, count)
    done = resume.finished_networks(maps, split, key, count)
    resuming = bool(done) or bool(resume.interrupted_networks(maps, split, key, count))
    if ctx.is_main and not resuming and only is None:  # only the split's own run discards the split
        if any(maps.resume_state(split, k).is_file() for k in range(count)):
            ctx.reporter.info(
                f"  split-{split}: the interrupted run cannot be resumed (other settings, data or "
                "transfer source, or incomplete checkpoints); training starts over"
            )
        resume.clear(maps, split)  # the finished training's files stay until this one finishes
    # a network run never starts the split's log afresh: another network's run may be writing it
    nets = _Networks(task, ctx, selection, label_code, count, input_size, key, resuming or only is not None)
    if only is not None:
        return _train_only(nets, only, done)
    return _train_split(nets, done)


def _check_resumable(task: TrainTask, key: str, count: int) -> None:
    """Stop on a damaged interrupted network this run would resume (starting over would silently
    discard it), after moving an earlier version's checkpoint files into their network's folder."""
    maps, split, only = task.maps, task.split, task.network
    resume.adopt_legacy(maps, split, only)
    for k in range(count) if only is None else [only]:
        why = resume.damage(maps, split, key, k)
        if why is not None:
            raise resume.damaged_error(maps, split, why, k)


def _train_only(nets: _Networks, k: int, done: dict[int, dict]) -> dict:
    """`--target 'model.M.train[split-i,network-k]'`: network k, staged in tmp/ for the split's apply."""
    task, ctx = nets.task, nets.ctx
    later = task.published_later
    if k in done:
        if ctx.is_main:
            ctx.reporter.info(f"  split-{task.split}: network-{k} already trained; {later}")
        return {"network": k, "already_trained": True, **done[k]}
    with determinism(task.model.compute.deterministic, task.model.compute.compensation):
        _, summary = _train_network(nets, k)
    if ctx.is_main:
        ctx.reporter.info(f"  split-{task.split}: network-{k} trained and staged; {later}")
    return {"network": k, **summary}


def _train_split(nets: _Networks, done: dict[int, dict]) -> dict:
    """The split's own run: the networks not finished yet, then the results of all and the publication."""
    task, ctx = nets.task, nets.ctx
    maps, split, t = task.maps, task.split, task.model.train
    summaries, runs = dict(done), {}
    if ctx.is_main and done:
        ctx.reporter.info(f"  split-{split}: {network_names(done)} already trained")
    with determinism(task.model.compute.deterministic, task.model.compute.compensation):
        for k in range(nets.count):
            if k not in done:
                runs[k], summaries[k] = _train_network(nets, k, fresh=not nets.resuming and not runs)
        distributed.barrier(ctx)
        if ctx.is_main:
            parts = {k: _Part.of(nets, k, runs.get(k)) for k in range(nets.count)}
            if not runs:  # every network was trained by its own apply: this run only publishes
                _run_files(nets, parts[0].net, f"split-{split}: the {nets.count} networks are trained")
            _final_results(nets, parts)
            outputs.publish_training(
                maps, split, nets.selection, t.tensorboard, nets.count, all_models=t.save_all_models,
                emissions=t.calculate_emissions,
            )  # fmt: skip
            resume.clear(maps, split)
    return {
        "networks": [summaries[k] for k in range(nets.count)],
        "resumed_at_network": min(set(range(nets.count)) - set(done), default=None)
        if nets.resuming
        else None,
    }


def _run_files(nets: _Networks, net: nn.Module, event: str, fresh: bool = False) -> None:
    """The staged maps.json, environment.txt and information.log with `event`, under the MAPS's
    information lock: the runs of two networks of one split may write them at the same moment.
    `fresh`: the first network of a split trained from nothing starts the log anew."""
    task = nets.task
    output_size = setup.output_size_of(task.model, nets.label_code)
    parameters = outputs.maps_parameters(
        task.model,
        task.dataset,
        nets.label_code,
        nets.input_size,
        output_size,
        task.transfer_maps,
        nets.count,
    )
    with atomic.exclusive(task.maps.information_lock):
        outputs.write_run_files(task.maps, parameters, net, task.split, None if fresh else 0, event=event)


def _event(nets: _Networks, line: str) -> None:
    with atomic.exclusive(nets.task.maps.information_lock):
        outputs.append_information(nets.task.maps, nets.task.split, line)


def _train_network(nets: _Networks, k: int, fresh: bool = False) -> tuple[SplitRun, dict]:
    """Network k on part k, from its own seed; resumed after its last epoch when it was interrupted.
    `fresh`: the first network of a split trained from nothing (it starts the staged log)."""
    task, ctx, split = network_transfer(nets.task, k), nets.ctx, nets.task.split
    model, maps, main = task.model, task.maps, ctx.is_main
    seed = network_seed(model.compute.seed, split, k)
    train_data, valid_data = split_datasets(task, nets.label_code, ctx, part_index=k)
    input_size = list(train_data.input_size)
    output_size = setup.output_size_of(model, nets.label_code)
    c = model.compute
    c = dataclasses.replace(c, seed=seed, channels_last=setup.channels_last_for(c, input_size))
    resume.seed_everything(seed)
    trainer = make_trainer(task, c, input_size, output_size, ctx)
    run = SplitRun(
        task, ctx, maps, trainer, train_data, valid_data, nets.label_code, nets.selection, nets.key, k
    )
    progress, resumed_from = start_run(run)
    if main:
        started = (
            "training started" if resumed_from is None else f"training resumed after epoch {resumed_from}"
        )
        _run_files(nets, trainer.net, f"split-{split} network-{k}: {started}", fresh)
        ctx.reporter.info(f"  split-{split}: network-{k} of {nets.count} (on {model.mode} part {k})")
    stopped = run_epochs(run, progress)
    distributed.barrier(ctx)
    summary = {
        "epochs": progress.epoch + 1,
        "resumed_after_epoch": resumed_from,
        "stopped_early": stopped,
        "best": {
            m: {"value": progress.best.get(m), "epoch": progress.best_epoch.get(m)} for m in nets.selection
        },
    }
    if main:
        finished = f"training finished after {progress.epoch + 1} epochs" + (
            " (early stopping)" if stopped else ""
        )
        _event(nets, f"split-{split} network-{k}: {finished}")
        resume.mark_network_done(maps, split, k, nets.key, summary)
    return run, summary


def network_transfer(task: TrainTask, k: int) -> TrainTask:
    """The task of network k: transferring from network k of a multi-network source MAPS, as ClinicaDL
    does (`get_state_dict(network=k)`); from a single-network source every network starts from its model."""
    if task.transfer_from is None or task.transfer_maps is None or task.model.transfer is None:
        return task
    try:
        multi = read_maps_info(task.transfer_maps).multi_network
    except NeuroexecError:
        return task
    if not multi:
        return task
    source = MapsLayout(task.transfer_maps).best_model(task.split, task.model.transfer.selection, k)
    return dataclasses.replace(task, transfer_from=source)


def _final_results(nets: _Networks, parts: dict[int, _Part]) -> None:
    """For each selection metric, the validation then train results of all networks (each network's
    best model on its part), written to tmp/ (`staged_results`) and published with the models."""
    task, split = nets.task, nets.task.split
    maps, model = task.maps, task.model
    out, threshold = maps.staged_results(split), model.selection_threshold
    for metric in nets.selection:
        frames: dict[str, list[pd.DataFrame]] = {"validation": [], "train": []}
        losses: dict[str, dict[int, float]] = {"validation": {}, "train": {}}
        for k, part in parts.items():
            for group, (frame, loss) in part.results(nets, metric).items():
                frames[group].append(frame)
                losses[group][part_id(frame, model.mode, k)] = loss
        for group in ("validation", "train"):  # validation first: the train soft vote reads its weights
            write_results(
                ResultSet(out, split, metric, group, model.task, model.mode, nets.n_classes, True, threshold),
                pd.concat(frames[group], ignore_index=True),
                None,
                description=f"Prediction of the {group} group of split {split} with the best-{metric} "
                f"models of the {nets.count} networks (network-0 to network-{nets.count - 1}) of "
                f"{maps.root.name}, each on its {model.mode}.",
                part_losses=losses[group],
            )


@dataclasses.dataclass
class _Part:
    """Network k's network, data and the validation predictions its training kept in memory."""

    k: int
    net: nn.Module
    train_data: Dataset
    valid_data: Dataset
    best_valid: dict[str, tuple]
    train_by_epoch: dict[int, tuple] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, nets: _Networks, k: int, run: SplitRun | None) -> _Part:
        """From the run that trained it, or, for a network trained by an earlier (interrupted) apply,
        a fresh network and datasets."""
        if run is not None:
            return cls(k, run.trainer.net, run.train_data, run.valid_data, run.best_valid)
        task = nets.task
        train_data, valid_data = split_datasets(task, nets.label_code, nets.ctx, part_index=k)
        output_size = setup.output_size_of(task.model, nets.label_code)
        net = setup.build(task.model, list(train_data.input_size), output_size).to(nets.ctx.settings.device)
        return cls(k, net, train_data, valid_data, {})

    def results(self, nets: _Networks, metric: str) -> dict[str, tuple[pd.DataFrame, float]]:
        """(frame, loss) of the validation and train groups by this network's best-`metric` model."""
        task, split = nets.task, nets.task.split
        model_file = outputs.trained_model(task.maps, split, metric, self.k)
        if not model_file.is_file():
            raise NeuroexecError(
                f"split {split} network-{self.k}: no best-{metric} model was saved: the validation "
                f"{metric} was never a number; choose other train.selection_metrics in the spec and apply again"
            )
        state, epoch, _ = load_model_state(model_file)
        self.net.load_state_dict(state)
        found: dict[str, tuple[pd.DataFrame, float]] = {}
        for group, data in (("validation", self.valid_data), ("train", self.train_data)):
            if group == "validation" and metric in self.best_valid:
                found[group] = self.best_valid[metric]
            elif group == "train" and epoch in self.train_by_epoch:
                found[group] = self.train_by_epoch[epoch]
            else:
                found[group] = predict_frames(
                    self.net, data, task.model.task, nets.ctx.settings, nets.label_code,
                    model_file=model_file, loss=task.model.train.loss,
                )  # fmt: skip
                if group == "train":
                    self.train_by_epoch[epoch] = found[group]
        return found
