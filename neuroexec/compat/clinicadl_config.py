"""ClinicaDL's `train --config_file` (a TOML in the sections of its train_config.toml, or a JSON of
parameters as maps.json holds them) -> the options of `neuroexec train`, under ClinicaDL's names
(compat/train_options.py).

As ClinicaDL does: a TOML may hold every task's section, only the trained task's is read; [Random_Search]
is ignored; a section or a key its train_config.toml does not have is an error (listed all at once),
and so is a key in another section than its own. A JSON is one flat table of parameters (maps.json's
older names, `model`, `use_cpu`, ..., read as ClinicaDL reads them). The values are checked by
compat/train_spec.py, which refuses the options neuroexec does not implement unless they hold
ClinicaDL's default.

>>> toml = '[Model]\\narchitecture = "Conv5_FC3"\\n[Optimization]\\nepochs = 2\\n[Cross_validation]\\nn_splits = 2\\n'
>>> _ = Path("config.toml").write_text(toml)
>>> read_train_config(Path("config.toml"), "classification")
{'architecture': 'Conv5_FC3', 'epochs': 2, 'n_splits': 2}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from neuroexec.compat.train_options import OPTIONS, SECTIONS, TASKS, section_keys
from neuroexec.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

IGNORED_SECTIONS = ("Random_Search",)  # ClinicaDL's train drops it (random-search's own settings)
# maps.json keys that are not options: the positional arguments, and what ClinicaDL computes from them
# (`train --config_file x.json` replaces the first ones by the command's arguments; from_json reads them).
ARGUMENT_KEYS = ("caps_directory", "tsv_path", "preprocessing_dict", "mode", "network_task")
COMPUTED_KEYS = ("validation", "num_networks", "output_size", "input_size", "neuroexec_version")
# ClinicaDL's read_json: names of older versions.
RENAMED = {"model": "architecture", "multi": "multi_network", "minmaxnormalization": "normalize",
           "num_workers": "n_proc"}  # fmt: skip
NEGATED = {"use_cpu": "gpu", "nondeterministic": "deterministic"}
# Older maps.json: the extraction's keys at the top level (ClinicaDL folds them into preprocessing_dict).
PREPROCESSING_KEYS = ("preprocessing", "use_uncropped_image", "prepare_dl", "custom_suffix", "tracer",
                      "suvr_reference_region", "patch_size", "stride_size", "slice_direction", "slice_mode",
                      "discarded_slices", "roi_list", "uncropped_roi", "roi_custom_suffix", "roi_custom_template",
                      "roi_custom_mask_pattern")  # fmt: skip


def read_train_config(path: Path, task: str = "classification") -> dict[str, Any]:
    """The options a ClinicaDL train config gives for `task` (TOML or JSON, by its suffix)."""
    path = Path(path)
    if path.suffix == ".json":
        params = read_json_parameters(path)
        options = {k: v for k, v in params.items() if k not in (*ARGUMENT_KEYS, *COMPUTED_KEYS)}
    elif path.suffix == ".toml":
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(path, "config file not found", "--config_file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(path, f"not valid TOML: {exc}", "--config_file") from None
        options = _toml_options(doc, path, task)
    else:
        raise InputError(path, "a ClinicaDL config file is a .toml or a .json file", "--config_file")
    if isinstance(options.get("split"), int):
        options["split"] = [options["split"]]
    return options


def _toml_options(doc: dict[str, Any], path: Path, task: str) -> dict[str, Any]:
    problems: list[str] = []
    options: dict[str, Any] = {}
    for section, table in doc.items():
        if section in IGNORED_SECTIONS:
            continue
        if section not in SECTIONS or not isinstance(table, dict):
            problems.append(
                f"[{section}]: not a section of ClinicaDL's train_config.toml ({', '.join(SECTIONS)})"
            )
            continue
        allowed = section_keys(section)
        for key, value in table.items():
            if key not in allowed:
                problems.append(_misplaced(section, key))
            elif section.lower() not in TASKS or section.lower() == task:
                options[key] = value
    if problems:
        raise InputError(
            path, "cannot use this config:\n" + "\n".join(f"  {p}" for p in problems), "--config_file"
        )
    return options


def _misplaced(section: str, key: str) -> str:
    option = OPTIONS.get(key)
    if option is None:
        return f"[{section}] {key}: unknown option"
    home = "a task section" if option.section == "task" else f"[{option.section}]"
    return f"[{section}] {key}: not an option of [{section}] (ClinicaDL reads it in {home})"


def read_json_parameters(path: Path) -> dict[str, Any]:
    """A flat JSON of ClinicaDL parameters (maps.json, a random search's config), older names renamed;
    an unknown key is an error naming it."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(
            path,
            "JSON file not found: give the maps.json of a MAPS (neuroexec's or ClinicaDL's) or a JSON config",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(path, "expected a JSON object of ClinicaDL parameters")
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in NEGATED:
            params[NEGATED[key]] = not value
        else:
            params[RENAMED.get(key, key)] = value
    if "preprocessing_dict" not in params and "mode" in params:
        record = {k: params.pop(k) for k in PREPROCESSING_KEYS if k in params}
        params["preprocessing_dict"] = {"mode": params["mode"], **record}
    unknown = [k for k in params if k not in OPTIONS and k not in (*ARGUMENT_KEYS, *COMPUTED_KEYS)]
    if unknown:
        raise InputError(path, f"unknown ClinicaDL parameter(s): {', '.join(sorted(unknown))}")
    return params
