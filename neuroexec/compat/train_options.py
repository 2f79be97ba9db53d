"""ClinicaDL 1.6.1's training options, once: the `train classification|regression|reconstruction` flags
(utils/cli_param/train_option.py), the keys of its config TOML (resources/config/train_config.toml: each
key's [section] and its default) and the task-dependent ones ([Classification], [Regression],
[Reconstruction]). The command line (cli/train_command.py), the config reader (compat/clinicadl_config.py)
and the spec builder (compat/train_spec.py) all read this table.

>>> OPTIONS["normalize"].negation, OPTIONS["normalize"].default
('--unnormalize', True)
>>> defaults("regression")["label"], defaults("reconstruction")["loss"], "label" in defaults("reconstruction")
('age', 'MSELoss', False)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TASKS = ("classification", "regression", "reconstruction")
SECTIONS = (
    "Model", "Architecture", "Classification", "Regression", "Reconstruction", "Computational",
    "Reproducibility", "Transfer_learning", "Mode", "Data", "Cross_validation", "Optimization", "Informations",
)  # fmt: skip
TASK_SECTION = "task"  # stands for the trained task's section ([Classification], ...)
OPTIMIZERS = ("Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "NAdam", "RAdam", "RMSprop", "SGD")
REGRESSION_LOSSES = ("L1Loss", "MSELoss", "KLDivLoss", "BCEWithLogitsLoss", "HuberLoss", "SmoothL1Loss")
LOSSES = {
    "classification": ("CrossEntropyLoss", "MultiMarginLoss"),
    "regression": REGRESSION_LOSSES,
    # ClinicaDL's --loss offers the regression losses only, but its config files reach get_criterion,
    # which takes the VAE losses its VAEs need (CVAE_3D_half calls criterion(x, recon, mu, logvar)).
    "reconstruction": (
        *REGRESSION_LOSSES,
        "VAEGaussianLoss",
        "VAEBernoulliLoss",
        "VAEContinuousBernoulliLoss",
    ),
}
# --loss's choices: ClinicaDL's flag offers no VAE loss (its config files and from_json do: LOSSES).
FLAG_LOSSES = {
    task: tuple(name for name in losses if not name.startswith("VAE")) for task, losses in LOSSES.items()
}
AUGMENTATIONS = ("None", "Noise", "Erasing", "CropPad", "Smoothing", "Motion", "Ghosting", "Spike", "BiasField",
                 "RandomBlur", "RandomSwap")  # fmt: skip
# The task sections' defaults (train_config.toml): label and loss differ per task.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "classification": {"selection_metrics": ["loss"], "label": "diagnosis", "label_code": {},
                       "selection_threshold": 0.0, "loss": "CrossEntropyLoss"},
    "regression": {"selection_metrics": ["loss"], "label": "age", "loss": "MSELoss"},
    "reconstruction": {"selection_metrics": ["loss"], "loss": "MSELoss"},
}  # fmt: skip
# What ClinicaDL's "default" architecture is, per task (its task managers' get_default_network).
DEFAULT_ARCHITECTURE = {
    "classification": "Conv5_FC3",
    "regression": "Conv5_FC3",
    "reconstruction": "AE_Conv5_FC3",
}


@dataclass(frozen=True)
class Option:
    """One ClinicaDL option. `flags` are its command-line names (none: config file only), `negation` the
    `--no-...` of a switch; `kind` None is a boolean, `many` a repeatable option (click's multiple=True,
    taken here as `-x a b` or `-x a -x b`)."""

    key: str
    section: str
    default: Any
    flags: tuple[str, ...] = ()
    negation: str | None = None
    kind: type | None = None
    choices: tuple[Any, ...] | None = None
    many: bool = False
    help: str = ""

    @property
    def switch(self) -> bool:
        return self.kind is None


def _o(key: str, section: str, default: Any, *flags: str, **kw: Any) -> Option:
    return Option(key, section, default, flags, **kw)


_TABLE = (
    # [Computational]
    _o("gpu", "Computational", True, "--gpu", negation="--no-gpu",
       help="train on the GPU, an error without one (--no-gpu: the CPU)"),
    _o("n_proc", "Computational", 2, "--n_proc", "-np", kind=int, help="DataLoader workers"),
    _o("batch_size", "Computational", 8, "--batch_size", kind=int, help="batch size"),
    _o("evaluation_steps", "Computational", 0, "--evaluation_steps", "-esteps", kind=int,
       help="also evaluate every this many iterations (0: once per epoch)"),
    _o("fully_sharded_data_parallel", "Computational", False, "--fully_sharded_data_parallel", "-fsdp",
       help="shard the model over the training processes (launch under torchrun)"),
    _o("amp", "Computational", False, "--amp", negation="--no-amp",
       help="mixed precision: float16 with a gradient scaler (GPU only)"),
    # [Reproducibility]
    _o("seed", "Reproducibility", 0, "--seed", kind=int, help="random seed"),
    _o("deterministic", "Reproducibility", False, "--deterministic", negation="--nondeterministic",
       help="deterministic algorithms"),
    _o("compensation", "Reproducibility", "memory", "--compensation", kind=str, choices=("memory", "time"),
       help="how CUDA compensates the deterministic behaviour"),
    _o("track_exp", "Reproducibility", "", "--track_exp", "-te", kind=str, choices=("wandb", "mlflow", ""),
       help="log the metrics to wandb or mlflow"),
    # [Model]
    _o("architecture", "Model", "default", "--architecture", "-a", kind=str,
       help="network (`neuroexec train list_models` lists them)"),
    _o("multi_network", "Model", False, "--multi_network", negation="--single_network",
       help="one network per part (patch, roi, slice), soft-voted to the image"),
    _o("ssda_network", "Model", False, "--ssda_network", help="SSDA training (not supported by neuroexec)"),
    # [Architecture]
    _o("dropout", "Architecture", 0.0, "--dropout", kind=float, help="dropout rate"),
    *(_o(k, "Architecture", v) for k, v in (("latent_space_size", 128), ("feature_size", 1024), ("n_conv", 4),
                                           ("io_layer_channels", 8), ("recons_weight", 1), ("kl_weight", 1),
                                           ("normalization", "batch"))),
    # [Data]
    _o("multi_cohort", "Data", False, "--multi_cohort", negation="--single_cohort",
       help="CAPS_DIRECTORY and TSV_DIRECTORY are TSVs of cohorts (cohort, path; and diagnoses)"),
    _o("diagnoses", "Data", ["AD", "CN"], "--diagnoses", "-d", kind=str, many=True, help="labels kept"),
    _o("baseline", "Data", False, "--baseline", negation="--longitudinal",
       help="train on the baseline sessions only (train_baseline.tsv)"),
    _o("valid_longitudinal", "Data", False, "--valid_longitudinal", negation="--valid_baseline",
       help="validate on every session (validation.tsv), not the baseline ones"),
    _o("normalize", "Data", True, "--normalize", negation="--unnormalize", help="min-max normalisation"),
    _o("data_augmentation", "Data", False, "--data_augmentation", "-da", kind=str, choices=AUGMENTATIONS,
       many=True, help="transforms applied to the training items"),
    _o("sampler", "Data", "random", "--sampler", kind=str, choices=("random", "weighted"),
       help="training sampler"),
    _o("size_reduction", "Data", False),
    _o("size_reduction_factor", "Data", 2),
    *(_o(k, "Data", "", f"--{k}", kind=str, help="SSDA's target data (not supported by neuroexec)")
      for k in ("caps_target", "tsv_target_lab", "tsv_target_unlab", "preprocessing_dict_target")),
    # [Cross_validation]
    _o("n_splits", "Cross_validation", 0, "--n_splits", kind=int,
       help="k of the k-fold split directory (0: the split directory's count)"),
    _o("split", "Cross_validation", [], "--split", "-s", kind=int, many=True, help="splits to train"),
    # [Optimization]
    _o("optimizer", "Optimization", "Adam", "--optimizer", kind=str, choices=OPTIMIZERS, help="optimizer"),
    _o("epochs", "Optimization", 20, "--epochs", kind=int, help="maximum number of epochs"),
    _o("learning_rate", "Optimization", 1e-4, "--learning_rate", "-lr", kind=float, help="learning rate"),
    _o("adaptive_learning_rate", "Optimization", False, "--adaptive_learning_rate", "-alr",
       help="divide the learning rate by 10 on a validation loss plateau"),
    _o("weight_decay", "Optimization", 1e-4, "--weight_decay", "-wd", kind=float, help="weight decay"),
    _o("patience", "Optimization", 0, "--patience", kind=int, help="early stopping patience (0: off)"),
    _o("tolerance", "Optimization", 0.0, "--tolerance", kind=float, help="early stopping tolerance"),
    _o("accumulation_steps", "Optimization", 1, "--accumulation_steps", "-asteps", kind=int,
       help="gradient accumulation steps"),
    _o("profiler", "Optimization", False, "--profiler", negation="--no-profiler",
       help="torch profiler trace of the first steps"),
    _o("save_all_models", "Optimization", False, "--save_all_models", negation="--save_only_best_model",
       help="keep the model of every epoch"),
    # [Transfer_learning]
    _o("transfer_path", "Transfer_learning", False, "--transfer_path", "--transfer_learning_path", "-tp",
       kind=Path, help="MAPS (either generation) to initialise from"),
    _o("transfer_selection_metric", "Transfer_learning", "loss", "--transfer_selection_metric",
       "--transfer_learning_selection", "-tsm", kind=str, help="best model of the source MAPS"),
    _o("nb_unfrozen_layer", "Transfer_learning", 0, "--nb_unfrozen_layer", "-nul", kind=int,
       help="transfer: train only the last this many layers (0: all)"),
    # [Mode]
    _o("use_extracted_features", "Mode", False),
    # the trained task's section
    _o("label", TASK_SECTION, None, "--label", kind=str, help="label column"),
    _o("selection_metrics", TASK_SECTION, ["loss"], "--selection_metrics", "-sm", kind=str, many=True,
       help="best models kept"),
    _o("selection_threshold", TASK_SECTION, 0.0, "--selection_threshold", kind=float,
       help="soft voting: parts below this validation accuracy get no weight"),
    _o("loss", TASK_SECTION, None, "--loss", "-l", kind=str, help="loss"),
    _o("label_code", TASK_SECTION, {}),
    # [Informations]
    _o("emissions_calculator", "Informations", False, "--calculate_emissions",
       negation="--dont_calculate_emissions", help="estimate the training's CO2 emissions (CodeCarbon)"),
)  # fmt: skip
OPTIONS: dict[str, Option] = {o.key: o for o in _TABLE}
# The task options each task has (ClinicaDL's task_specific_options).
TASK_OPTIONS = {task: tuple(TASK_DEFAULTS[task]) for task in TASKS}
# Options neuroexec does not implement: accepted only at ClinicaDL's default.
OUT_OF_SCOPE = {
    "ssda_network": "SSDA (domain adaptation) is not supported by neuroexec",
    "caps_target": "SSDA's target data is not supported by neuroexec",
    "tsv_target_lab": "SSDA's target data is not supported by neuroexec",
    "tsv_target_unlab": "SSDA's target data is not supported by neuroexec",
    "preprocessing_dict_target": "SSDA's target data is not supported by neuroexec",
    "use_extracted_features": "ClinicaDL 1.6.1 reads it nowhere (it has no effect there), so neuroexec refuses it",
}


def task_section(task: str) -> str:
    return task.capitalize()


def defaults(task: str) -> dict[str, Any]:
    """ClinicaDL's value of every option of `task` (its train_config.toml without the other tasks)."""
    out = {o.key: o.default for o in _TABLE if o.section != TASK_SECTION}
    out.update(TASK_DEFAULTS[task])
    return out


def section_keys(section: str) -> tuple[str, ...]:
    """The keys train_config.toml has in `section` (a task's section: that task's options)."""
    task = section.lower()
    if task in TASKS:
        return TASK_OPTIONS[task]
    return tuple(o.key for o in _TABLE if o.section == section)


def is_default(key: str, value: Any, task: str) -> bool:
    """Whether `value` means ClinicaDL's default of `key` ("" / false / [] / {} for its empty ones)."""
    default = defaults(task).get(key, OPTIONS[key].default)
    empty = ("", None, False, [], {}, ())
    return value == default or (default in empty and value in empty)
