"""`predict | interpret | save-tensor MAPS DATA_GROUP` -> the equivalent spec, with the seeds' data group
consistency rule: a new group needs --caps_directory and --participants_tsv; an existing one must not get
them unless --overwrite; with neither, the group is re-used with the data it recorded.

The model keeps the name the MAPS's training used (read from its state), else `maps`, so a re-run of the
same command — or of a spec that trained the MAPS — is a no-op.

`group_spec_dict(GroupOptions(Path("maps"), "test", caps_directory=Path("caps"),
participants_tsv=Path("test.tsv")), predict=True)` builds the spec of `predict maps test --caps_directory
caps --participants_tsv test.tsv`; it reads the MAPS's records, so tests/compat/test_group_spec.py runs
it on a MAPS of its own.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroexec import atomic
from neuroexec.compat.train_spec import compute_table, metric_name
from neuroexec.data.participants import cohort_path, read_cohort_table
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.state import read_state
from neuroexec.preprocessings import T1_LINEAR, Preprocessing
from neuroexec.spec.load import parse_toml
from neuroexec.steps.group_record import recorded_paths

RESERVED = ("train", "validation")
TRAIN_SPEC = "train"  # the spec `neuroexec train` writes into <MAPS>/.neuroexec/


@dataclass
class GroupOptions:
    maps: Path
    group: str
    caps_directory: Path | None = None
    participants_tsv: Path | None = None
    multi_cohort: bool = False
    diagnoses: list[str] | None = None
    baseline: bool = False
    label: str | None = None
    use_labels: bool = True
    selection_metrics: list[str] | None = None
    overwrite: bool = False
    skip_leak_check: bool = False
    splits: list[int] | None = None  # None: every split of the MAPS
    compute: dict[str, Any] = field(default_factory=dict)  # gpu, amp, n_proc, batch_size


def model_name(maps: Path) -> str:
    """The model name of the spec that trained this MAPS (from its state), else 'maps'."""
    steps = _recorded_steps(maps)
    names = sorted({m.group(1) for s in steps if (m := re.match(r"model\.([A-Za-z0-9_-]+)\.train\[", s))})
    return names[0] if len(names) == 1 else "maps"


def _recorded_steps(maps: Path) -> dict[str, Any]:
    """The step records of a MAPS's state; {} when there are none or they cannot be read (the plan then
    refuses the MAPS, naming its state file)."""
    data, problem = read_state(MapsLayout(maps).state_file)
    return {} if problem else data["steps"]


def _absolute(table: Path, value: str) -> str:
    return str(cohort_path(table, value).resolve())


def new_dataset(opts: GroupOptions) -> dict[str, Any]:
    """The [datasets] entry for --caps_directory / --participants_tsv (multi-cohort: two cohort TSVs)."""
    caps, tsv = opts.caps_directory.resolve(), opts.participants_tsv.resolve()
    ds: dict[str, Any]
    if not opts.multi_cohort:
        ds = {"caps": str(caps), "participants": str(tsv)}
    else:
        caps_t = read_cohort_table(caps, need_diagnoses=False, field="--caps_directory")
        tsv_t = read_cohort_table(tsv, need_diagnoses=False, field="--participants_tsv")
        caps_of = dict(zip(caps_t["cohort"], caps_t["path"]))
        missing = [c for c in tsv_t["cohort"] if c not in caps_of]
        if missing:
            raise InputError(caps, f"no CAPS listed for cohort(s) {', '.join(missing)}", "--caps_directory")
        ds = {
            "cohorts": [
                {"name": str(c), "caps": _absolute(caps, caps_of[c]), "participants": _absolute(tsv, p)}
                for c, p in zip(tsv_t["cohort"], tsv_t["path"])
            ]
        }
    if opts.baseline:
        ds["baseline"] = True
    return ds


def recorded_dataset(maps: Path, group: str) -> dict[str, Any]:
    """The data an existing group recorded (groups/<G>/maps.json): its CAPS and participants. A group
    ClinicaDL wrote records no participants file: its data.tsv is copied into .neuroexec/ and used."""
    layout = MapsLayout(maps)
    path = layout.group_maps_json(group)
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    caps = rec.get("caps_directory")
    if caps is not None:  # found again relative to the MAPS after the project folder moved
        moved = recorded_paths(rec, maps, "caps")
        caps = moved if isinstance(caps, list) else moved[0]
    if caps is None:
        raise InputError(
            path, "no caps_directory recorded: give --caps_directory and --participants_tsv with --overwrite"
        )
    participants = recorded_paths(rec, maps, "participants") if rec.get("participants") else None
    if participants is None:
        copy = layout.group_participants_copy(group)
        source = layout.group_data_tsv(group)
        if not source.is_file():
            raise InputError(source, f"data group '{group}' has no data.tsv: redefine it with --overwrite")
        if not copy.is_file() or copy.read_bytes() != source.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_open(copy) as f, source.open("rb") as src:
                shutil.copyfileobj(src, f)
        participants = [str(copy)]
    if isinstance(caps, list) or rec.get("multi_cohort"):
        caps_list = caps if isinstance(caps, list) else [caps]
        if len(caps_list) != len(participants):
            raise InputError(path, "caps_directory and participants have different lengths")
        return {
            "cohorts": [
                {"name": f"cohort{i}", "caps": str(c), "participants": str(p)}
                for i, (c, p) in enumerate(zip(caps_list, participants))
            ]
        }
    return {"caps": str(caps), "participants": str(participants[0])}


def recorded_options(maps: Path, group: str) -> dict[str, Any]:
    """The options an existing group was defined with (its define step's config in neuroexec's state:
    diagnoses, label, use_labels, skip_leak_check); {} for a group neuroexec did not define."""
    from neuroexec.steps.common import group_id

    record = _recorded_steps(maps).get(group_id(group, model_name(maps))) or {}
    return record.get("config") or {}


def _reuse(group: dict[str, Any], opts: GroupOptions, recorded: dict[str, Any]) -> None:
    """Re-using a group keeps what it was defined with (a flag given now still wins), so the same data
    is used again and its define step stays up to date."""
    if recorded.get("skip_leak_check"):
        group["skip_leak_check"] = True
    if not opts.diagnoses and recorded.get("diagnoses"):
        group["diagnoses"] = list(recorded["diagnoses"])
    if opts.label is None and recorded.get("label"):
        group["label"] = recorded["label"]
    if opts.use_labels and recorded.get("use_labels") is False:
        group["use_labels"] = False


def _recorded_dataset_name(recorded: dict[str, Any]) -> str | None:
    """The dataset name the group's define step recorded (a spec's `demo-test`), so that re-using the
    group keeps its steps' config, and its extraction's record, as they were; None if there is none."""
    name = recorded.get("dataset")
    return name if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]+", name) else None


def _check_leak_check_possible(maps: Path, opts: GroupOptions) -> None:
    """A new group is checked against the training participants; say which flag to use when the MAPS
    does not record them (an older-generation model folder, or a MAPS whose groups/ was removed)."""
    path = MapsLayout(maps).train_validation_tsv
    if not opts.skip_leak_check and not path.is_file():
        raise InputError(
            path,
            "this MAPS does not record its training participants, so the new data group cannot be checked "
            "for data leakage; add --skip_leak_check if you know the data was not used for training",
            "--skip_leak_check",
        )


def _training_spec(maps: Path, group: str) -> dict[str, Any]:
    """The spec evaluating a training group (train / validation): neuroexec's own training spec when it
    trained the MAPS; otherwise (ClinicaDL) the MAPS as a pretrained model whose recorded training
    groups (`groups/<group>/split-<i>/data.tsv`, CAPS from maps.json) are read as they are."""
    path = MapsLayout(maps).command_spec(TRAIN_SPEC)
    if path.is_file():
        return parse_toml(path)
    if not MapsLayout(maps).split_group_tsvs(group):
        raise InputError(
            MapsLayout(maps).group_dir(group),
            f"the data group '{group}' is the training data of each split, but this MAPS records none "
            f"(no groups/{group}/split-<i>/data.tsv). Define a new data group with --caps_directory and "
            "--participants_tsv instead",
        )
    return {"version": 1, "models": {model_name(maps): {"maps": str(maps)}}}


def group_spec_dict(
    opts: GroupOptions,
    predict: bool = False,
    interpret: list[dict[str, Any]] | None = None,
    save_tensors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The spec (a dict, absolute paths) evaluating DATA_GROUP with the MAPS."""
    maps = opts.maps.resolve()
    g = opts.group
    group: dict[str, Any] = {"predict": predict}
    given = [
        f
        for f, v in (("--caps_directory", opts.caps_directory), ("--participants_tsv", opts.participants_tsv))
        if v
    ]
    if g in RESERVED:
        if given:
            raise InputError(
                None, f"the data group '{g}' is the training data: {', '.join(given)} cannot be given"
            )
        doc = _training_spec(maps, g)
        group.update(from_training=g, models=[next(iter(doc["models"]))])
    else:
        doc = _data_group_spec(maps, opts, group, given)
    if opts.selection_metrics:
        group["selection_metrics"] = list(dict.fromkeys(metric_name(m) for m in opts.selection_metrics))
    if not opts.use_labels:
        group["use_labels"] = False
    if opts.label:
        group["label"] = opts.label
    if opts.diagnoses:
        group["diagnoses"] = list(opts.diagnoses)
    if opts.splits:
        group["splits"] = sorted(set(opts.splits))
    if save_tensors is not None:
        group["save_tensors"] = save_tensors
    if interpret:
        group["interpret"] = interpret
    compute = compute_table(opts.compute)
    if compute:
        group["compute"] = compute
    doc.setdefault("groups", {})[g] = group
    return doc


def _data_group_spec(
    maps: Path, opts: GroupOptions, group: dict[str, Any], given: list[str]
) -> dict[str, Any]:
    """The spec of a data group other than the training data's: new (both --caps_directory and
    --participants_tsv), redefined (--overwrite) or reused as recorded in the MAPS; completes `group`."""
    g = opts.group
    doc = {"version": 1, "models": {model_name(maps): {"maps": str(maps)}}}
    name = next(iter(doc["models"]))
    exists = MapsLayout(maps).group_maps_json(g).is_file()
    ds_name = f"{g}-data"
    if exists and given and not opts.overwrite:
        raise InputError(
            MapsLayout(maps).group_dir(g),
            f"data group '{g}' already exists in this MAPS: do not give {', '.join(given)} (to re-use it) "
            "or add --overwrite to redefine it (the plan shows the results that removes)",
        )
    if not exists or given:
        if len(given) != 2:
            raise InputError(
                MapsLayout(maps).group_dir(g),
                f"data group '{g}' does not exist in this MAPS: --caps_directory and --participants_tsv are both required",
            )
        _check_leak_check_possible(maps, opts)
        dataset = new_dataset(opts)
    else:
        dataset = recorded_dataset(maps, g)
        recorded = recorded_options(maps, g)
        _reuse(group, opts, recorded)
        ds_name = _recorded_dataset_name(recorded) or ds_name
    dataset.update(trained_preprocessing(maps))
    doc.setdefault("datasets", {})[ds_name] = dataset
    group.update(dataset=ds_name, models=[name])
    if opts.overwrite:
        group["overwrite"] = True
        if opts.splits:  # ClinicaDL 1.x's --split --overwrite leaves the other splits' results
            group["keep_other_splits"] = True
    if opts.skip_leak_check:
        group["skip_leak_check"] = True
    return doc


def trained_preprocessing(maps: Path) -> dict[str, Any]:
    """The dataset keys of the preprocessing the model was trained on (maps.json's preprocessing_dict,
    ClinicaDL's keys): the images a data group of it reads. Empty for t1-linear (the default)."""
    try:
        raw = json.loads(MapsLayout(maps).maps_json.read_text())
    except (OSError, ValueError):
        return {}  # an older MAPS (commandline.json) or an unreadable one: reported by the group steps
    record = raw.get("preprocessing_dict") if isinstance(raw, dict) else None
    pre = Preprocessing.from_record(record if isinstance(record, dict) else {}, MapsLayout(maps).maps_json)
    return {} if pre == T1_LINEAR else pre.record()


def check_models(maps: Path, metrics: list[str] | None, splits: list[int] | None = None) -> None:
    """Validate at the edge: every best model the command will use (of `splits`, default all) exists and
    loads safely (weights_only; a checkpoint needing arbitrary unpickling raises UnsafeCheckpointError,
    exit 2)."""
    from neuroexec.maps.checkpoints import load_checkpoint
    from neuroexec.maps.info import best_model_file, read_maps_info

    info = read_maps_info(maps.resolve())
    unknown = sorted(set(splits or []) - set(info.splits))
    if unknown:
        raise InputError(
            maps,
            f"no split {', '.join(map(str, unknown))} in this MAPS (it has {', '.join(map(str, info.splits))})",
            "--split",
        )
    for split in sorted(set(splits)) if splits else info.splits:
        for metric in dict.fromkeys(metric_name(m) for m in (metrics or ["loss"])):
            if info.multi_network:  # one network per part: network-<k>_model.pth.tar
                found = MapsLayout(info.root).best_network_models(split, metric)
                paths = [p for _, p in found] or [MapsLayout(info.root).best_model(split, metric, 0)]
            else:
                paths = [best_model_file(info.root, split, metric)]
            for path in paths:
                if not path.is_file():
                    raise InputError(
                        path,
                        f"no best model for split {split} and selection metric '{metric}'",
                        "--selection_metrics",
                    )
                load_checkpoint(path)
