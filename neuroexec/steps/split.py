"""`model.M.split`: read the training participants, check their images, split them at participant level
and record the splits in the MAPS as ClinicaDL does (groups/train+validation.tsv, groups/train|validation/
split-<i>/data.tsv), so the training participants are known later (predict's leakage check). The tables
are written by neuroexec/data/split_tables.py from the step's task (data/tasks.py: SplitTask)."""

from __future__ import annotations

from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.data.split_tables import write_split_tables
from neuroexec.data.tasks import SplitTask
from neuroexec.plan.ownership import maps_refusal, maps_replaced
from neuroexec.plan.registry import Removal, Step, StepKind, register
from neuroexec.spec.model import Spec
from neuroexec.steps.common import dataset_deps, split_id, trained_models


def expand(spec: Spec) -> list[Step]:
    steps = []
    for model in trained_models(spec):
        if model.dataset not in spec.datasets:
            continue
        task = SplitTask(model, spec.datasets[model.dataset])
        steps.append(
            Step(
                id=split_id(model.name),
                kind="split",
                home=model.maps,
                config=task.config(),
                deps=dataset_deps(spec, model.dataset),
                inputs=task.inputs(),
                payload=task,
            )
        )
    return steps


def run(step: Step, ctx: RunContext) -> dict:
    task: SplitTask = step.payload
    return write_split_tables(task)


def outputs(step: Step) -> list[Path]:
    task: SplitTask = step.payload
    return task.outputs()


def check(step: Step) -> str | None:
    """The first step writing into a trained model's MAPS: refused when the folder is not the model's
    (plan/ownership.py); the model's other steps in that MAPS depend on it, so they are refused too."""
    model = step.payload.model
    return maps_refusal(model.maps, model.name, step.record_key, model.overwrite)


def removes(step: Step) -> list[Removal]:
    """With `overwrite = true`, a MAPS neuroexec did not train for this model is replaced: all of it."""
    model = step.payload.model
    if not model.overwrite:
        return []
    replaced = maps_replaced(model.maps, model.name, step.record_key)
    return [Removal(f"the MAPS {model.maps} replaced by models.{model.name}", replaced)] if replaced else []


register(StepKind(name="split", expand=expand, run=run, check=check, outputs=outputs, removes=removes))
