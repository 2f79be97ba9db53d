"""`neuroexec prepare-data image|patch|roi|slice CAPS MODALITY` (ClinicaDL 1.6.1's `prepare-data`) -> the
extract step of the engine, and ClinicaDL's record `<CAPS>/tensor_extraction/<extract_json>`.

The extraction is the one a model of that mode reads (so `train` on the record re-uses it: same
incremental extraction, same manifest, same ownership of the tensors). As in ClinicaDL, without
`--save_features` only the image tensors are extracted (`prepare_dl` false: the parts are cut from them
when a model reads them); with it the parts too, in ClinicaDL's one-file-per-part layout. The spec
built names that model (`prepare-data`, its MAPS beside the CAPS, never written): only its extract
step is planned and applied.

>>> opts = PrepareOptions("patch", Path("caps"), "t1-linear", patch_size=32, stride_size=16)
>>> part_model(opts)["mode"], part_model(opts)["patch"]
('patch', {'size': 32, 'stride': 16})
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from neuroexec import atomic, records
from neuroexec.compat.extract_record import (
    CUSTOM_TEMPLATE,
    MODALITY_KEYS,
    clinicadl_record,
    discarded_pair,
    extract_json_name,
    modality_table,
    roi_names,
)
from neuroexec.data.caps import CapsLayout
from neuroexec.data.caps import extract_json_name as engine_record_name
from neuroexec.errors import InputError
from neuroexec.spec.toml_writer import dumps

DATASET, MODEL = "data", "prepare-data"
# ClinicaDL's TEMPLATE_DICT / PATTERN_DICT: where the ROI masks of a preprocessing are.
ROI_TEMPLATE, ROI_PATTERN = "MNI152NLin2009cSym", "res-1x1x1"


@dataclass
class PrepareOptions:
    """The arguments of `prepare-data`, ClinicaDL's names and defaults."""

    mode: str
    caps_directory: Path
    modality: str
    participants_tsv: Path | None = None
    extract_json: str | None = None
    use_uncropped_image: bool = False
    save_features: bool = False
    patch_size: int = 50
    stride_size: int = 50
    slice_direction: int = 0
    slice_mode: str = "rgb"
    discarded_slices: tuple[int, ...] = (0, 0)
    roi_list: tuple[str, ...] = ()
    roi_uncrop_output: bool = False
    roi_custom_template: str = ""
    roi_custom_mask_pattern: str = ""
    tracer: str | None = None
    suvr_reference_region: str | None = None
    custom_suffix: str = ""
    n_proc: int = 2

    @property
    def modality_values(self) -> dict[str, Any]:
        """--tracer, --suvr_reference_region, --custom_suffix: those MODALITY reads; a flag given for
        another MODALITY is refused (ClinicaDL would leave it out of the record silently)."""
        used = MODALITY_KEYS.get(self.modality, ())
        for keys in MODALITY_KEYS.values():
            for key in keys:
                if key not in used and getattr(self, key):
                    raise InputError(None, f"--{key} is read only with MODALITY {needing(key)}", f"--{key}")
        return {key: getattr(self, key) for key in used}


def needing(key: str) -> str:
    return next(m for m, keys in MODALITY_KEYS.items() if key in keys)


def mode_settings(opts: PrepareOptions) -> dict[str, Any]:
    """The record's keys of the mode, as ClinicaDL's prepare_data_cli sets them."""
    if opts.mode == "patch":
        for flag in ("patch_size", "stride_size"):
            if getattr(opts, flag) < 1:
                raise InputError(None, f"--{flag} must be at least 1, got {getattr(opts, flag)}", f"--{flag}")
        return {"patch_size": opts.patch_size, "stride_size": opts.stride_size}
    if opts.mode == "slice":
        discarded = discarded_pair(opts.discarded_slices, None, "--discarded_slices")
        return {"slice_direction": opts.slice_direction, "slice_mode": opts.slice_mode,
                "discarded_slices": discarded}  # fmt: skip
    if opts.mode == "roi":
        names = roi_names(opts.roi_list, None, "--roi_list")
        if opts.modality == "custom" and not opts.roi_custom_template:
            raise InputError(None, CUSTOM_TEMPLATE, "--roi_custom_template")
        return {"roi_list": names, "uncropped_roi": opts.roi_uncrop_output,
                "roi_custom_template": opts.roi_custom_template,
                "roi_custom_mask_pattern": opts.roi_custom_mask_pattern}  # fmt: skip
    return {}


def part_model(opts: PrepareOptions) -> dict[str, Any]:
    """The mode keys of a model reading the parts (`mode`, `patch` / `roi` / `slice`)."""
    s = mode_settings(opts)
    model: dict[str, Any] = {"mode": opts.mode}
    if opts.mode == "patch":
        model["patch"] = {"size": s["patch_size"], "stride": s["stride_size"]}
    elif opts.mode == "slice":
        model["slice"] = {"direction": s["slice_direction"], "mode": s["slice_mode"],
                          "discarded": s["discarded_slices"]}  # fmt: skip
    elif opts.mode == "roi":
        model["roi"] = {"list": s["roi_list"], "uncropped": s["uncropped_roi"]}
        for key in ("custom_template", "custom_mask_pattern"):
            if s[f"roi_{key}"]:
                model["roi"][key] = s[f"roi_{key}"]
    return model


def extracts_parts(opts: PrepareOptions) -> bool:
    """Whether the parts themselves are extracted (image mode, or --save_features), not only images."""
    return opts.mode == "image" or opts.save_features


def record(opts: PrepareOptions) -> dict[str, Any]:
    """ClinicaDL's `tensor_extraction/<extract_json>` of this command."""
    settings = mode_settings(opts)
    if opts.mode == "roi" and opts.save_features:  # what ClinicaDL adds when it cuts the regions
        custom = opts.modality == "custom"
        template = opts.roi_custom_template if custom else ROI_TEMPLATE
        settings["roi_template"] = template
        settings["roi_mask_pattern"] = opts.roi_custom_mask_pattern if custom else ROI_PATTERN
        settings["masks_location"] = str(CapsLayout(opts.caps_directory.resolve()).roi_masks_dir(template))
    name = extract_json_name(opts.extract_json)
    return clinicadl_record(opts.mode, opts.modality, opts.modality_values, opts.use_uncropped_image,
                            opts.save_features, settings, name)  # fmt: skip


def sessions_tsv(opts: PrepareOptions) -> Path:
    """The sessions to extract: --participants_tsv, else every `subjects/sub-*/ses-*` of the CAPS (as
    ClinicaDL lists them), written into the CAPS's `.neuroexec/` (rewritten only when they change)."""
    caps = CapsLayout(opts.caps_directory.resolve())
    if opts.participants_tsv is not None:
        tsv = opts.participants_tsv.resolve()
        if not tsv.is_file():
            raise InputError(tsv, "participants TSV not found", "--participants_tsv")
        return tsv
    if not caps.subjects_dir.is_dir():
        raise InputError(caps.root, "not a CAPS folder: no subjects/ folder in it", "CAPS_DIRECTORY")
    rows = [(s.parent.name, s.name) for s in sorted(caps.subjects_dir.glob("sub-*/ses-*")) if s.is_dir()]
    if not rows:
        raise InputError(caps.subjects_dir, "no sub-*/ses-* folder: nothing to extract", "CAPS_DIRECTORY")
    frame = pd.DataFrame(rows, columns=["participant_id", "session_id"])
    out = records.prepare_data_sessions(caps.root)
    if not out.is_file() or out.read_text() != frame.to_csv(sep="\t", index=False):
        atomic.write_tsv(out, frame)
    return out


def prepare_spec_dict(opts: PrepareOptions) -> dict[str, Any]:
    """The spec (absolute paths): the CAPS as a dataset and the model whose extraction is wanted."""
    if not opts.caps_directory.is_dir():
        raise InputError(opts.caps_directory, "CAPS folder not found", "CAPS_DIRECTORY")
    caps = opts.caps_directory.resolve()
    dataset: dict[str, Any] = {"caps": str(caps), "participants": str(sessions_tsv(opts))}
    dataset.update(modality_table(opts.modality, opts.modality_values, None, "MODALITY"))
    if opts.use_uncropped_image:
        dataset["uncropped"] = True
    if opts.save_features and opts.mode in ("patch", "slice"):
        dataset["patch_layout"] = "clinicadl"  # ClinicaDL's one file per part
    model = part_model(opts) if extracts_parts(opts) else {"mode": "image"}
    mode_settings(opts)  # a bad --roi_list / --discarded_slices is refused, parts extracted or not
    maps = caps.parent / f"{caps.name}-{MODEL}-maps"  # never written: only the extract step runs
    model = {"maps": str(maps), "dataset": DATASET, "task": "reconstruction", **model}
    return {"version": 1, "datasets": {DATASET: dataset}, "models": {MODEL: model}}


def record_path(opts: PrepareOptions, content: dict[str, Any]) -> Path:
    return CapsLayout(opts.caps_directory.resolve()).tensor_extraction_dir / content["extract_json"]


def engine_writes(opts: PrepareOptions, content: dict[str, Any]) -> bool:
    """Whether the record's name is the one the extract step writes itself (`extract_<mode>.json`):
    then the extract step's record is ClinicaDL's record, under the extract step's ownership rules."""
    kind = opts.mode if extracts_parts(opts) else "image"
    return content["extract_json"] == engine_record_name(kind)


def check_record(opts: PrepareOptions, content: dict[str, Any]) -> None:
    """A record of that name that says something else is refused (ClinicaDL refuses any existing one;
    the same content is this command run again)."""
    path = record_path(opts, content)
    if engine_writes(opts, content) and opts.mode != "image" and not extracts_parts(opts):
        raise InputError(
            path,
            f"this is the record of the image extraction neuroexec writes for the images a {opts.mode} record "
            "needs; name the record otherwise with --extract_json",
            "--extract_json",
        )
    if engine_writes(opts, content) and content.get("discarded_slices", [0, 0]) != [0, 0]:
        raise InputError(
            path,
            "this is the record the slice extraction writes itself, of every slice of the axis; a record "
            "with discarded_slices needs another name (--extract_json)",
            "--extract_json",
        )
    if engine_writes(opts, content) or not path.is_file():
        return
    try:
        same = json.loads(path.read_text()) == content
    except (OSError, ValueError):
        same = False
    if not same:
        raise InputError(
            path,
            "a record of another extraction already has this name; choose another name with --extract_json",
            "--extract_json",
        )


def run_prepare(opts: PrepareOptions, spec_file: Path, print_only: bool = False, quiet: bool = False) -> int:
    """Check, then apply the extract step of the spec and write the record (print_only: print the spec)."""
    from neuroexec.run_spec import run_spec_file
    from neuroexec.spec import spec_from_dict

    doc = prepare_spec_dict(opts)
    content = record(opts)
    spec_from_dict(doc, spec_file)
    if print_only:
        print(dumps(doc), end="")
        return 0
    check_record(opts, content)
    atomic.write_text(spec_file, dumps(doc))
    code = run_spec_file(spec_file, quiet=quiet, adjust=only_extraction)
    if code == 0 and not engine_writes(opts, content):
        atomic.write_json(record_path(opts, content), content)
    return code


def only_extraction(plan) -> None:
    """The plan keeps the extract steps only: the model is named for its input, never trained."""
    plan.steps[:] = [p for p in plan.steps if p.step.kind == "extract"]
