"""`train from_json CONFIG_JSON MAPS [--split]` and `train resume MAPS [--split]`, ClinicaDL's.

from_json trains what a JSON of ClinicaDL parameters says (a maps.json, or a random search's config):
its caps_directory, tsv_path, preprocessing_dict and network_task, every other parameter as the options
of `train TASK` (ClinicaDL's defaults for those it lacks). As in ClinicaDL, the JSON's `split` is not
read: --split chooses the splits (default all).

resume continues the training a command recorded in the MAPS (`.neuroexec/train.toml`, written by
`train ...` and `train from_json`): applying it again resumes each interrupted split where its last
epoch ended, bit-identical to an uninterrupted run, and trains the splits not started among those the
command trains (ClinicaDL's resume also trains the splits of the split directory its command left out
with --split: widening a recorded `splits` would re-run the model's split step, which retrains the
finished splits, so neuroexec refuses a --split outside them). A MAPS that
ClinicaDL left half-trained (`split-<i>/tmp/checkpoint.pth.tar` without neuroexec's resume state) cannot
be continued that way: ClinicaDL saves the weights and the optimizer, but not the random number
generators' states nor the best-model and early-stopping history, so no continuation (ClinicaDL's own
resume included, which re-runs the saved epoch from the re-seeded generators) equals its uninterrupted
training; resume says so, naming the split, and how to go on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from neuroexec.compat.clinicadl_config import ARGUMENT_KEYS, COMPUTED_KEYS, read_json_parameters
from neuroexec.compat.train_options import TASKS
from neuroexec.compat.train_spec import TrainOptions
from neuroexec.errors import InputError
from neuroexec.maps.layout import MapsLayout

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TRAIN_SPEC = "train"  # the recorded spec's name: <MAPS>/.neuroexec/train.toml
CLINICADL_TMP_FILES = ("checkpoint.pth.tar", "optimizer.pth.tar")


def from_json_options(config: Path, maps: Path, splits: list[int] | None) -> TrainOptions:
    """The `train TASK` options equivalent to a JSON of ClinicaDL parameters."""
    params = read_json_parameters(config)
    missing = [
        k for k in ("caps_directory", "tsv_path", "preprocessing_dict", "network_task") if not params.get(k)
    ]
    if missing:
        raise InputError(config, f"a training's JSON needs {', '.join(missing)} (maps.json has them)")
    task = params["network_task"]
    if task not in TASKS:
        raise InputError(config, f"network_task {task!r} is not one of {', '.join(TASKS)}", "network_task")
    record = params["preprocessing_dict"]
    if not isinstance(record, dict):
        raise InputError(config, "preprocessing_dict must be the extraction's record (a JSON object)")
    if params.get("mode") not in (None, record.get("mode", "image")):
        raise InputError(config, f"mode {params['mode']!r} is not the preprocessing_dict's", "mode")
    options: dict[str, Any] = {
        k: v for k, v in params.items() if k not in (*ARGUMENT_KEYS, *COMPUTED_KEYS, "split")
    }
    options["split"] = list(splits or [])
    base = config.resolve().parent
    return TrainOptions(
        task,
        _path(base, params["caps_directory"]),
        str(record.get("extract_json") or "preprocessing_dict"),
        _path(base, params["tsv_path"]),
        maps,
        options,
        record=record,
    )


def _path(base: Path, value: Any) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def recorded_train_spec(maps: Path) -> tuple[Path, str]:
    """The spec `train` or `from_json` recorded in the MAPS and its model's name; an InputError saying
    what the MAPS is otherwise (ClinicaDL's half-trained one, a spec's, not a MAPS)."""
    layout = MapsLayout(maps)
    path = layout.command_spec(TRAIN_SPEC)
    if path.is_file():
        models = tomllib.loads(path.read_text()).get("models") or {}
        if len(models) == 1:
            return path, next(iter(models))
        raise InputError(path, "the recorded training spec should have one model")
    _refuse_clinicadl_checkpoint(maps)
    if layout.neuroexec_dir.is_dir():
        raise InputError(
            maps,
            "this MAPS was trained by a spec, not by `neuroexec train`: run `neuroexec apply SPEC` again, "
            "which resumes its interrupted trainings",
            "MAPS",
        )
    raise InputError(maps, "no training to resume here (not a MAPS `neuroexec train` wrote)", "MAPS")


def _refuse_clinicadl_checkpoint(maps: Path) -> None:
    layout = MapsLayout(maps)
    for split in layout.splits():
        tmp = layout.checkpoint(split).parent
        if (
            all((tmp / name).is_file() for name in CLINICADL_TMP_FILES)
            and not layout.resume_state(split).exists()
        ):
            raise InputError(
                tmp,
                "ClinicaDL's checkpoint of an interrupted training: neuroexec cannot continue it as it would "
                "have gone on (ClinicaDL saves no random-number state nor best-model and early-stopping "
                "history, so no continuation equals its uninterrupted training); continue it with "
                f"`clinicadl train resume {maps}`, or train it again with "
                f"`neuroexec train from_json {layout.maps_json} NEW_MAPS`",
                "MAPS",
            )


def resume_targets(model: str, splits: list[int] | None) -> list[str] | None:
    """The apply targets of `resume --split`: those splits' trainings (and what they need)."""
    return [f"model.{model}.train[split-{s}]" for s in sorted(set(splits))] if splits else None


def check_resume_splits(path: Path, model: str, splits: list[int] | None) -> None:
    """resume --split: splits the recorded training trains (a recorded `splits` cannot be widened: that
    re-runs the model's split step, which retrains the finished splits)."""
    recorded = (tomllib.loads(path.read_text())["models"][model].get("split") or {}).get("splits")
    extra = sorted(set(splits or []) - set(recorded or splits or []))
    if extra:
        raise InputError(
            path,
            f"split(s) {extra} are not trained by this training (its splits: {recorded}); train them with "
            "`neuroexec train ...` into another MAPS",
            "--split",
        )
