"""What a MAPS says about its model: read from maps.json (neuroexec / ClinicaDL 1.x) or the older
generation's commandline.json, so predict/interpret work on MAPS neuroexec did not write."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuroexec.errors import InputError
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.maps.layout import LegacyMapsLayout, MapsLayout

TASK_NAMES = {
    "classification": "classification",
    "regression": "regression",
    "reconstruction": "reconstruction",
    "autoencoder": "reconstruction",
    "cnn": "classification",
}


@dataclass(frozen=True)
class MapsInfo:
    root: Path
    task: str
    mode: str
    architecture: str
    label: str | None
    label_code: dict[str, int] | None
    output_size: int | None
    input_size: tuple[int, ...] | None
    patch_size: int | None = None
    stride_size: int | None = None
    uncropped: bool = False
    roi_list: tuple[str, ...] = ()  # roi mode: region names, in part-index order
    uncropped_roi: bool = False
    slice_direction: int | None = None  # slice mode: 0 sagittal, 1 coronal, 2 axial
    slice_mode: str | None = None  # slice mode: "rgb" or "single"
    discarded_slices: tuple[int, int] = (0, 0)  # slice mode: left out at the beginning and at the end
    multi_network: bool = False  # one network per part: split-<i>/best-<m>/network-<k>_model.pth.tar
    preprocessing: str = "t1-linear"
    tracer: str | None = None  # pet-linear (preprocessing_dict)
    suvr_reference_region: str | None = None  # pet-linear
    custom_suffix: str | None = None  # custom
    selection_metrics: tuple[str, ...] = ("loss",)
    splits: tuple[int, ...] = ()
    caps_directory: str | None = None
    tsv_path: str | None = None
    diagnoses: tuple[str, ...] | None = None
    dropout: float = 0.5
    # ClinicaDL's [Architecture] options (latent_space_size, ..., normalization), its defaults when absent
    architecture_options: dict[str, Any] = field(default_factory=lambda: dict(ARCHITECTURE_DEFAULTS))
    normalize: bool = True  # min-max normalisation of each item at load (ClinicaDL's default)
    size_reduction_factor: int | None = None  # ClinicaDL's size_reduction (image mode), None when off
    data_augmentation: tuple[str, ...] = ()  # ClinicaDL's training augmentations (false: none)
    legacy: bool = False  # fold-<i> / commandline.json generation
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def extract_mode(self) -> ExtractionMode:
        return ExtractionMode.of(
            self.mode,
            self.patch_size,
            self.stride_size,
            rois=self.roi_list,
            uncropped_roi=self.uncropped_roi,
            direction=self.slice_direction,
            slice_mode=self.slice_mode,
        )


def read_maps_info(root: Path) -> MapsInfo:
    """Read a MAPS folder's parameters; InputError naming the file when absent or unreadable."""
    path = MapsLayout(root).maps_json
    legacy = not path.is_file()
    if legacy:
        path = LegacyMapsLayout(root).commandline_json
    if not path.is_file():
        raise InputError(root, "not a MAPS folder: neither maps.json nor commandline.json found")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None
    pre = raw.get("preprocessing_dict") or {}
    task = TASK_NAMES.get(
        str(raw.get("network_task") or raw.get("model_type") or raw.get("network_type") or "classification"),
        "classification",
    )
    mode = pre.get("mode") or raw.get("mode") or "image"
    splits = tuple(LegacyMapsLayout(root).folds() if legacy else MapsLayout(root).splits())
    input_size = raw.get("input_size")
    label_code, output_size = raw.get("label_code"), raw.get("output_size")
    diagnoses = tuple(raw["diagnoses"]) if raw.get("diagnoses") else None
    if legacy:
        input_size = input_size or _legacy_input_size(mode, raw)
        if task == "classification" and not label_code and diagnoses:
            # The older generation had no label_code: it used one fixed diagnosis code.
            label_code = {
                d: LEGACY_DIAGNOSIS_CODE[d] for d in diagnoses if d in LEGACY_DIAGNOSIS_CODE
            } or None
            output_size = output_size or (len(set(label_code.values())) if label_code else None)
    return MapsInfo(
        root=root,
        task=task,
        mode=mode,
        architecture=str(raw.get("architecture") or raw.get("model") or ""),
        label=raw.get("label") or ("diagnosis" if task == "classification" else None),
        label_code=label_code,
        output_size=output_size,
        input_size=tuple(input_size) if input_size else None,
        patch_size=pre.get("patch_size") or raw.get("patch_size"),
        stride_size=pre.get("stride_size") or raw.get("stride_size"),
        uncropped=bool(pre.get("use_uncropped_image") or raw.get("use_uncropped_image", False)),
        **_part_settings(pre, raw),
        selection_metrics=tuple(raw.get("selection_metrics") or ("loss",)),
        splits=splits,
        caps_directory=raw.get("caps_directory") or raw.get("input_dir"),
        tsv_path=raw.get("tsv_path"),
        diagnoses=diagnoses,
        dropout=0.5 if raw.get("dropout") is None else float(raw["dropout"]),
        architecture_options=architecture_options(raw, path),
        normalize=bool(raw.get("normalize", raw.get("minmaxnormalization", True))),
        **data_settings(raw, path),
        legacy=legacy,
        raw=raw,
    )


# ClinicaDL 1.6.1's [Architecture] options (its train_config.toml) and their defaults
ARCHITECTURE_DEFAULTS: dict[str, Any] = {
    "latent_space_size": 128,
    "feature_size": 1024,
    "n_conv": 4,
    "io_layer_channels": 8,
    "recons_weight": 1.0,
    "kl_weight": 1.0,
    "normalization": "batch",
}
# normalization's values, and the layer names neuroexec's earlier maps.json (and ClinicaDL's random
# search) gave the same norms
NORMALIZATIONS = {"batch": "batch", "group": "group", "instance": "instance",
                  "BatchNorm": "batch", "InstanceNorm": "instance", "GroupNorm": "group"}  # fmt: skip


def architecture_options(raw: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """The [Architecture] options a maps.json (`path`) records, with ClinicaDL's defaults for the absent
    ones; an InputError naming the key when one is not of its type.

    >>> architecture_options({"latent_space_size": 64, "normalization": "BatchNorm"})["latent_space_size"]
    64
    >>> architecture_options({"normalization": "BatchNorm"})["normalization"]
    'batch'
    """
    options = {}
    for key, default in ARCHITECTURE_DEFAULTS.items():
        value = raw.get(key)
        try:
            options[key] = default if value is None else type(default)(value)  # ClinicaDL writes 1 for 1.0
        except (TypeError, ValueError):
            kind = {int: "an integer", float: "a number"}.get(type(default), "a string")
            raise InputError(path, f"{key} must be {kind}, found {value!r}", field=key) from None
    options["normalization"] = NORMALIZATIONS.get(options["normalization"], options["normalization"])
    return options


def data_settings(raw: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """size_reduction_factor (None unless `size_reduction`; ClinicaDL's default factor 2) and
    data_augmentation (false or a list: its names, ClinicaDL's 'None' left out) of a maps.json.

    >>> data_settings({"size_reduction": True, "size_reduction_factor": 3, "data_augmentation": False})
    {'size_reduction_factor': 3, 'data_augmentation': ()}
    """
    factor = None
    if raw.get("size_reduction"):
        factor = raw.get("size_reduction_factor", 2)
        if factor not in (2, 3, 4, 5) or isinstance(factor, bool):
            raise InputError(
                path, f"size_reduction_factor must be 2, 3, 4 or 5, found {factor!r}", "size_reduction_factor"
            )
    names = raw.get("data_augmentation") or ()
    names = (names,) if isinstance(names, str) else names
    if not isinstance(names, (list, tuple)):
        raise InputError(
            path, f"data_augmentation must be false or a list of names, found {names!r}", "data_augmentation"
        )
    return {"size_reduction_factor": factor, "data_augmentation": tuple(str(n) for n in names if n != "None")}


def _part_settings(pre: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The roi and slice settings and multi_network, from the preprocessing_dict (ClinicaDL 1.x) or
    the top level (the older generation), with ClinicaDL's defaults."""

    def get(key: str, default: Any) -> Any:
        value = pre.get(key, raw.get(key))
        return default if value is None else value

    discarded = get("discarded_slices", 0)
    if isinstance(discarded, (list, tuple)):
        discarded = (int(discarded[0]), int(discarded[-1])) if discarded else (0, 0)
    else:
        discarded = (int(discarded), int(discarded))
    direction = pre.get("slice_direction", raw.get("slice_direction"))
    return {
        "roi_list": tuple(get("roi_list", ()) or ()),
        "uncropped_roi": bool(get("uncropped_roi", False)),
        "slice_direction": None if direction is None else int(direction),
        "slice_mode": pre.get("slice_mode", raw.get("slice_mode")),
        "discarded_slices": discarded,
        "multi_network": bool(raw.get("multi_network", raw.get("multi_cnn", False))),
        "preprocessing": str(get("preprocessing", "t1-linear")),
        **{k: pre.get(k) for k in ("tracer", "suvr_reference_region", "custom_suffix") if pre.get(k)},
    }


def recorded_path(value: str, maps_root: Path) -> Path:
    """A path a MAPS records (ClinicaDL keeps it as typed, often relative to where it was run): as it
    is when absolute or found from here, else from the folder holding the MAPS, where ClinicaDL users
    usually run it; unchanged when neither exists (the caller's error names it)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    beside = Path(maps_root).resolve().parent / path
    return beside if beside.exists() else path


# The older generation's fixed label encoding (it wrote no label_code).
LEGACY_DIAGNOSIS_CODE = {"CN": 0, "AD": 1, "sMCI": 0, "pMCI": 1, "MCI": 1}


def _legacy_input_size(mode: str, raw: dict[str, Any]) -> list[int] | None:
    """The older generation recorded no input_size: image models took the t1-linear image, cropped
    (169x208x179) unless use_uncropped_image (193x229x193)."""
    if mode != "image":
        return None
    return [1, 193, 229, 193] if raw.get("use_uncropped_image") else [1, 169, 208, 179]


def best_model_file(root: Path, split: int, metric: str) -> Path:
    """The best model of a split for a selection metric, in either MAPS generation.

    neuroexec / ClinicaDL 1.x: `split-<i>/best-<metric>/model.pth.tar`; older: `fold-<i>/models/
    best_<metric>/model_best.pth.tar` (where balanced accuracy is spelled `balanced_accuracy`).
    """
    current = MapsLayout(root).best_model(split, metric)
    legacy = LegacyMapsLayout(root)
    if current.is_file() or not legacy.fold_dir(split).is_dir():
        return current
    return legacy.best_model(split, metric)
