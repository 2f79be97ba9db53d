"""`model.M.train[split-i]`: train one split of a model (the loop lives in neuroexec/training/)."""

from __future__ import annotations

from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.maps.info import best_model_file
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.registry import Step, StepKind, register
from neuroexec.spec.model import Spec
from neuroexec.steps.common import dataset_deps, split_id, train_id, trained_models
from neuroexec.training import resume
from neuroexec.training.task import TrainTask


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
    network = resume.resumable_network(maps, task.split, key)  # of a multi-network model
    if network is not None and maps.staged_network_done(task.split, network).is_file():
        return f"interrupted after network-{network} finished: apply goes on with the networks left"
    if epoch is not None:
        where = "" if network is None else f" in network-{network}"
        return f"interrupted{where} after epoch {epoch + 1} of {task.model.train.epochs}: apply resumes there"
    epoch = resume.discarded_epoch(maps, task.split, key)
    if epoch is not None:
        return (
            f"the training interrupted after epoch {epoch + 1} in {maps.tmp_dir(task.split)} was made with "
            "other settings or data: apply discards it and trains the split from the start"
        )
    return None


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
    )
)
