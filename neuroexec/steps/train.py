"""`model.M.train[split-i]`: train one split of a model (the loop lives in neuroexec/training/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.maps.info import best_model_file
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Dataset, Model, Spec, as_config, canonical_metric
from neuroexec.steps.common import dataset_deps, result_compute, split_id, train_id, trained_models
from neuroexec.steps.registry import Step, StepKind, register


@dataclass(frozen=True)
class TrainTask:
    model: Model
    dataset: Dataset
    split: int
    transfer_from: Path | None  # the source model file (another model's best, or a MAPS's)
    transfer_maps: Path | None  # the source MAPS folder (its maps.json says autoencoder or CNN)


def config_of(model: Model) -> dict:
    """The training config slice: everything that changes the trained weights."""
    return {
        "dataset": model.dataset,
        "task": model.task,
        "mode": model.mode,
        "patch": as_config(model.patch) if model.patch else None,
        "label": model.label,
        "diagnoses": list(model.diagnoses or []),
        "architecture": model.architecture,
        "dropout": model.dropout,
        "transfer": as_config(model.transfer) if model.transfer else None,
        "train": as_config(model.train),
        "compute": result_compute(model.compute),
    }


def expand(spec: Spec) -> list[Step]:
    steps = []
    for model in trained_models(spec):
        if model.dataset not in spec.datasets:
            continue
        for split in model.split.indices:
            deps = [split_id(model.name), *dataset_deps(spec, model.dataset, model.extract_mode)]
            inputs: tuple[Path, ...] = ()
            transfer_from = transfer_maps = None
            t = model.transfer
            if t is not None and t.model is not None:
                source = spec.models[t.model]
                transfer_maps = source.maps
                transfer_from = best_model_file(source.maps, split, t.selection)
                if not source.pretrained:
                    deps.append(train_id(t.model, split))
                else:
                    inputs = (transfer_from,)
            elif t is not None and t.maps is not None:
                transfer_maps = t.maps
                transfer_from = best_model_file(t.maps, split, t.selection)
                inputs = (transfer_from,)
            task = TrainTask(model, spec.datasets[model.dataset], split, transfer_from, transfer_maps)
            steps.append(
                Step(
                    id=train_id(model.name, split),
                    kind="train",
                    home=model.maps,
                    config=config_of(model),
                    deps=tuple(deps),
                    inputs=inputs,
                    payload=task,
                    lock_scope=f"split-{split}",
                )
            )
    return steps


def resume_key(task: TrainTask, upstream: Mapping[str, str]) -> str:
    """The key an interrupted run of `task` is resumed by (see training.resume.run_key)."""
    from neuroexec.training import resume

    inputs = [task.transfer_from] if task.transfer_from is not None else []
    return resume.run_key(config_of(task.model), task.split, upstream, inputs)


def resumes(step: Step, upstream: dict[str, str]) -> str | None:
    """For plans: where apply would resume an interrupted training of this split, that the interrupted
    run's files are damaged (apply then stops and says to delete tmp/), or that apply discards an
    interrupted run made with other settings."""
    from neuroexec.training import resume

    task: TrainTask = step.payload
    maps = MapsLayout(task.model.maps)
    key = resume_key(task, upstream)
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


def run(step: Step, ctx: RunContext) -> dict:
    from neuroexec.training.run import train_split

    return train_split(step.payload, ctx)


def outputs(step: Step) -> list[Path]:
    """maps.json, the training log and the best model of each selection metric."""
    task: TrainTask = step.payload
    maps = MapsLayout(task.model.maps)
    metrics = dict.fromkeys(canonical_metric(m) for m in task.model.train.selection_metrics)
    return [maps.maps_json, maps.training_tsv(task.split)] + [maps.best_model(task.split, m) for m in metrics]


register(StepKind(name="train", expand=expand, run=run, distributed=True, outputs=outputs, resumes=resumes))
