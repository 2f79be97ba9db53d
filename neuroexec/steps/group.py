"""Data groups. `group.G.define[M]` records a group's data in model M's MAPS (groups/<G>/maps.json and
data.tsv) after the leakage check; the seeds' consistency rule is enforced at plan time: a group that
exists in the MAPS with other data (another CAPS, other sessions or labels) is refused unless
`overwrite = true`, which replaces it; what that removes is planned (`removes`, group_record.py). Also expands the per-result steps shared by predict, save-tensors and
interpret (the `GroupTask` payload)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from neuroexec import atomic
from neuroexec.context import RunContext
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.maps.info import MapsInfo, best_model_file, read_maps_info
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
from neuroexec.steps.group_record import (
    kept_stale,
    record,
    replaced_results,
    stale_results,
    why_redefined,
)
from neuroexec.steps.registry import Removal, Step, StepKind, register


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
                                # The model read, by content (rule 6): replaced by hand, it is noticed.
                                inputs=(best_model_file(model.maps, split, metric),),
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


def _label(group: Group, model: Model) -> str | None:
    """The label column the group's data.tsv keeps (None without labels, or for an unreadable MAPS)."""
    if not group.use_labels:
        return None
    if group.label or not model.pretrained:
        return group.label or model.label
    try:
        return read_maps_info(model.maps).label
    except NeuroexecError:
        return None


def _redefined(step: Step) -> str | None:
    """Why the group already in the MAPS is other data than the spec's (None when the same or absent)."""
    group, model, ds = step.payload
    try:
        return why_redefined(MapsLayout(model.maps), group, ds, _label(group, model))
    except NeuroexecError as exc:
        return str(exc)


def check(step: Step) -> str | None:
    group, model, ds = step.payload
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
    group, model, ds = step.payload
    if group.skip_leak_check or not all(c.participants.exists() for c in ds.cohorts) or not removes(step):
        return None
    try:
        frame = dataset_frame(ds, _label(group, model), group.diagnoses, check_images=False)
    except NeuroexecError:
        return None  # the define step's run names the problem with the participants
    try:
        leak_check(frame, MapsLayout(model.maps), group.name)
    except InputError as exc:
        return str(exc)
    return None


def removes(step: Step) -> list[Removal]:
    """With `overwrite = true`, replacing an existing group removes its results (planned `-` lines)."""
    group, model, _ = step.payload
    maps = MapsLayout(model.maps)
    if not group.overwrite or not maps.group_dir(group.name).exists():
        return []
    return replaced_results(maps, group, redefined=_redefined(step) is not None)


def notes(step: Step) -> list[str]:
    """What a redefinition with `keep_other_splits` leaves in place (the plan says so)."""
    group, model, _ = step.payload
    maps = MapsLayout(model.maps)
    if not group.keep_other_splits or not maps.group_dir(group.name).exists():
        return []
    kept = kept_stale(maps, group, redefined=_redefined(step) is not None)
    return [
        f"keeps {path.relative_to(maps.root)}: computed on the group's old data (keep_other_splits; "
        "`report` marks it stale)"
        for path in kept
    ]


def run(step: Step, ctx: RunContext) -> dict:
    group, model, ds = step.payload
    maps = MapsLayout(model.maps)
    label = model.label if not model.pretrained else read_maps_info(model.maps).label
    frame = group_frame(group, label, ds)
    if not group.skip_leak_check:
        leak_check(frame, maps, group.name)
    old = stale_results(maps, group.name, model.name)  # kept by an earlier redefinition
    if group.overwrite:
        forget_removed_results(maps, group.name, model.name)
        old |= set(kept_stale(maps, group, why_redefined(maps, group, ds, _label(group, model)) is not None))
    stale = sorted(str(p.relative_to(maps.root)) for p in old)
    atomic.write_json(maps.group_maps_json(group.name), record(ds, maps.root))
    atomic.write_tsv(maps.group_data_tsv(group.name), frame)
    return {"sessions": len(frame), "stale": stale} if stale else {"sessions": len(frame)}


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


register(
    StepKind(name="group", expand=expand, run=run, check=check, outputs=outputs, removes=removes, notes=notes)
)
__all__ = ["GroupTask", "result_steps", "group_participants"]
