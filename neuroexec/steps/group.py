"""Data groups. `group.G.define[M]` records a group's data in model M's MAPS (groups/<G>/maps.json and
data.tsv) after the leakage check; the seeds' consistency rule is enforced at plan time: a group that
exists in the MAPS with other data (another CAPS, other sessions or labels) is refused unless
`overwrite = true`, which replaces it; what that removes is planned (`removes`, group_record.py). Also expands the per-result steps shared by predict, save-tensors and
interpret (the `GroupTask` payload, neuroexec/inference/task.py)."""

from __future__ import annotations

import re
from pathlib import Path

from neuroexec import atomic
from neuroexec.context import RunContext
from neuroexec.data.tasks import GroupDefineTask, dataset_frame, leak_check
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.inference.task import GroupTask
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.registry import Removal, Step, StepKind, register
from neuroexec.spec.model import Group, Model, Spec
from neuroexec.steps.common import dataset_deps, group_id, split_id, train_id
from neuroexec.steps.group_record import (
    kept_stale,
    record,
    replaced_results,
    stale_results,
    why_redefined,
)


def expand(spec: Spec) -> list[Step]:
    steps = []
    for group in spec.groups.values():
        if group.dataset is None:
            continue  # the training groups are written by the split step
        ds = spec.datasets[group.dataset]
        for name in group.models:
            model = spec.models[name]
            deps = list(dataset_deps(spec, group.dataset))
            if not model.pretrained:
                deps.append(split_id(name))
            task = GroupDefineTask(group, model, ds)
            steps.append(
                Step(
                    id=group_id(group.name, name),
                    kind="group",
                    home=model.maps,
                    config=task.config(),
                    deps=tuple(deps),
                    inputs=task.inputs(),
                    payload=task,
                )
            )
    return steps


def result_steps(spec: Spec, kind: str, make_id, extra_config, wants) -> list[Step]:
    """Steps of `kind` for every (group, model, split, metric) of the spec where `wants(group, model)` yields
    items (None for one step per result, or interpretations)."""
    steps = []
    for group in spec.groups.values():
        for name in group.models:
            model = spec.models[name]
            # The training groups (train / validation) read the model's own training dataset.
            ds_name = group.dataset or (model.dataset if not model.pretrained else None)
            ds = spec.datasets.get(ds_name) if ds_name else None
            for split in _splits(group, model):
                for metric in group.selection_metrics:
                    for item in wants(group, model):
                        deps = [group_id(group.name, name)] if group.dataset else []
                        if not model.pretrained:
                            deps.append(train_id(name, split))
                            mode = model.extract_mode
                        else:
                            mode = _pretrained_mode(model)
                        if ds is not None and mode:
                            deps.extend(dataset_deps(spec, ds_name, mode))
                        task = GroupTask(group, model, ds, split, metric, item)
                        steps.append(
                            Step(
                                id=make_id(group.name, name, split, metric, item),
                                kind=kind,
                                home=model.maps,
                                config={**task.config(), **extra_config(group, item)},
                                deps=tuple(dict.fromkeys(deps)),
                                inputs=task.inputs(),  # the checkpoint read (rule 6)
                                payload=task,
                                lock_scope=MapsLayout.split_scope(split),
                                compute=group.compute,
                            )
                        )
    return steps


def _splits(group: Group, model: Model) -> tuple[int, ...]:
    if group.splits is not None:
        return group.splits
    if not model.pretrained:
        return model.split.indices
    try:
        return read_maps_info(model.maps).splits
    except NeuroexecError:
        return ()


def _pretrained_mode(model: Model) -> ExtractionMode | None:
    try:
        return read_maps_info(model.maps).extract_mode
    except NeuroexecError:
        return None


# --- the define step ------------------------------------------------------------------------------


def _redefined(step: Step) -> str | None:
    """Why the group already in the MAPS is other data than the spec's (None when the same or absent)."""
    task: GroupDefineTask = step.payload
    try:
        return why_redefined(task.maps, task.group, task.dataset, task.label())
    except NeuroexecError as exc:
        return str(exc)


def check(step: Step) -> str | None:
    group, model = step.payload.group, step.payload.model
    if group.overwrite:
        return _leak_before_removal(step)
    why = _redefined(step)
    if why:
        return (
            f"data group '{group.name}' already exists in {model.maps} with other data ({why}); "
            f"set groups.{group.name}.overwrite = true (--overwrite on the command line) to replace it "
            "and remove its results"
        )
    return None


def _leak_before_removal(step: Step) -> str | None:
    """A replacement that removes results is checked for leakage at plan time, so that a group refused
    for leakage never loses its results first (other groups are checked when the define step runs)."""
    task: GroupDefineTask = step.payload
    group, ds = task.group, task.dataset
    if group.skip_leak_check or not all(c.participants.exists() for c in ds.cohorts) or not removes(step):
        return None
    try:
        frame = dataset_frame(ds, task.label(), group.diagnoses, check_images=False)
    except NeuroexecError:
        return None  # the define step's run names the problem with the participants
    try:
        leak_check(frame, task.maps, group.name)
    except InputError as exc:
        return str(exc)
    return None


def removes(step: Step) -> list[Removal]:
    """With `overwrite = true`, replacing an existing group removes its results (planned `-` lines)."""
    task: GroupDefineTask = step.payload
    group, maps = task.group, task.maps
    if not group.overwrite or not maps.group_dir(group.name).exists():
        return []
    return replaced_results(maps, group, redefined=_redefined(step) is not None)


def notes(step: Step) -> list[str]:
    """What a redefinition with `keep_other_splits` leaves in place (the plan says so)."""
    task: GroupDefineTask = step.payload
    group, maps = task.group, task.maps
    if not group.keep_other_splits or not maps.group_dir(group.name).exists():
        return []
    kept = kept_stale(maps, group, redefined=_redefined(step) is not None)
    return [
        f"keeps {path.relative_to(maps.root)}: computed on the group's old data (keep_other_splits; "
        "`report` marks it stale)"
        for path in kept
    ]


def run(step: Step, ctx: RunContext) -> dict:
    task: GroupDefineTask = step.payload
    group, model, ds, maps = task.group, task.model, task.dataset, task.maps
    frame = task.sessions()
    if not group.skip_leak_check:
        leak_check(frame, maps, group.name)
    old = stale_results(maps, group.name, model.name)  # kept by an earlier redefinition
    if group.overwrite:
        forget_removed_results(maps, group.name, model.name)
        old |= set(kept_stale(maps, group, why_redefined(maps, group, ds, task.label()) is not None))
    stale = sorted(str(p.relative_to(maps.root)) for p in old)
    atomic.write_json(maps.group_maps_json(group.name), record(ds, maps.root))
    atomic.write_tsv(maps.group_data_tsv(group.name), frame)
    return {"sessions": len(frame), "stale": stale} if stale else {"sessions": len(frame)}


def forget_removed_results(maps: MapsLayout, group: str, model: str) -> None:
    """Forget the records of this group's result steps whose folder the planned removals deleted."""
    from neuroexec.plan.state import StateStore

    store = StateStore(maps.root)
    prefix = f"group.{group}."
    pattern = re.compile(rf"\[{re.escape(model)}/split-(\d+)/best-([^\]]+)\]$")
    gone = []
    for step_id in store.data["steps"]:
        found = pattern.search(step_id) if step_id.startswith(prefix) else None
        if found and not maps.result_dir(int(found[1]), found[2], group).is_dir():
            gone.append(step_id)
    store.forget(gone)


def outputs(step: Step) -> list[Path]:
    task: GroupDefineTask = step.payload
    return task.outputs()


register(
    StepKind(name="group", expand=expand, run=run, check=check, outputs=outputs, removes=removes, notes=notes)
)
