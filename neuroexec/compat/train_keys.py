"""ClinicaDL's training options -> the spec's keys (the parts compat/train_spec.py does not build itself):
ClinicaDL's defaults under the `train TASK` form, the refusals of what neuroexec does not implement, the
architecture and its [Architecture] options, label_code, size reduction, the training's settings
(loss, scheduler, sampler, augmentation, observers...) and the compute ones (device, amp, FSDP).

>>> o = clinicadl_options("regression", {"epochs": 2, "gpu": False})
>>> o["epochs"], o["dropout"], o["diagnoses"], o["label"], architecture("default", "reconstruction")
(2, 0.0, ['AD', 'CN'], 'age', 'AE_Conv5_FC3')
"""

from __future__ import annotations

from typing import Any

from neuroexec.compat.train_options import (
    DEFAULT_ARCHITECTURE,
    LOSSES,
    OPTIONS,
    OUT_OF_SCOPE,
    TASK_OPTIONS,
    TASKS,
    defaults,
    is_default,
)
from neuroexec.errors import InputError
from neuroexec.maps.info import ARCHITECTURE_DEFAULTS, NORMALIZATIONS
from neuroexec.spec.architecture_checks import unread_options

# Options given as they are to the spec's [train] table when not ClinicaDL's default.
TRAIN_FLAGS = ("adaptive_learning_rate", "evaluation_steps", "save_all_models", "profiler")


def flag_name(key: str) -> str:
    """How the user gave an option: its flag (or its config key when it has none)."""
    flags = OPTIONS[key].flags if key in OPTIONS else ()
    return f"{flags[0]} / {key}" if flags else key


def clinicadl_options(task: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options of `train TASK` (ClinicaDL 1.3+'s form): ClinicaDL's default of every option not
    given, then checked (see check_options)."""
    options = {**defaults(task), **{k: v for k, v in given.items() if v is not None}}
    other = [k for t in TASKS if t != task for k in TASK_OPTIONS[t] if k not in TASK_OPTIONS[task]]
    for key in sorted(set(other) & {k for k, v in options.items() if v is not None}):
        raise InputError(None, f"{key} is not an option of the {task} task", flag_name(key))
    check_options(options, task)
    return options


def check_options(o: dict[str, Any], task: str) -> None:
    """Refuse an option neuroexec does not implement when not at ClinicaDL's default, a value outside
    ClinicaDL's choices, and an nb_unfrozen_layer without a transfer."""
    for key, why in OUT_OF_SCOPE.items():
        if key in o and not is_default(key, o[key], task):
            raise InputError(
                None, f"{key} = {o[key]!r}: {why}; leave it out or at its default", flag_name(key)
            )
    for key, value in o.items():
        _check_choice(key, value, task)
    if o.get("nb_unfrozen_layer") and not o.get("transfer_path"):
        raise InputError(
            None,
            "nb_unfrozen_layer freezes layers of a transferred model (ClinicaDL ignores it without one): "
            "give --transfer_path or leave it at 0",
            flag_name("nb_unfrozen_layer"),
        )


def _check_choice(key: str, value: Any, task: str) -> None:
    choices = LOSSES[task] if key == "loss" else OPTIONS[key].choices if key in OPTIONS else None
    if choices is None or value is None or value is False:
        return
    values = value if isinstance(value, (list, tuple)) else [value]
    bad = [v for v in values if v not in choices]
    if bad:
        shown = ", ".join(repr(c) if c == "" else str(c) for c in choices)
        raise InputError(
            None, f"{key} = {bad[0]!r} is not one of ClinicaDL's choices: {shown}", flag_name(key)
        )


def architecture(name: str, task: str) -> str:
    """ClinicaDL's `architecture = "default"`: its task's default network."""
    return DEFAULT_ARCHITECTURE[task] if name == "default" else name


def model_keys(o: dict[str, Any], task: str) -> dict[str, Any]:
    """The model's architecture, architecture_options, dropout, label_code, size_reduction_factor."""
    out: dict[str, Any] = {}
    if o.get("architecture") is not None:
        out["architecture"] = architecture(o["architecture"], task)
    if o.get("dropout") is not None:
        out["dropout"] = float(o["dropout"])
    options = architecture_options(o)
    name = out.get("architecture", DEFAULT_ARCHITECTURE[task])
    for key in unread_options(name, task, options):  # ClinicaDL gives a network only what it takes
        del options[key]
    if options:
        out["architecture_options"] = options
    if task == "classification" and o.get("label_code"):
        out["label_code"] = {str(k): int(v) for k, v in dict(o["label_code"]).items()}
    if o.get("size_reduction"):
        out["size_reduction_factor"] = int(o.get("size_reduction_factor") or 2)
    return out


def architecture_options(o: dict[str, Any]) -> dict[str, Any]:
    """The [Architecture] values other than ClinicaDL's defaults (a null value is the default)."""
    out: dict[str, Any] = {}
    for key, default in ARCHITECTURE_DEFAULTS.items():  # [Architecture] keys (dropout is the model's own)
        value = o.get(key)
        if key == "normalization" and value is not None:
            if value not in NORMALIZATIONS:
                raise InputError(
                    None, f"normalization = {value!r}: expected batch, group or instance", "normalization"
                )
            value = NORMALIZATIONS[value]
        if value is not None and value != default:
            out[key] = value
    return out


def train_keys(o: dict[str, Any], task: str) -> dict[str, Any]:
    """The new [train] keys: loss, sampler, augmentation, the observers, the evaluation and LR flags."""
    out: dict[str, Any] = {}
    loss = o.get("loss")
    if loss and loss != defaults(task)["loss"]:  # ClinicaDL's task default is the spec's default loss
        out["loss"] = loss
    for key in TRAIN_FLAGS:
        if o.get(key):
            out[key] = o[key]
    if o.get("sampler") not in (None, "random"):
        out["sampler"] = o["sampler"]
    augmentation = [a for a in (o.get("data_augmentation") or []) if a != "None"]
    if augmentation:
        out["data_augmentation"] = augmentation
    if o.get("track_exp"):
        out["track_exp"] = o["track_exp"]
    if o.get("emissions_calculator"):
        out["calculate_emissions"] = True
    return out


def compute_keys(o: dict[str, Any], has_gpu: bool) -> dict[str, Any]:
    """compensation, FSDP and amp's dtype (ClinicaDL's amp: float16 with a gradient scaler); a GPU
    asked for where there is none, or amp on the CPU, refused as ClinicaDL refuses them."""
    if o.get("gpu") and not has_gpu:
        raise InputError(
            None,
            "no GPU is available, and ClinicaDL's train uses the GPU unless told otherwise: give --no-gpu "
            "(gpu = false in a config file) to train on the CPU",
            "--gpu",
        )
    if o.get("amp") and o.get("gpu") is False:
        raise InputError(None, "mixed precision (amp) needs the GPU: drop --amp, or give --gpu", "--amp")
    out: dict[str, Any] = {}
    if o.get("amp"):
        out["amp_dtype"] = "float16"
    if o.get("compensation") not in (None, "memory"):
        out["compensation"] = o["compensation"]
    if o.get("fully_sharded_data_parallel"):
        out["fully_sharded_data_parallel"] = True
    return out
