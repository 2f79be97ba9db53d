"""Data groups. `group.G.define[M]` records a group's data in model M's MAPS (groups/<G>/maps.json and
data.tsv) after the leakage check; the seeds' consistency rule is enforced at plan time: a group that
exists in the MAPS with other data is refused unless `overwrite = true`, which replaces it and removes
what was computed for the old data. Also expands the per-result steps shared by predict, save-tensors and
interpret (the `GroupTask` payload)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroexec import atomic
from neuroexec.context import RunContext
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.maps.info import MapsInfo, read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.spec.model import Dataset, Group, Interpretation, Model, Spec
from neuroexec.steps.common import (
    dataset_deps,
    dataset_frame,
    group_id,
    participants_inputs,
    split_id,
    train_id,
)
from neuroexec.steps.registry import Step, StepKind, register


@dataclass(frozen=True)
class GroupTask:
    """What a predict / save-tensors / interpret step works on: one group, one model, one best model."""

    group: Group
    model: Model
    dataset: Dataset | None  # the group's data (the model's training data for train / validation);
    # None only for the training groups of a pretrained MAPS (its maps.json names the CAPS)
    split: int
    metric: str
    interpretation: Interpretation | None = None

    @property
    def maps(self) -> MapsLayout:
        return MapsLayout(self.model.maps)

    def info(self) -> MapsInfo:
        return read_maps_info(self.model.maps)


def group_config(group: Group) -> dict:
    return {
        "dataset": group.dataset,
        "from_training": group.from_training,
        "label": group.label,
        "use_labels": group.use_labels,
        "diagnoses": list(group.diagnoses or []),
    }


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
            steps.append(
                Step(
                    id=group_id(group.name, name),
                    kind="group",
                    home=model.maps,
                    config={**group_config(group), "skip_leak_check": group.skip_leak_check},
                    deps=tuple(deps),
                    inputs=participants_inputs(spec, group.dataset),
                    payload=(group, model, ds),
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
                        config = {
                            "group": group_config(group),
                            "model": name,
                            "split": split,
                            "metric": metric,
                            **extra_config(group, item),
                        }
                        steps.append(
                            Step(
                                id=make_id(group.name, name, split, metric, item),
                                kind=kind,
                                home=model.maps,
                                config=config,
                                deps=tuple(dict.fromkeys(deps)),
                                payload=task,
                                lock_scope=f"split-{split}",
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


def _pretrained_mode(model: Model) -> str | None:
    try:
        return read_maps_info(model.maps).extract_mode
    except NeuroexecError:
        return None


# --- the define step ------------------------------------------------------------------------------


def group_frame(group: Group, model_label: str | None, ds: Dataset) -> pd.DataFrame:
    """The group's participants (all cohorts), filtered on diagnoses, images checked."""
    return dataset_frame(ds, (group.label or model_label) if group.use_labels else None, group.diagnoses)


def _record(ds: Dataset) -> dict:
    """What groups/<G>/maps.json says about the data (ClinicaDL's keys, plus neuroexec's)."""
    return {
        "caps_directory": str(ds.caps) if not ds.multi_cohort else [str(c.caps) for c in ds.cohorts],
        "multi_cohort": ds.multi_cohort,
        "participants": [str(c.participants) for c in ds.cohorts],
    }


def _existing_differs(step: Step) -> str | None:
    """Why the group already in the MAPS differs from the spec's (None when same or absent)."""
    group, model, ds = step.payload
    maps = MapsLayout(model.maps)
    path = maps.group_maps_json(group.name)
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        return f"{path} is not valid JSON"
    new = _record(ds)
    if str(old.get("caps_directory")) != str(new["caps_directory"]):
        return f"it was defined with CAPS {old.get('caps_directory')}"
    if "participants" in old and old["participants"] != new["participants"]:
        return f"it was defined with participants {old['participants']}"
    return None


def check(step: Step) -> str | None:
    group, model, ds = step.payload
    if group.overwrite:
        return None
    why = _existing_differs(step)
    if why:
        return (
            f"data group '{group.name}' already exists in {model.maps} with other data ({why}); "
            f"set groups.{group.name}.overwrite = true to replace it and erase its results"
        )
    return None


def run(step: Step, ctx: RunContext) -> dict:
    group, model, ds = step.payload
    maps = MapsLayout(model.maps)
    label = model.label if not model.pretrained else read_maps_info(model.maps).label
    frame = group_frame(group, label, ds)
    if not group.skip_leak_check:
        leak_check(frame, maps, group.name)
    if maps.group_dir(group.name).exists() and (group.overwrite or _existing_differs(step)):
        erase_group(maps, group.name)
    atomic.write_json(maps.group_maps_json(group.name), _record(ds))
    atomic.write_tsv(maps.group_data_tsv(group.name), frame)
    return {"sessions": len(frame)}


def leak_check(frame: pd.DataFrame, maps: MapsLayout, group: str) -> None:
    """Refuse a group that shares participants with the model's training data."""
    path = maps.train_validation_tsv
    if not path.is_file():
        raise InputError(
            path,
            "the training participants of this MAPS are unknown, so data leakage cannot "
            f"be checked; set groups.{group}.skip_leak_check = true if you accept that",
        )
    train = pd.read_csv(path, sep="\t", dtype=str)
    shared = sorted(set(frame["participant_id"]) & set(train["participant_id"]))
    if shared:
        listed = ", ".join(shared[:20]) + (f" and {len(shared) - 20} more" if len(shared) > 20 else "")
        raise InputError(
            path,
            f"data leakage: {len(shared)} participant(s) of group '{group}' were used to "
            f"train this model: {listed}. Use other participants, or set "
            f"groups.{group}.skip_leak_check = true (not good practice)",
        )


def erase_group(maps: MapsLayout, group: str) -> None:
    """Remove a data group and every result computed for it (all splits and selection metrics)."""
    for result in maps.root.glob(f"split-*/best-*/{group}"):
        shutil.rmtree(result)
    if maps.group_dir(group).exists():
        shutil.rmtree(maps.group_dir(group))
    from neuroexec.plan.state import StateStore

    store = StateStore(maps.root)
    store.forget([s for s in store.data["steps"] if s.startswith(f"group.{group}.")])


def group_participants(task: GroupTask) -> pd.DataFrame:
    """The participants a result step evaluates: the group's data.tsv, or a split's training group."""
    maps = task.maps
    if task.group.from_training is not None:
        path = maps.split_group_tsv(task.group.from_training, task.split)
    else:
        path = maps.group_data_tsv(task.group.name)
    if not path.is_file():
        raise InputError(path, f"data group '{task.group.name}' has no data.tsv in this MAPS")
    return pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})


def outputs(step: Step) -> list[Path]:
    group, model, _ = step.payload
    maps = MapsLayout(model.maps)
    return [maps.group_maps_json(group.name), maps.group_data_tsv(group.name)]


register(StepKind(name="group", expand=expand, run=run, check=check, outputs=outputs))
__all__ = ["GroupTask", "result_steps", "group_participants"]
