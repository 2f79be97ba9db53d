"""The older `interpret group|individual MODEL_PATH NAME` (seed 004) on the engine: a spec with one data
group (the --caps_dir/--tsv_path data, filtered on --diagnosis) and one interpretation (target class,
keep_true), applied; then its maps are copied into the older layout (compat/legacy_layout.py).

Both levels share the engine results (individual maps are always kept, which also tells which sessions
keep_true left), so `group` then `individual` with the same NAME computes the maps once.

`run_legacy(LegacyOptions("group", Path("model"), "maps"))` needs a trained model and returns the exit
code (0); tests/cli/test_legacy_interpret.py runs both levels on a tiny one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from neuroexec import __version__
from neuroexec.compat.group_spec import GroupOptions, model_name, new_dataset
from neuroexec.compat.legacy_layout import LegacyTarget, write_legacy_outputs
from neuroexec.compat.runner import run_built_spec, spec_path
from neuroexec.compat.train_spec import metric_name
from neuroexec.errors import InputError
from neuroexec.maps.info import MapsInfo, read_maps_info, recorded_path
from neuroexec.maps.layout import LegacyMapsLayout, MapsLayout

LEVELS = ("group", "individual")


@dataclass
class LegacyOptions:
    level: str
    model_path: Path
    name: str
    use_cpu: bool = False
    nproc: int = 2
    batch_size: int = 2
    selection: list[str] = field(default_factory=lambda: ["best_balanced_accuracy"])
    tsv_path: Path | None = None
    caps_dir: Path | None = None
    diagnosis: str = "AD"
    target_diagnosis: str | None = None
    baseline: bool = False
    keep_true: bool | None = None
    nifti_template_path: Path | None = None
    multi_cohort: bool = False
    vmax: float = 0.5
    print_spec: bool = False
    quiet: bool = False


def group_name(name: str) -> str:
    """The engine's data group for the map set NAME (letters, digits, '-', '_' only)."""
    return "legacy-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _data(o: LegacyOptions, info: MapsInfo) -> tuple[Path, Path]:
    caps = o.caps_dir or (recorded_path(info.caps_directory, info.root) if info.caps_directory else None)
    tsv = o.tsv_path or (recorded_path(info.tsv_path, info.root) if info.tsv_path else None)
    if caps is None or tsv is None:
        which = [f for f, v in (("--caps_dir", caps), ("--tsv_path", tsv)) if v is None]
        raise InputError(
            info.root, f"the model does not record its training data: give {' and '.join(which)}"
        )
    return caps, tsv


def legacy_spec_dict(o: LegacyOptions) -> tuple[dict[str, Any], MapsInfo]:
    """The spec computing the maps, and the model's MapsInfo."""
    if o.level not in LEVELS:
        raise InputError(None, f"level must be group or individual, got {o.level!r}", "level")
    root = o.model_path.resolve()
    info = read_maps_info(root)
    if info.task != "classification":
        raise InputError(root, f"interpret explains a classifier; this model's task is {info.task}")
    caps, tsv = _data(o, info)
    gopts = GroupOptions(
        root, group_name(o.name), caps, tsv, multi_cohort=o.multi_cohort, baseline=o.baseline
    )
    model = model_name(root)
    entry: dict[str, Any] = {
        "name": o.name,
        "target": o.target_diagnosis or o.diagnosis,
        "save_individual": True,
        "vmax": o.vmax,
        "figure": False,
    }
    if o.keep_true is not None:
        entry["keep_true"] = o.keep_true
        _check_soft_voting(info, o)
    g = gopts.group
    doc = {
        "version": 1,
        "datasets": {f"{g}-data": new_dataset(gopts)},
        "models": {model: {"maps": str(root)}},
        "groups": {
            g: {
                "dataset": f"{g}-data",
                "models": [model],
                "predict": False,
                "diagnoses": [o.diagnosis],
                "selection_metrics": list(dict.fromkeys(metric_name(s) for s in o.selection)),
                # The older generation keeps no record of its training participants, and this command's
                # default data is the training TSV itself: a leakage check cannot apply.
                "skip_leak_check": True,
                # Like the older command, a new run with other data replaces the previous maps.
                "overwrite": True,
                "interpret": [entry],
                "compute": {
                    "device": "cpu" if o.use_cpu else "auto",
                    "workers": o.nproc,
                    "batch_size": o.batch_size,
                },
            }
        },
    }
    return doc, info


def _check_soft_voting(info: MapsInfo, o: LegacyOptions) -> None:
    """Patch models classify an image by soft voting, weighted by the validation predictions."""
    if info.mode == "image":
        return
    for split in info.splits:
        for s in o.selection:
            metric = metric_name(s)
            if info.legacy:
                found = LegacyMapsLayout(info.root).prediction_tsv(split, metric, "validation", info.mode)
            else:
                found = MapsLayout(info.root).prediction_tsv(split, metric, "validation", info.mode)
            folder = found.parent
            if not found.is_file():
                raise InputError(
                    folder,
                    f"the validation predictions of this {info.mode} model were erased: --keep_true needs image-level "
                    "predictions, which soft voting computes from them. Run without --keep_true, or restore "
                    f"validation_{info.mode}_level_prediction.tsv",
                    "--keep_true",
                )


def commandline(o: LegacyOptions) -> dict[str, Any]:
    """Everything needed to reproduce the maps: every option (absolute paths) and the argv to re-run."""
    values = {k: (str(Path(v).resolve()) if isinstance(v, Path) else v) for k, v in asdict(o).items()
              if k not in ("print_spec", "quiet")}  # fmt: skip
    argv = ["interpret", o.level, values["model_path"], o.name, "--nproc", str(o.nproc), "--batch_size",
            str(o.batch_size), "--diagnosis", o.diagnosis, "--vmax", repr(o.vmax), "--selection", *o.selection]  # fmt: skip
    for key in ("tsv_path", "caps_dir", "target_diagnosis", "nifti_template_path"):
        if values[key] is not None:
            argv += [f"--{key}", str(values[key])]
    for key in ("use_cpu", "baseline", "multi_cohort"):
        if values[key]:
            argv.append(f"--{key}")
    if o.keep_true is not None:
        argv.append("--keep_true" if o.keep_true else "--no-keep_true")
    return {**values, "neuroexec_version": __version__, "argv": argv}


def run_legacy(o: LegacyOptions) -> int:
    # Record the data actually used (the model's defaults resolved), so commandline.json reproduces it.
    caps, tsv = _data(o, read_maps_info(o.model_path.resolve()))
    o = replace(o, caps_dir=Path(caps), tsv_path=Path(tsv))
    doc, info = legacy_spec_dict(o)
    path = spec_path(o.model_path, "interpret", group_name(o.name))
    code = run_built_spec(doc, path, o.print_spec, o.quiet)
    if o.print_spec or code:
        return code
    ds = doc["datasets"][f"{group_name(o.name)}-data"]
    cohorts = ds.get("cohorts") or [{"name": group_name(o.name) + "-data", "caps": ds["caps"]}]
    caps = {c["name"]: Path(c["caps"]) for c in cohorts}
    record = commandline(o)
    for split in info.splits:
        for selection in o.selection:
            target = LegacyTarget(
                model_path=o.model_path.resolve(), info=info, group=group_name(o.name), name=o.name, split=split,
                selection=selection, metric=metric_name(selection), level=o.level, caps=caps,
                uncropped=info.uncropped, template=o.nifti_template_path, vmax=o.vmax,
                commandline={**record, "split": split},
            )  # fmt: skip
            out = write_legacy_outputs(target)
            if not o.quiet:
                print(f"wrote {out}")
    return 0
