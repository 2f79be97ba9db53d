"""ClinicaDL's `train --config_file` TOML -> the options of `neuroexec train` (same names as its flags).

ClinicaDL groups options in sections ([Model], [Optimization], [Computational], [Cross_validation],
[Reproducibility], ...). Options that neuroexec maps are returned; a ClinicaDL option neuroexec does not
implement is accepted only when it holds ClinicaDL's default (so a config written by `clinicadl train
list_models`-style templates still reads), otherwise it is an error naming it, as is any unknown key.

>>> toml = '[Model]\\narchitecture = "Conv5_FC3"\\n[Optimization]\\nepochs = 2\\n[Cross_validation]\\nn_splits = 2\\n'
>>> _ = Path("config.toml").write_text(toml)
>>> read_train_config(Path("config.toml"))
{'architecture': 'Conv5_FC3', 'epochs': 2, 'n_splits': 2}
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from neuroexec.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# ClinicaDL key -> neuroexec `train` option.
MAPPED = {
    "architecture": "architecture",
    "dropout": "dropout",
    "selection_metrics": "selection_metrics",
    "label": "label",
    "gpu": "gpu",
    "n_proc": "n_proc",
    "batch_size": "batch_size",
    "amp": "amp",
    "seed": "seed",
    "deterministic": "deterministic",
    "transfer_path": "transfer_learning_path",
    "transfer_selection_metric": "transfer_learning_selection",
    "diagnoses": "diagnoses",
    "n_splits": "n_splits",
    "split": "split",
    "optimizer": "optimizer",
    "epochs": "epochs",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "patience": "patience",
    "tolerance": "tolerance",
    "accumulation_steps": "accumulation_steps",
    "baseline": "baseline",
    "normalize": "normalize",
    "multi_network": "multi_network",
    "selection_threshold": "selection_threshold",
}
# Mapped options whose ClinicaDL default means "not given" (the command's own default applies).
MAPPED_DEFAULTS: dict[str, Any] = {"multi_network": False, "selection_threshold": 0.0}

# ClinicaDL options neuroexec does not implement, with the value that means "off" / ClinicaDL's default.
DEFAULT_ONLY: dict[str, Any] = {
    "ssda_network": False,
    "latent_space_size": None,
    "feature_size": None,
    "n_conv": None,
    "io_layer_channels": None,
    "recons_weight": None,
    "kl_weight": None,
    "normalization": "BatchNorm",
    "loss": None,
    "evaluation_steps": 0,
    "fully_sharded_data_parallel": False,
    "compensation": "memory",
    "save_all_models": False,
    "track_exp": "",
    "nb_unfrozen_layer": 0,
    "use_extracted_features": False,
    "multi_cohort": False,
    "data_augmentation": False,
    "sampler": "random",
    "size_reduction": False,
    "size_reduction_factor": 2,
    "caps_target": "",
    "tsv_target_lab": "",
    "tsv_target_unlab": "",
    "preprocessing_dict_target": "",
    "adaptive_learning_rate": False,
    "profiler": False,
    "emissions_calculator": False,
    "valid_longitudinal": False,
}
# Losses equivalent to what neuroexec uses per task.
_LOSSES = {"CrossEntropyLoss", "MSELoss"}


def _flatten(doc: dict[str, Any], path: Path) -> dict[str, tuple[str, Any]]:
    """{key: (section, value)} over every section; a key given in two sections is an error."""
    out: dict[str, tuple[str, Any]] = {}
    for section, table in doc.items():
        if not isinstance(table, dict):
            raise InputError(
                path,
                f"top-level key {section!r} is not a [section]; ClinicaDL configs group options in sections",
            )
        for key, value in table.items():
            if key in out:
                raise InputError(path, f"option {key!r} given in both [{out[key][0]}] and [{section}]")
            out[key] = (section, value)
    return out


def read_train_config(path: Path) -> dict[str, Any]:
    """The mapped options of a ClinicaDL train config; InputError naming every unsupported option."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "config file not found", "--config_file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid TOML: {exc}", "--config_file") from None
    options: dict[str, Any] = {}
    problems: list[str] = []
    for key, (section, value) in _flatten(doc, path).items():
        where = f"[{section}] {key}"
        if key in MAPPED_DEFAULTS and value == MAPPED_DEFAULTS[key]:
            continue
        if key in MAPPED:
            options[MAPPED[key]] = value
        elif key == "loss":
            if value not in _LOSSES and value not in ("", None):
                problems.append(f"{where} = {value!r}: neuroexec uses CrossEntropyLoss / MSELoss only")
        elif key in DEFAULT_ONLY:
            default = DEFAULT_ONLY[key]
            if value not in (default, "", None, [], {}) and value is not False:
                problems.append(
                    f"{where} = {value!r}: not supported by neuroexec (only ClinicaDL's default {default!r})"
                )
        else:
            problems.append(f"{where}: unknown option")
    if problems:
        raise InputError(
            path, "cannot use this config:\n" + "\n".join(f"  {p}" for p in problems), "--config_file"
        )
    if isinstance(options.get("split"), int):
        options["split"] = [options["split"]]
    return options
