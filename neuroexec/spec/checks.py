"""Semantic checks of a resolved spec: references exist, no transfer cycle, paths exist where they must,
settings that contradict each other or this machine. All problems are returned together. They read the
frozen Spec only; which keys of a table go together is spec/shape.py's check of the TOML."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from neuroexec.errors import Problem
from neuroexec.maps.layout import MapsLayout
from neuroexec.metrics import SELECTION_METRICS
from neuroexec.spec.architecture_checks import (
    check_architecture,
    check_options,
    check_pretrained_architecture,
)
from neuroexec.spec.generate_kinds import generate_problems, roi_problems
from neuroexec.spec.model import Dataset, Group, Model, Spec, Split, Transfer
from neuroexec.spec.training_checks import check_compute, check_observers, check_training

TASK_METRICS = SELECTION_METRICS  # per task, the metrics a best model can be selected on
RESERVED_GROUPS = ("train", "validation")


def semantic_problems(spec: Spec) -> list[Problem]:
    """Every problem of a resolved spec that the schema cannot see, each naming the file and key path.

    >>> from neuroexec.spec.model import Compute
    >>> spec = Spec(Path("/s/spec.toml"), 1, Compute(), {}, {}, {"test": Group("test", ("cnn",), "adni")})
    >>> [p.key for p in semantic_problems(spec)]
    ['groups.test.dataset', 'groups.test.models[0]']
    """
    f = str(spec.path)
    out: list[Problem] = []
    add = lambda key, msg: out.append(Problem(f, key, msg))  # noqa: E731

    for key, path in spec_paths(spec):
        why = name_too_long(path)
        if why:
            add(key, why)
    if out:
        return out  # the checks below look these paths up, which the system refuses to do
    _check_maps_folders(spec, add)
    check_compute(spec.compute, "compute", add)
    for ds in spec.datasets.values():
        _check_dataset_paths(ds, add)
        _check_preprocessing(spec, ds, add)
    maps_owner: dict[Path, str] = {}
    for name, model in spec.models.items():
        if model.maps in maps_owner:
            add(f"models.{name}.maps", f"same MAPS folder as models.{maps_owner[model.maps]}: {model.maps}")
        maps_owner[model.maps] = name
        _check_model(spec, model, add)
    out.extend(_cycle_problems(spec))
    for group in spec.groups.values():
        _check_group(spec, group, add)
    return out


def _check_dataset_paths(ds: Dataset, add) -> None:
    """The CAPS and participants a dataset reads exist (a generated one writes them; a cohort that is
    another dataset of the spec is checked as that dataset)."""
    if ds.generate is not None:
        return
    for c in ds.cohorts:
        if c.dataset is not None:
            continue
        if not c.caps.is_dir():
            add(f"{c.key}.caps", f"CAPS folder not found: {c.caps}")
        if not c.participants.exists():
            add(f"{c.key}.participants", f"participants file or folder not found: {c.participants}")


def _check_preprocessing(spec: Spec, ds: Dataset, add) -> None:
    """The preprocessing is one neuroexec reads, with the keys it needs and no other's; a generated
    dataset is t1-linear; a cohort that is another dataset has the same preprocessing."""
    from neuroexec import preprocessings as pre

    key = f"datasets.{ds.name}"
    why = pre.refusal(ds.preprocessing)
    if why:
        add(f"{key}.preprocessing", why)
        return
    values = {k: getattr(ds, k) for k in pre.EXTRA_KEYS}
    for name in pre.missing_keys(ds.preprocessing, values):
        add(f"{key}.{name}", f"preprocessing {ds.preprocessing} needs {name} (it is part of the file names)")
    for name in pre.misplaced_keys(ds.preprocessing, values):
        add(f"{key}.{name}", f"only read with preprocessing {pre.needing(name)}, not {ds.preprocessing}")
    if ds.generate is not None:
        generate_problems(ds, add)  # what each kind needs, and the preprocessing of what it writes
    if ds.preprocessing == "custom" and ds.uncropped:
        add(f"{key}.uncropped", "custom images are read as they are: remove uncropped (ClinicaDL ignores it)")
    for c in ds.cohorts:
        other = spec.datasets.get(c.dataset) if c.dataset else None
        if other is not None and _preprocessing_of(other) != _preprocessing_of(ds):
            add(
                f"{c.key}.dataset",
                f"dataset {other.name} is {_preprocessing_of(other)}, this dataset {_preprocessing_of(ds)}: "
                "give both the same preprocessing",
            )


def _preprocessing_of(ds: Dataset) -> str:
    from neuroexec.preprocessings import EXTRA_KEYS

    extra = ", ".join(f"{k} {getattr(ds, k)}" for k in EXTRA_KEYS if getattr(ds, k) is not None)
    return f"{ds.preprocessing} ({extra})" if extra else ds.preprocessing


def _check_model(spec: Spec, model: Model, add) -> None:
    key = f"models.{model.name}"
    check_compute(model.compute, f"{key}.compute", add)
    if model.pretrained:
        if not MapsLayout(model.maps).is_maps:
            add(
                f"{key}.maps",
                f"no dataset given, so this must be an existing MAPS, but {model.maps} has "
                "no maps.json (nor a legacy commandline.json)",
            )
        else:
            check_pretrained_architecture(spec.dir, model, add)
        return
    if model.dataset not in spec.datasets:
        add(f"{key}.dataset", _unknown("dataset", model.dataset, spec.datasets))
    else:
        roi_problems(key, model.mode, spec.datasets[model.dataset], add)  # a generated CAPS without masks
    if model.train.visualization and (model.task != "reconstruction" or model.mode != "image"):
        add(f"{key}.train.visualization", "writes input/output images of an autoencoder: only for task = "
            "'reconstruction' with mode = 'image'")  # fmt: skip
    allowed = TASK_METRICS[model.task]
    for i, metric in enumerate(model.train.selection_metrics):
        if metric not in allowed:
            add(
                f"{key}.train.selection_metrics[{i}]",
                f"'{metric}' is not a {model.task} metric; expected one of {', '.join(allowed)}",
            )
    found = check_architecture(spec.dir, model, add)
    if found is not None:
        _check_pretrained(model, found, add)
    check_options(spec.dir, model, found, add)
    check_training(model, add)
    check_observers(model, add)
    _check_split(model.split, f"{key}.split", add)
    if model.transfer is not None:
        _check_transfer(spec, model.name, model.transfer, add)


def _check_pretrained(model: Model, found, add) -> None:
    """architecture_options.weights: an existing file, for a network whose builder reads one (resnet18)."""
    weights = model.architecture_options.weights
    key = f"models.{model.name}.architecture_options.weights"
    if weights is None:
        return
    if "weights" not in inspect.signature(found.build).parameters:
        add(key, f"{found.name} reads no pretrained-weights file (resnet18 does: its ImageNet weights); remove "
            f"it, or start from a trained model with [models.{model.name}.transfer]")  # fmt: skip
    elif not weights.is_file():
        add(key, f"pretrained-weights file not found: {weights}; save torchvision's resnet18 ImageNet state "
            "dict there, or remove the key to start from random weights")  # fmt: skip


def _check_split(s: Split, key: str, add) -> None:
    if s.splits is not None and s.directory is None:
        bad = [i for i in s.splits if i >= s.n_splits]
        if bad:
            add(f"{key}.splits", f"split(s) {bad} out of range for n_splits = {s.n_splits}")
    if s.directory is not None and not s.directory.is_dir():
        add(f"{key}.directory", f"split directory not found: {s.directory}")


def _check_transfer(spec: Spec, name: str, t: Transfer, add) -> None:
    key = f"models.{name}.transfer"
    if (t.model is None) == (t.maps is None):
        add(key, "give exactly one of transfer.model or transfer.maps")
    elif t.model is not None and t.model not in spec.models:
        add(f"{key}.model", _unknown("model", t.model, spec.models))
    elif t.model == name:
        add(f"{key}.model", "a model cannot transfer from itself")
    elif t.maps is not None and not t.maps.is_dir():
        add(f"{key}.maps", f"MAPS folder not found: {t.maps}")


def _check_group(spec: Spec, group: Group, add) -> None:
    name, key = group.name, f"groups.{group.name}"
    if (group.dataset is None) == (group.from_training is None):
        add(key, "give exactly one of dataset or from_training")
    elif group.dataset is not None and group.dataset not in spec.datasets:
        add(f"{key}.dataset", _unknown("dataset", group.dataset, spec.datasets))
    if name in RESERVED_GROUPS and group.from_training != name:
        add(key, f"the group name '{name}' is reserved for the training data (set from_training = '{name}')")
    if group.from_training is not None and group.from_training != name:
        add(
            f"{key}.from_training",
            f"the training data groups keep ClinicaDL's names: name this group [groups.{group.from_training}]",
        )
    check_compute(group.compute, f"{key}.compute", add)
    save = group.save_tensors
    if save is not None and not (save.tensors or save.nifti or save.latent):
        add(
            f"{key}.save_tensors",
            "tensors, nifti and latent are all false, nothing to write; set one of them to true or remove "
            "save_tensors",
        )
    for i, mname in enumerate(group.models):
        if mname not in spec.models:
            add(f"{key}.models[{i}]", _unknown("model", mname, spec.models))
            continue
        _check_group_model(group, spec.models[mname], f"{key}.models[{i}]", add)
        _check_group_preprocessing(spec, group, spec.models[mname], f"{key}.models[{i}]", add)
    _check_interpretations(group, add)


def _check_group_preprocessing(spec: Spec, group: Group, model: Model, key: str, add) -> None:
    """A group's images are of the preprocessing its (spec-trained) model was trained on."""
    ours, theirs = spec.datasets.get(group.dataset or ""), spec.datasets.get(model.dataset or "")
    if model.pretrained or ours is None or theirs is None:
        return
    if _preprocessing_of(ours) != _preprocessing_of(theirs):
        add(
            key,
            f"models.{model.name} is trained on {_preprocessing_of(theirs)} images, dataset {ours.name} holds "
            f"{_preprocessing_of(ours)} ones: evaluate it on a dataset of its preprocessing",
        )


def _check_interpretations(group: Group, add) -> None:
    key = f"groups.{group.name}.interpret"
    names = [i.name for i in group.interpret]
    for n in sorted({n for n in names if names.count(n) > 1}):
        add(key, f"interpretation name '{n}' is used twice")
    for i, interp in enumerate(group.interpret):
        if interp.keep_true is not None and not group.use_labels:
            add(f"{key}[{i}].keep_true", "needs labels (use_labels = true)")
        if interp.mask is not None and not interp.mask.is_file():
            add(f"{key}[{i}].mask", f"mask file not found: {interp.mask}")
        if interp.save_nifti and not interp.save_individual:
            add(
                f"{key}[{i}].save_nifti",
                "writes the individual maps as NIfTI: set save_individual = true too "
                "(the mean and std maps are always written as NIfTI)",
            )


def spec_paths(spec: Spec) -> list[tuple[str, Path]]:
    """Every path of the spec with its key (cohorts borrowed from another dataset are that dataset's)."""
    out: list[tuple[str, Path]] = []
    for ds in spec.datasets.values():
        for c in ds.cohorts:
            if c.dataset is None:
                out += [(f"{c.key}.caps", c.caps), (f"{c.key}.participants", c.participants)]
    for name, model in spec.models.items():
        out.append((f"models.{name}.maps", model.maps))
        if model.split.directory is not None:
            out.append((f"models.{name}.split.directory", model.split.directory))
        if model.transfer is not None and model.transfer.maps is not None:
            out.append((f"models.{name}.transfer.maps", model.transfer.maps))
    for name, group in spec.groups.items():
        out += [
            (f"groups.{name}.interpret[{i}].mask", it.mask) for i, it in enumerate(group.interpret) if it.mask
        ]
        out += _result_paths(spec, group)
    return out


def _result_paths(spec: Spec, group: Group) -> list[tuple[str, Path]]:
    """The longest names a group's results get in its models' MAPS (the group and interpretation names
    are part of file and folder names there)."""
    out = []
    for model in (spec.models[m] for m in group.models if m in spec.models):
        maps, split = MapsLayout(model.maps), (group.splits or (0,))[0]
        for metric in group.selection_metrics:
            out.append((f"groups.{group.name}", maps.prediction_tsv(split, metric, group.name, "image")))
            out += [
                (
                    f"groups.{group.name}.interpret[{i}].name",
                    maps.interpret_dir(split, metric, group.name, it.name),
                )
                for i, it in enumerate(group.interpret)
            ]
    return out


def name_too_long(path: Path) -> str | None:
    """Why the file system would refuse `path` (a name or the whole path over its limits), or None.
    The limits are those of the nearest existing folder (255 bytes per name on most file systems)."""
    parent = path
    while not os.path.isdir(parent) and parent != parent.parent:  # isdir is False on any OSError
        parent = parent.parent
    name_max, path_max = _limit(parent, "PC_NAME_MAX", 255), _limit(parent, "PC_PATH_MAX", 4096)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            return (
                f"the name '{part[:24]}...' is {size} bytes long, over this file system's limit of "
                f"{name_max} bytes per file or folder name: use a shorter name"
            )
    size = len(os.fsencode(str(path)))
    if size >= path_max:
        return (
            f"the path is {size} bytes long, over this file system's limit of {path_max}: use a shorter one"
        )
    return None


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def _check_maps_folders(spec: Spec, add) -> None:
    """A MAPS the spec trains is a folder of its own: not the spec's folder, not a file, not in or around
    a CAPS or another MAPS (retraining with overwrite replaces all of it). One problem per model. A
    pretrained MAPS is only read and added to (the ClinicaDL-style commands keep their spec inside it)."""
    caps = {c.caps.resolve(): f"datasets.{n}" for n, ds in spec.datasets.items() for c in ds.cohorts}
    maps = {m.maps.resolve(): n for n, m in spec.models.items()}
    for root, name in maps.items():
        if spec.models[name].pretrained:
            continue  # a file there has no maps.json: the pretrained check says so
        why = _shared_folder(root, spec.dir, caps, {m: f"models.{n}" for m, n in maps.items() if m != root})
        if why:
            add(
                f"models.{name}.maps",
                f"{why}; a MAPS needs a new or empty folder of its own, e.g. 'maps/{name}'",
            )


def _shared_folder(root: Path, spec_dir: Path, caps: dict[Path, str], others: dict[Path, str]) -> str | None:
    if root == spec_dir:
        return f"{root} is the spec's own folder"
    if root.is_file():
        return f"{root} is a file"
    for folder, owner in caps.items():
        if root == folder:
            return f"{root} is the CAPS of {owner}"
        if folder in root.parents:
            return f"{root} is inside the CAPS of {owner} ({folder})"
        if root in folder.parents:
            return f"{root} holds the CAPS of {owner} ({folder})"
    for other, owner in others.items():
        if root in other.parents:
            return f"{root} holds the MAPS of {owner} ({other})"
    return None


def _check_group_model(group, model: Model, key: str, add) -> None:
    if model.pretrained:
        return  # its training groups, when used, are read from the MAPS (groups/<group>/split-<i>/data.tsv)
    if group.splits is not None:
        bad = [s for s in group.splits if s not in model.split.indices]
        if bad:
            add(
                key,
                f"split(s) {bad} are not trained by models.{model.name} (trained: {list(model.split.indices)})",
            )
    missing = [s for s in group.selection_metrics if s not in model.train.selection_metrics]
    if missing:
        add(
            key,
            f"models.{model.name} keeps no best model for {missing} "
            f"(its train.selection_metrics: {list(model.train.selection_metrics)})",
        )
    if group.interpret and model.task == "reconstruction":
        add(key, f"interpret explains a prediction; models.{model.name} is a reconstruction model")
    if group.save_tensors is not None and group.save_tensors.latent and model.task != "reconstruction":
        add(
            f"groups.{group.name}.save_tensors.latent",
            f"latent tensors are an autoencoder's codes; models.{model.name} is a {model.task} model",
        )


def _cycle_problems(spec: Spec) -> list[Problem]:
    out = []
    for start in spec.models:
        seen, cur = [start], spec.models[start]
        while cur.transfer is not None and cur.transfer.model in spec.models:
            nxt = cur.transfer.model
            if nxt == start:
                chain = " -> ".join([*seen, start])
                out.append(
                    Problem(str(spec.path), f"models.{start}.transfer.model", f"transfer cycle: {chain}")
                )
                break
            if nxt in seen:
                break
            seen.append(nxt)
            cur = spec.models[nxt]
    return out


def _unknown(what: str, name: str | None, known: dict) -> str:
    names = ", ".join(sorted(known)) or "none defined"
    return f"unknown {what} '{name}' (defined: {names})"
