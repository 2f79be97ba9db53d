"""`neuroexec train image cnn|autoencoder CAPS PREPROCESSING TSV_DIRECTORY MAPS` -> the equivalent spec.

The spec has one dataset (`data`: the CAPS + the split directory's participants) and one model named by
the network type (`cnn` or `autoencoder`), so re-running the same command is a no-op.

>>> Path("caps").mkdir(); Path("split").mkdir()
>>> for name in ("train.tsv", "validation.tsv"):
...     _ = Path("split", name).write_text("participant_id\\tsession_id\\tdiagnosis\\n")
>>> doc = train_spec_dict(TrainOptions("cnn", Path("caps"), "t1-linear", Path("split"), Path("maps")))
>>> doc["models"]["cnn"]["dataset"], doc["models"]["cnn"]["split"]["n_splits"]
('data', 1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroexec.compat.extract_record import MODALITY_KEYS, modality_table, mode_tables
from neuroexec.compat.multi_cohort_train import multi_cohort_dataset, preprocessing_caps
from neuroexec.compat.split_source import split_directory, training_participants
from neuroexec.compat.train_keys import check_options, clinicadl_options, compute_keys, model_keys, train_keys
from neuroexec.compat.train_options import TASKS
from neuroexec.data.caps import CapsLayout
from neuroexec.errors import InputError
from neuroexec.maps.info import best_model_file, read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.preprocessings import NEEDED_KEYS, PREPROCESSINGS, REFUSED, refusal
from neuroexec.spec.model import canonical_metric

# The network type (seed 002's form) or the task (ClinicaDL 1.3+'s) -> the task; it also names the model.
NETWORKS = {
    "cnn": "classification",
    "autoencoder": "reconstruction",
    "classification": "classification",
    "regression": "regression",
    "reconstruction": "reconstruction",
}
REGRESSION_LABEL = "age"  # ClinicaDL's train_config.toml (classification's, diagnosis, is the spec's default)
DATASET = "data"
MODES = ("image", "patch", "roi", "slice")
# Options copied as they are into the model's [train] table.
TRAIN_KEYS = (
    "epochs", "learning_rate", "weight_decay", "optimizer", "patience", "tolerance", "accumulation_steps",
)  # fmt: skip


@dataclass
class TrainOptions:
    network: str
    caps_directory: Path
    preprocessing_json: str
    tsv_directory: Path
    output_maps: Path
    # None = not given on the command line (the config file or the schema default applies).
    options: dict[str, Any] = field(default_factory=dict)
    # The extraction record itself (from_json: maps.json's preprocessing_dict) instead of a JSON's name.
    record: dict[str, Any] | None = None


def as_list(value: Any) -> list[Any]:
    """A config file's one value where ClinicaDL takes a list (`diagnoses = "AD"`) as that list."""
    return [value] if isinstance(value, str) else list(value)


def metric_name(value: str) -> str:
    """ClinicaDL spellings (best_loss, best_balanced_accuracy, best-BA) -> neuroexec's (loss, BA)."""
    v = str(value)
    for prefix in ("best_", "best-"):
        if v.startswith(prefix):
            v = v[len(prefix) :]
    return canonical_metric(v)


def preprocessing(caps: Path, name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The extraction a training reads: a preprocessing's name (whole images, or the parts the older
    `train patch|roi|slice` form and the mode flags describe) or a JSON of CAPS/tensor_extraction/
    (the mode flags of `options` replacing its values)."""
    o = options or {}
    named = named_preprocessing(name)
    if named is not None:
        kind = o.get("input_type")
        if kind in (None, "image"):
            return named
        raw = {"mode": kind, **(named.get("dataset") or {}), **part_record(o)}
        return _from_record(raw, None)
    path = _record_path(caps, name)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc})", "PREPROCESSING_JSON") from None
    return _from_record({**raw, **part_record(o)}, path)


def part_record(o: dict[str, Any]) -> dict[str, Any]:
    """The mode flags given (ClinicaDL's prepare-data names), as the keys of its extract JSON."""
    record = {k: o[k] for k in ("patch_size", "stride_size", "roi_list", "slice_direction", "slice_mode")
              if o.get(k) is not None}  # fmt: skip
    if o.get("uncropped_roi"):
        record["uncropped_roi"] = True
    if o.get("discarded_slices") is not None:
        record["discarded_slices"] = list(o["discarded_slices"])
    return record


def _record_path(caps: Path, name: str) -> Path:
    folder = CapsLayout(caps).tensor_extraction_dir
    candidates = [Path(name), *CapsLayout(caps).named_extract_json(name)]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        present = sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []
        raise InputError(
            folder / name,
            f"preprocessing JSON not found; give 't1-linear' or one of: {', '.join(present) or 'no JSON in ' + str(folder)}",
            "PREPROCESSING_JSON",
        )
    return path


def _from_record(raw: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """The model's mode tables and the dataset's keys of a ClinicaDL extraction record."""
    mode = raw.get("mode", "image")
    if mode not in MODES:
        raise InputError(path, f"mode {mode!r} is not supported (image, patch, roi or slice)", "mode")
    out: dict[str, Any] = {"mode": mode, "uncropped": bool(raw.get("use_uncropped_image", False))}
    if mode == "patch":
        size = int(raw.get("patch_size", 50))
        out["patch"] = {"size": size, "stride": int(raw.get("stride_size", size))}
    out.update(mode_tables(raw, path))
    if mode == "slice":  # ClinicaDL's one file per slice when it saved them (prepare_dl), else bundles
        out["prepare_dl"] = bool(raw.get("prepare_dl", False))
    name = str(raw.get("preprocessing") or "t1-linear")
    modality = {k: raw.get(k) for k in MODALITY_KEYS.get(name, ())}
    dataset = modality_table(name, modality, path, "preprocessing")
    if dataset:
        out["dataset"] = dataset
    return out


def named_preprocessing(name: str) -> dict[str, Any] | None:
    """A preprocessing named instead of a JSON (ClinicaDL's older `train image cnn CAPS t1-linear ...`):
    whole images of it; None for another name (a JSON's). One whose file names need keys a bare name
    does not give (pet-linear, custom), or one ClinicaDL cannot read, is an InputError saying why."""
    canonical = name.replace("_", "-")
    if canonical not in (*PREPROCESSINGS, *REFUSED):
        return None
    why = refusal(canonical)
    if why:
        raise InputError(None, why, "PREPROCESSING")
    keys = NEEDED_KEYS.get(canonical)
    if keys:
        raise InputError(
            None,
            f"{canonical} images are found by their {' and '.join(keys)}, which a bare name does not give: run "
            f"prepare-data for them and give the JSON it writes in tensor_extraction/",
            "PREPROCESSING",
        )
    return (
        {"mode": "image"}
        if canonical == "t1-linear"
        else {"mode": "image", "dataset": {"preprocessing": canonical}}
    )


def _transfer(o: dict[str, Any]) -> dict[str, Any]:
    """--transfer_path's table: the source MAPS, its best model (ClinicaDL 1.6.1's default: loss, filled
    in by clinicadl_options; the older form's: best balanced accuracy when the source has it), and
    nb_unfrozen_layer."""
    path, selection = Path(o["transfer_path"]), o.get("transfer_selection_metric")
    info = read_maps_info(path)  # InputError when not a MAPS of either generation
    if selection is None:
        # The seed's default is best_balanced_accuracy; an autoencoder (or a MAPS without it) has best_loss only.
        split = info.splits[0] if info.splits else 0
        selection = "BA" if best_model_file(path, split, "BA").is_file() else "loss"
    out: dict[str, Any] = {"maps": str(path.resolve()), "selection": metric_name(selection)}
    if o.get("nb_unfrozen_layer"):
        out["nb_unfrozen_layer"] = int(o["nb_unfrozen_layer"])
    return out


def checked_options(opts: TrainOptions) -> dict[str, Any]:
    """The options of the command: under ClinicaDL 1.3+'s `train TASK` form, with ClinicaDL's default of
    every option not given; under the older `train image cnn|autoencoder` form, as given. Both checked."""
    task = NETWORKS[opts.network]
    if opts.network in TASKS:
        return clinicadl_options(task, opts.options)
    o = {k: v for k, v in opts.options.items() if v is not None}
    check_options(o, task)
    return o


def train_spec_dict(opts: TrainOptions) -> dict[str, Any]:
    """The spec (a dict, absolute paths) equivalent to the command."""
    if opts.network not in NETWORKS:
        raise InputError(
            None,
            f"network type or task must be one of {', '.join(NETWORKS)}, got {opts.network!r}",
            "NETWORK",
        )
    o = checked_options(opts)
    maps = opts.output_maps.resolve()
    caps = opts.caps_directory.resolve()
    if opts.record is not None:
        pre = _from_record({**opts.record, **part_record(o)}, None)
    else:
        pre = preprocessing(extraction_caps(caps, opts.preprocessing_json, o), opts.preprocessing_json, o)
    splits_dir, n_found, data = _training_data(o, caps, opts.tsv_directory.resolve(), maps)
    dataset = {**data, **_dataset_keys(o, pre)}
    model = _model_table(opts.network, o, maps, pre)
    model["split"] = _split_table(o, splits_dir, n_found)
    if o.get("transfer_path"):
        model["transfer"] = _transfer(o)
    train = {**model.pop("train", {}), **_train_table(o), **train_keys(o, model["task"])}
    if train:
        model["train"] = train
    compute = _compute(o)
    if compute:
        model["compute"] = compute
    return {"version": 1, "datasets": {DATASET: dataset}, "models": {opts.network: model}}


def extraction_caps(caps: Path, json_name: str, o: dict[str, Any]) -> Path:
    """The CAPS whose tensor_extraction/ the preprocessing JSON is read from: CAPS_DIRECTORY, or with
    --multi_cohort the first cohort's CAPS that has it."""
    return preprocessing_caps(caps, json_name) if o.get("multi_cohort") else caps


def _training_data(
    o: dict[str, Any], caps: Path, tsv_dir: Path, maps: Path
) -> tuple[Path, int, dict[str, Any]]:
    """The split directory, its split count and the dataset's data keys (caps + participants, or the
    cohorts of --multi_cohort's tables)."""
    if o.get("multi_cohort"):
        data = multi_cohort_dataset(o, caps, tsv_dir, maps)
        return data.split_directory, data.n_splits, {"cohorts": data.cohorts}
    if tsv_dir.is_file() and tsv_dir.suffix == ".tsv":
        raise InputError(tsv_dir, "a TSV of cohorts is read with --multi_cohort; without it, TSV_DIRECTORY is a "
                         "split directory", "TSV_DIRECTORY")  # fmt: skip
    splits_dir, n_found = split_directory(tsv_dir)
    participants = training_participants(tsv_dir, splits_dir, MapsLayout(maps).participants_copy)
    return splits_dir, n_found, {"caps": str(caps), "participants": str(participants)}


def _dataset_keys(o: dict[str, Any], pre: dict[str, Any]) -> dict[str, Any]:
    """The dataset's keys besides its data: those of the extraction and of the options."""
    dataset: dict[str, Any] = {}
    if pre.get("uncropped"):
        dataset["uncropped"] = True
    if pre["mode"] == "patch" or pre.get("prepare_dl"):
        dataset["patch_layout"] = "clinicadl"  # reuse tensors `clinicadl extract` wrote
    dataset.update(pre.get("dataset", {}))
    for key in ("baseline", "normalize"):
        if o.get(key) is not None:
            dataset[key] = bool(o[key])
    return dataset


def _model_table(network: str, o: dict[str, Any], maps: Path, pre: dict[str, Any]) -> dict[str, Any]:
    """The model's own keys: task, mode, label, network (split, transfer, train, compute are added)."""
    task = NETWORKS[network]
    model: dict[str, Any] = {"maps": str(maps), "dataset": DATASET, "task": task, "mode": pre["mode"]}
    for key in ("patch", "roi", "slice"):
        if key in pre:
            model[key] = pre[key]
    model.update(part_options(o, pre["mode"]))
    if task != "reconstruction" and o.get("label") is not None:
        model["label"] = o["label"]
    elif task == "regression":
        model["label"] = REGRESSION_LABEL
    if o.get("diagnoses"):  # ClinicaDL's empty list: every label
        model["diagnoses"] = as_list(o["diagnoses"])
    model.update(model_keys(o, task))
    return model


def part_options(o: dict[str, Any], mode: str) -> dict[str, Any]:
    """--multi_network (patch, roi, slice only, as ClinicaDL refuses one network per part of an
    image) and --selection_threshold (the model's selection_threshold)."""
    out: dict[str, Any] = {}
    if o.get("multi_network"):
        if mode == "image":
            raise InputError(
                None,
                "one network per part needs a patch, roi or slice extraction, and the preprocessing JSON is "
                "image-based; leave --multi_network out or give another PREPROCESSING_JSON",
                "--multi_network",
            )
        out["multi_network"] = True
    threshold = o.get("selection_threshold")
    if threshold not in (None, 0, 0.0):
        out["selection_threshold"] = float(threshold)
    return out


def _split_table(o: dict[str, Any], splits_dir: Path, n_found: int) -> dict[str, Any]:
    n_splits = o.get("n_splits") or n_found
    split: dict[str, Any] = {"n_splits": int(n_splits), "directory": str(splits_dir)}
    if o.get("split"):
        split["splits"] = sorted({int(s) for s in o["split"]})
    if o.get("valid_longitudinal"):
        split["valid_longitudinal"] = True
    return split


def _train_table(o: dict[str, Any]) -> dict[str, Any]:
    train: dict[str, Any] = {key: o[key] for key in TRAIN_KEYS if o.get(key) is not None}
    if o.get("selection_metrics"):
        train["selection_metrics"] = list(
            dict.fromkeys(metric_name(m) for m in as_list(o["selection_metrics"]))
        )
    if o.get("visualization"):
        train["visualization"] = True
    return train


def _compute(o: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {**compute_table(o), **compute_keys(o, torch.cuda.is_available())}


def compute_table(o: dict[str, Any]) -> dict[str, Any]:
    """--gpu/--no-gpu, --amp, --n_proc, --batch_size, --seed, --deterministic -> a [compute] table."""
    out: dict[str, Any] = {}
    if o.get("gpu") is not None:
        out["device"] = "cuda" if o["gpu"] else "cpu"
    for flag, key in (
        ("amp", "amp"),
        ("n_proc", "workers"),
        ("batch_size", "batch_size"),
        ("seed", "seed"),
        ("deterministic", "deterministic"),
    ):
        if o.get(flag) is not None:
            out[key] = o[flag]
    return out
