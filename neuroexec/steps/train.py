"""`model.M.train[split-i]`: train one split of a model (the loop lives in neuroexec/training/)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.data.network_count import planned_count
from neuroexec.errors import InputError, NoParts
from neuroexec.globs import target_pattern
from neuroexec.maps.info import best_model_file
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import Spec
from neuroexec.steps.common import dataset_deps, split_id, train_id, trained_models
from neuroexec.training import resume
from neuroexec.training.task import TrainTask, network_names


def expand(spec: Spec) -> list[Step]:
    steps = []
    for model in trained_models(spec):
        if model.dataset not in spec.datasets:
            continue
        for split in model.split.indices:
            deps = [split_id(model.name), *dataset_deps(spec, model.dataset, model.extract_mode)]
            transfer_from = transfer_maps = None
            trained = False
            t = model.transfer
            if t is not None and t.model is not None:
                source = spec.models[t.model]
                transfer_maps = source.maps
                transfer_from = best_model_file(source.maps, split, t.selection)
                trained = not source.pretrained
                if trained:
                    deps.append(train_id(t.model, split))
            elif t is not None and t.maps is not None:
                transfer_maps = t.maps
                transfer_from = best_model_file(t.maps, split, t.selection)
            task = TrainTask(
                model,
                spec.datasets[model.dataset],
                split,
                transfer_from,
                transfer_maps,
                transfer_trained=trained,
            )
            steps.append(
                Step(
                    id=train_id(model.name, split),
                    kind="train",
                    home=model.maps,
                    config=task.config(),
                    deps=tuple(deps),
                    inputs=task.inputs(),
                    payload=task,
                    lock_scope=MapsLayout.split_scope(split),
                    compute=model.compute,
                )
            )
    return steps


def resumes(step: Step, upstream: dict[str, str] | None) -> str | None:
    """For plans: where apply would resume an interrupted training of this split, that the interrupted
    run's files are damaged (apply then stops and says to delete tmp/), or that apply discards an
    interrupted run made with other settings. `upstream` is None when steps it depends on run first."""
    task: TrainTask = step.payload
    maps = task.maps
    if task.model.multi_network:
        return network_resumes(task, upstream)
    if upstream is None:  # steps it depends on run first: their new results decide
        epoch = resume.discarded_epoch(maps, task.split, key=None)
        if epoch is None:
            return None
        return (
            f"a training interrupted after epoch {epoch + 1} waits in {maps.tmp_dir(task.split)}: apply "
            "discards it and trains the split from the start, unless the steps above give the results it "
            "was started with"
        )
    key = task.resume_key(upstream)
    why = resume.damage(maps, task.split, key)
    if why is not None:
        return (
            f"interrupted, but {why}: apply stops there; delete {maps.tmp_dir(task.split)} to train "
            "the split from the start"
        )
    epoch = resume.resumable_epoch(maps, task.split, key)
    if epoch is not None:
        return f"interrupted after epoch {epoch + 1} of {task.model.train.epochs}: apply resumes there"
    epoch = resume.discarded_epoch(maps, task.split, key)
    if epoch is not None:
        return (
            f"the training interrupted after epoch {epoch + 1} in {maps.tmp_dir(task.split)} was made with "
            "other settings or data: apply discards it and trains the split from the start"
        )
    return None


def network_resumes(task: TrainTask, upstream: dict[str, str] | None) -> str | None:
    """`resumes` of a multi-network model: which networks are finished or interrupted in tmp/ (each
    network keeps its own files there: they may have been trained by `--target` runs of their own), and
    which apply discards (finished or interrupted under other settings or data). An earlier version's
    interrupted run, kept in tmp/ itself, counts for its network (read, not moved)."""
    maps, split, count = task.maps, task.split, planned_count(task.model, task.dataset) or 0
    slot = {k: resume.network_slot(maps, split, k) for k in range(count)}
    if upstream is None:
        stale = [k for k in range(count) if resume.discarded_epoch(maps, split, None, slot[k]) is not None]
        if not stale and not any(maps.staged_network_done(split, k).is_file() for k in range(count)):
            return None
        return (
            f"networks trained or interrupted wait in {maps.tmp_dir(split)}: apply keeps them if the steps "
            "above give the results they were started with, else trains the split from the start"
        )
    key = task.resume_key(upstream)
    for k in range(count):
        why = resume.damage(maps, split, key, slot[k])
        if why is not None:
            folder = maps.tmp_dir(split) if slot[k] is None else maps.resume_state(split, k).parent
            return (
                f"interrupted in network-{k}, but {why}: apply stops there; delete {folder} to train the "
                "network from the start"
            )
    done = resume.finished_networks(maps, split, key, count)
    interrupted = resume.interrupted_networks(maps, split, key, count)
    dropped = _discarded(task, key, count, set(done) | set(interrupted))
    epochs = task.model.train.epochs
    said = [f"interrupted in network-{k} after epoch {e + 1} of {epochs}" for k, e in interrupted.items()]
    if said:
        first = min(interrupted)
        extra = (
            ""
            if set(done) == set(range(first))
            else f" ({network_names(done) or 'none'} of {count} finished)"
        )
        return "; ".join(said) + f": apply resumes there{extra}" + (f"; {dropped}" if dropped else "")
    if done:
        left = "publishes the split" if len(done) == count else "trains the others and publishes the split"
        return f"{network_names(done)} of {count} finished: apply {left}" + (
            f"; {dropped}" if dropped else ""
        )
    return dropped


def _discarded(task: TrainTask, key: str, count: int, kept: set[int]) -> str | None:
    """The plan's words on the networks apply discards and retrains: finished (`finished.json`) or
    interrupted under another key than `key`; None without any."""
    maps, split = task.maps, task.split
    finished = set(resume.stale_networks(maps, split, key, count)) - kept
    interrupted = {
        k
        for k in range(count)
        if k not in kept | finished
        and resume.discarded_epoch(maps, split, key, resume.network_slot(maps, split, k)) is not None
    }
    said = [
        f"{network_names(ks)} {how}"
        for ks, how in ((finished, "finished"), (interrupted, "interrupted"))
        if ks
    ]
    if not said:
        return None
    them = "it" if len(finished | interrupted) == 1 else "them"
    return f"{' and '.join(said)} with other settings or data: apply discards and retrains {them}"


def parts(step: Step, glob: str, upstream: dict[str, str] | None) -> list[tuple[Step, str, bool]]:
    """`--target 'model.M.train[split-i,network-k]'` (`glob`: `network-k`, wildcards allowed): the step
    narrowed to each network it names, as (step, the plan's reason, whether that network is already
    finished under the key `upstream` gives). An InputError for a model of one network or no such network."""
    task: TrainTask = step.payload
    model, split = task.model, task.split
    wanted = f"--target '{step.id[:-1]},{glob}]'"
    if not model.multi_network:
        raise NoParts(
            None, f"{wanted}: models.{model.name} has one network (multi_network is not set); target "
            f"{step.id} instead",
        )  # fmt: skip
    count = planned_count(model, task.dataset)
    if count is None:
        raise InputError(
            None, f"{wanted}: the number of networks of models.{model.name} is not known before its images "
            f"exist; apply the data steps first (--target 'dataset.{model.dataset}.*')",
        )  # fmt: skip
    pattern = target_pattern(glob)
    found = [k for k in range(count) if pattern.fullmatch(f"network-{k}")]
    if not found:
        raise InputError(
            None, f"{wanted}: models.{model.name} has {count} networks (network-0 to network-{count - 1})"
        )
    done = (
        resume.finished_networks(task.maps, split, task.resume_key(upstream), count)
        if upstream is not None
        else {}
    )
    later = task.published_later
    return [
        (
            replace(step, payload=replace(task, network=k), lock_scope=MapsLayout.network_scope(split, k)),
            f"network-{k} is trained: {later}" if k in done else f"trains network-{k} only; {later}",
            k in done,
        )
        for k in found
    ]


def notes(step: Step) -> list[str]:
    """What a retraining replaces when it finishes: the last finished training's log, best models and
    TensorBoard events of this split stay in place until then (never removed up front)."""
    task: TrainTask = step.payload
    maps = task.maps
    if not (maps.training_tsv(task.split).is_file() or maps.training_tsv(task.split, 0).is_file()):
        return []
    networks = [None, *range(len(list(maps.training_logs(task.split).glob("network-*"))))]
    folders = [
        maps.tensorboard_dir(task.split, phase, k) for k in networks for phase in ("train", "validation")
    ]
    events = [f for folder in folders if folder.is_dir() for f in folder.iterdir() if f.is_file()]
    board = f" and {len(events)} TensorBoard event file(s)" if events else ""
    every = maps.all_models_dir(task.split)  # train.save_all_models: replaced, or removed without it
    kept = len(list(every.iterdir())) if every.is_dir() else 0
    epochs = f", {kept} models of every epoch ({every.name}/)" if kept else ""
    return [
        f"when it finishes, it replaces the finished training of {maps.split_dir(task.split).name}: its "
        f"training log, best models{epochs}{board} (kept until then)"
    ]


def run(step: Step, ctx: RunContext) -> dict:
    task: TrainTask = step.payload
    if task.model.multi_network:  # one network per part (training/networks.py)
        from neuroexec.training.networks import train_networks

        return train_networks(task, ctx)
    from neuroexec.training.run import train_split

    return train_split(task, ctx)


def outputs(step: Step) -> list[Path]:
    task: TrainTask = step.payload
    return task.outputs()


def check(step: Step) -> str | None:
    """Plan-time refusal of a part model the images cannot feed: discarded slices that leave none of the
    axis, patches larger than the images, one network per part with a single part; a label column the
    participants lack, an architecture that does not fit the planned inputs (training/network_check.py)."""
    from neuroexec.data.patch_extract import patch_refusal
    from neuroexec.data.slice_extract import discarded_refusal
    from neuroexec.training.network_check import architecture_refusal

    task: TrainTask = step.payload
    model, ds = task.model, task.dataset
    return (
        discarded_refusal(model, ds)
        or patch_refusal(model, ds)
        or data_refusal(model, ds)
        or architecture_refusal(model, ds)
    )


def data_refusal(model, ds) -> str | None:
    """size_reduction_factor outside image mode or on images too small for its box; augmentations the
    items cannot take (data/size_reduction.py, data/augmentation.py)."""
    from neuroexec.data.augmentation import augmentation_refusal
    from neuroexec.data.size_reduction import size_reduction_refusal
    from neuroexec.data.slice_extract import planned_image_shape

    if model.size_reduction_factor is None and not model.train.data_augmentation:
        return None
    shape = planned_image_shape(ds)
    return size_reduction_refusal(model, shape) or augmentation_refusal(model, shape)


register(
    StepKind(
        name="train",
        expand=expand,
        run=run,
        check=check,
        distributed=True,
        outputs=outputs,
        resumes=resumes,
        notes=notes,
        parts=parts,
    )
)
