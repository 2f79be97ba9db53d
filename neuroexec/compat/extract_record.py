"""ClinicaDL's preprocessing JSON (`<CAPS>/tensor_extraction/<name>.json`) <-> the spec's tables.

Read (`train`): the mode's settings as the spec's model table holds them (`roi = {...}`, `slice = {...}`),
with ClinicaDL 1.6.1's defaults for absent keys, and the preprocessing as the dataset table holds it.
Written (`prepare-data`): the record ClinicaDL's `prepare-data` writes, with its keys.

>>> mode_tables({"mode": "slice", "slice_direction": 2, "discarded_slices": [3]}, Path("x.json"))
{'slice': {'direction': 2, 'mode': 'rgb', 'discarded': [3, 3]}}
>>> mode_tables({"mode": "roi", "roi_list": ["leftHippocampus"]}, Path("x.json"))
{'roi': {'list': ['leftHippocampus'], 'uncropped': False}}
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from neuroexec.data.caps import preprocessing_record
from neuroexec.errors import InputError

SLICE_MODES = ("rgb", "single")
CUSTOM_TEMPLATE = (
    "the ROI masks of a custom preprocessing have no default template: give the template the images were "
    "registered to (the masks are in <CAPS>/masks/tpl-<template>/)"
)
ROI_NAME = re.compile(r"^[A-Za-z0-9]+$")  # ClinicaDL splits `_roi-<name>_mask` on `_` and `-`
# Keys of the modality ClinicaDL's prepare-data records for some preprocessings (get_parameters_dict).
MODALITY_KEYS = {"pet-linear": ("tracer", "suvr_reference_region"), "custom": ("custom_suffix",)}


def extract_json_name(name: str | None) -> str:
    """ClinicaDL's name of the record: `extract_<timestamp>.json` by default, `.json` added when missing.

    >>> extract_json_name("extract_roi"), extract_json_name("mine.json")
    ('extract_roi.json', 'mine.json')
    """
    if name is None:
        return f"extract_{int(time.time())}.json"
    return name if name.endswith(".json") else f"{name}.json"


def discarded_pair(value: Any, where: Path, field: str) -> list[int]:
    """ClinicaDL's `discarded_slices` (one number for both ends, or [begin, end]) -> [begin, end]."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not 1 <= len(values) <= 2 or not all(isinstance(v, int) and v >= 0 for v in values):
        raise InputError(where, f"discarded_slices must be one or two numbers >= 0, got {value!r}", field)
    return [values[0], values[-1]]


def _slice_table(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    direction = raw.get("slice_direction", 0)
    if direction not in (0, 1, 2):
        raise InputError(path, f"slice_direction must be 0, 1 or 2, got {direction!r}", "slice_direction")
    slice_mode = raw.get("slice_mode", "rgb")
    if slice_mode not in SLICE_MODES:
        raise InputError(path, f"slice_mode must be rgb or single, got {slice_mode!r}", "slice_mode")
    discarded = discarded_pair(raw.get("discarded_slices", 0), path, "discarded_slices")
    if raw.get("num_slices") is not None:  # written by ClinicaDL's `generate shepplogan` only
        raise InputError(
            path,
            "num_slices is not supported: neuroexec reads every slice that discarded_slices keeps; "
            "remove the key and give discarded_slices instead",
            "num_slices",
        )
    return {"direction": direction, "mode": slice_mode, "discarded": discarded}


def roi_names(names: Any, where: Path | None, field: str) -> list[str]:
    """A non-empty list of region names, letters and digits each; InputError naming `field` otherwise."""
    listed = [names] if isinstance(names, str) else list(names or [])
    if not listed:
        raise InputError(where, "an ROI extraction needs at least one region name", field)
    bad = [n for n in listed if not isinstance(n, str) or not ROI_NAME.match(n)]
    if bad:
        raise InputError(
            where,
            f"region names are letters and digits only (ClinicaDL reads `_roi-<name>_mask`), got {bad!r}",
            field,
        )
    if len(set(listed)) != len(listed):
        raise InputError(where, f"a region is listed twice in {listed!r}", field)
    return listed


def _roi_table(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    table: dict[str, Any] = {
        "list": roi_names(raw.get("roi_list"), path, "roi_list"),
        "uncropped": bool(raw.get("uncropped_roi", False)),
    }
    for key in ("custom_template", "custom_mask_pattern"):
        if raw.get(f"roi_{key}"):
            table[key] = str(raw[f"roi_{key}"])
    if raw.get("preprocessing") == "custom" and "custom_template" not in table:
        raise InputError(path, CUSTOM_TEMPLATE, "roi_custom_template")
    background = raw.get("roi_background_value", 0)
    if background not in (0, None):
        raise InputError(
            path, f"roi_background_value {background!r} is not supported (0 only)", "roi_background_value"
        )
    return table


def mode_tables(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The model's `roi` or `slice` table for the JSON's mode (empty for image and patch)."""
    mode = raw.get("mode", "image")
    if mode == "roi":
        return {"roi": _roi_table(raw, path)}
    if mode == "slice":
        return {"slice": _slice_table(raw, path)}
    return {}


def schema_dataset() -> dict[str, Any]:
    """The dataset table's properties in spec/schema.json (which preprocessings and keys it knows)."""
    from neuroexec.spec.load import schema

    return schema()["properties"]["datasets"]["additionalProperties"]["properties"]


def modality_table(
    preprocessing: str, values: dict[str, Any], where: Path | None, field: str
) -> dict[str, Any]:
    """The dataset table's keys of a preprocessing (`preprocessing`, and `tracer`... as the schema names
    them). A preprocessing or a key the spec does not know yet is refused, naming it."""
    props = schema_dataset()
    known = props.get("preprocessing", {}).get("enum", ["t1-linear"])
    if preprocessing not in known:
        raise InputError(
            where,
            f"preprocessing {preprocessing!r} is not supported by neuroexec (one of: {', '.join(known)})",
            field,
        )
    table: dict[str, Any] = {} if preprocessing == "t1-linear" else {"preprocessing": preprocessing}
    for key, value in values.items():
        if value in (None, ""):
            continue
        if key not in props:
            raise InputError(where, f"{key} {value!r} is not supported by neuroexec's datasets yet", key)
        table[key] = value
    return table


def clinicadl_record(
    mode: str,
    preprocessing: str,
    modality: dict[str, Any],
    uncropped: bool,
    prepare_dl: bool,
    settings: dict[str, Any],
    name: str,
) -> dict[str, Any]:
    """The record ClinicaDL 1.6.1's `prepare-data <mode>` writes: get_parameters_dict's keys (the
    preprocessing's own, `modality`: tracer...), the mode's (`patch_size`..., `slice_direction`...,
    `roi_list`...) in `settings`, and the name; InputError naming the flag of a missing tracer..."""
    from neuroexec.preprocessings import NEEDED_KEYS, Preprocessing

    values = {k: modality.get(k) or None for k in NEEDED_KEYS.get(preprocessing, ())}
    try:
        pre = Preprocessing(preprocessing, **values)
    except InputError as err:
        raise InputError(None, str(err).removeprefix(f"[{err.field}]: "), f"--{err.field}") from None
    patch = (settings["patch_size"], settings["stride_size"]) if mode == "patch" else None
    record = preprocessing_record(mode, uncropped, prepare_dl, patch, pre)
    record.update(settings)
    record["extract_json"] = name
    return record
