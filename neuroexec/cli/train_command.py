"""`neuroexec train image|patch cnn|autoencoder CAPS PREPROCESSING TSV_DIRECTORY MAPS` (ClinicaDL's
`train image`, seed 002) and `neuroexec train classification|regression|reconstruction CAPS
PREPROCESSING_JSON TSV_DIRECTORY MAPS` (ClinicaDL 1.3 and later): argument parsing only; the spec is built
by neuroexec/compat/train_spec.py.

Flags given on the command line override the `--config_file` values; a flag left out keeps the config
file's value, else ClinicaDL 1.6.1's default (the task form) or the spec's (the older form); each
`--help` line says which. The options are ClinicaDL's (neuroexec/compat/train_options.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuroexec.cli.flags import HelpFormatter, Options, add_run_flags, flag, switch
from neuroexec.cli.list_models_command import add_list_models
from neuroexec.cli.train_json_command import add_json_commands
from neuroexec.compat.train_options import (
    DEFAULT_ARCHITECTURE,
    FLAG_LOSSES,
    OPTIONS,
    TASK_OPTIONS,
    TASK_SECTION,
    TASKS,
    Option,
    defaults,
)
from neuroexec.errors import InputError

# The parts' settings under ClinicaDL's prepare-data names (compat/train_spec.part_record reads them).
MODE_KEYS = ("patch_size", "stride_size", "roi_list", "uncropped_roi", "slice_direction", "slice_mode",
             "discarded_slices")  # fmt: skip
# Every option's destination: ClinicaDL's name (compat/train_options.py), all "not given" (None) by default.
TRAIN_KEYS = (*(o.key for o in OPTIONS.values() if o.flags), *MODE_KEYS, "visualization")

# `train KIND ...`: ClinicaDL's older page (seed 002) names the input type then the network; ClinicaDL 1.3
# and later name the task, and the preprocessing JSON says image, patch, roi or slice.
INPUT_TYPES = ("image", "patch", "roi", "slice")
GROUPS = {"Computational": "Computational resources", "Reproducibility": "Reproducibility", "Model": "Model",
          "Architecture": "Optimization", "Data": "Data", "Cross_validation": "Cross validation",
          "Optimization": "Optimization", "Transfer_learning": "Transfer learning", "task": "Task",
          "Informations": "Information"}  # fmt: skip
SHOWN = {"split": "all", "transfer_path": "none", "data_augmentation": "none"}
# The older form's defaults where the spec's differ from ClinicaDL 1.6.1's (README: "ClinicaDL's defaults").
OLDER_DEFAULTS = {"gpu": "the GPU when present", "architecture": "Conv5_FC3", "dropout": "0.5",
                  "diagnoses": "all labels", "label": "diagnosis", "loss": "the task's",
                  "transfer_selection_metric": "best_balanced_accuracy when the source has it, else best_loss"}  # fmt: skip


def add_train(sub: argparse._SubParsersAction) -> None:
    """The `train` sub-command in both of ClinicaDL's forms, and its flags (seed 002 plus ClinicaDL's)."""
    p = sub.add_parser(
        "train",
        help="ClinicaDL-style: train image|patch|roi|slice cnn|autoencoder CAPS PREPROCESSING TSV_DIR MAPS, or "
        "train classification|regression|reconstruction CAPS PREPROCESSING_JSON TSV_DIR MAPS",
        description="Train a network as ClinicaDL's `train` does (builds and applies a spec).",
        formatter_class=HelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind in (*INPUT_TYPES, *TASKS):
        older = kind in INPUT_TYPES
        q = kinds.add_parser(
            kind,
            help=f"train {kind} NETWORK CAPS PREPROCESSING TSV_DIR MAPS (ClinicaDL's older form)"
            if older
            else f"train {kind} CAPS PREPROCESSING_JSON TSV_DIR MAPS (ClinicaDL 1.3 and later)",
            description=f"Train a network for {'a ' + kind + '-based input' if older else 'the ' + kind + ' task'}"
            " as ClinicaDL does (builds and applies a spec).",
            formatter_class=HelpFormatter,
        )
        if older:
            q.add_argument("network", choices=["cnn", "autoencoder"], help="network type")
        _add_positionals(q)
        _add_flags(q, kind)
        q.set_defaults(func=cmd_train, input_type=kind if older else None, network=None if older else kind)
    add_json_commands(kinds)
    add_list_models(kinds)  # `train list_models` (ClinicaDL's)


def _add_positionals(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "caps_directory", type=Path, help="CAPS folder (with --multi_cohort: a TSV of cohort, path)"
    )
    p.add_argument(
        "preprocessing_json",
        help="a JSON of CAPS/tensor_extraction/ (extract_<mode>.json), or the whole images of "
        "t1-linear, t2-linear or flair-linear",
    )
    p.add_argument(
        "tsv_directory",
        type=Path,
        help="split directory (split-<i>/train.tsv, validation_baseline.tsv; with --multi_cohort: a TSV of "
        "cohort, path of its split directory, diagnoses)",
    )
    p.add_argument("output_maps", type=Path, help="MAPS folder to write")


def _add_flags(p: argparse.ArgumentParser, kind: str) -> None:
    groups: dict[str, Options] = {}
    for option in OPTIONS.values():
        if option.flags and _has(option, kind):
            title = GROUPS[option.section]
            if title not in groups:
                groups[title] = p.add_argument_group(title)
            _add_option(groups[title], option, kind)
    g = groups["Optimization"]
    flag(
        g,
        "--visualization",
        action="store_true",
        default=False,
        help="autoencoder: write input/output NIfTIs",
    )
    _mode_flags(p.add_argument_group("Input parts (ClinicaDL's prepare-data settings; override the JSON's)"))
    flag(
        p,
        "--config_file",
        "-c",
        type=Path,
        default=None,
        help="ClinicaDL train config (TOML or JSON); the flags given override it (default: none)",
    )
    add_run_flags(p)


def _has(option: Option, kind: str) -> bool:
    """Whether `train KIND` has this option: ClinicaDL's task options per task (the older form: all)."""
    return option.section != TASK_SECTION or kind not in TASKS or option.key in TASK_OPTIONS[kind]


def _shown_default(option: Option, kind: str) -> str:
    if kind not in TASKS:
        return OLDER_DEFAULTS.get(option.key, SHOWN.get(option.key, _text(option.default)))
    if option.key == "architecture":
        return DEFAULT_ARCHITECTURE[kind]
    if option.key in SHOWN:
        return SHOWN[option.key]
    return _text(defaults(kind).get(option.key, option.default))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("", None) or value == [] or value == {}:
        return "none"
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _add_option(g: Options, option: Option, kind: str) -> None:
    """One ClinicaDL option: a switch (with its negation), or a value (several with `many`)."""
    text = f"{option.help} (default: {_shown_default(option, kind)})"
    if option.switch and option.negation:
        switch(g, option.flags[0], option.negation, option.key, None, text)
        return
    if option.switch:
        flag(g, *option.flags, dest=option.key, action="store_true", default=None, help=text)
        return
    choices = option.choices
    if option.key == "loss":
        choices = FLAG_LOSSES.get(kind) or tuple(dict.fromkeys(c for t in TASKS for c in FLAG_LOSSES[t]))
    many = {"nargs": "+", "action": "extend"} if option.many else {}
    flag(
        g, *option.flags, dest=option.key, type=option.kind, choices=choices, default=None, help=text, **many
    )


def _mode_flags(g: Options) -> None:
    """The parts' settings, under ClinicaDL's prepare-data names: with a preprocessing name (the older
    `train patch|roi|slice cnn CAPS t1-linear ...`) they define the parts, with a JSON they replace its
    values (neuroexec extracts the parts itself either way)."""
    flag(g, "--patch_size", "-ps", type=int, default=None, help="patch size (default: 50)")
    flag(g, "--stride_size", "-ss", type=int, default=None, help="patch stride (default: the patch size)")
    flag(g, "--roi_list", nargs="+", default=None,
         help="regions: the <name> of ..._roi-<name>_mask.nii.gz (default: none)")  # fmt: skip
    flag(
        g,
        "--uncropped_roi",
        action="store_true",
        default=None,
        help="regions at full size (default: cropped)",
    )
    flag(g, "--slice_direction", "-sd", type=int, choices=(0, 1, 2), default=None,
         help="0 sagittal, 1 coronal, 2 axial (default: 0)")  # fmt: skip
    flag(g, "--slice_mode", choices=("rgb", "single"), default=None, help="default: rgb")
    flag(g, "--discarded_slices", "-ds", type=int, nargs="+", default=None,
         help="slices left out at the beginning [and the end] (default: 0)")  # fmt: skip


def train_options(args: argparse.Namespace, task: str) -> dict[str, Any]:
    """Flags given on the command line over the config file's values (ClinicaDL's order)."""
    from neuroexec.compat.clinicadl_config import read_train_config

    options = read_train_config(args.config_file, task) if args.config_file else {}
    for key in TRAIN_KEYS:
        value = getattr(args, key, None)
        if value is not None and not (key == "visualization" and not value):
            options[key] = value
    return options


def cmd_train(args: argparse.Namespace) -> int:
    from neuroexec.compat.runner import run_built_spec, spec_path
    from neuroexec.compat.train_spec import (
        NETWORKS,
        TrainOptions,
        extraction_caps,
        preprocessing,
        train_spec_dict,
    )

    options = train_options(args, NETWORKS[args.network])
    if args.input_type is not None:
        options["input_type"] = args.input_type
    caps = extraction_caps(args.caps_directory.resolve(), args.preprocessing_json, options)
    mode = preprocessing(caps, args.preprocessing_json, options)["mode"]
    if args.input_type is not None and mode != args.input_type:
        raise InputError(
            args.preprocessing_json,
            f"this extraction is {mode}-based, but `train {args.input_type}` was asked",
        )
    if args.visualization and NETWORKS[args.network] != "reconstruction":
        raise InputError(
            None,
            "--visualization is for autoencoders (train image autoencoder, or train reconstruction)",
            "--visualization",
        )
    opts = TrainOptions(
        args.network,
        args.caps_directory,
        args.preprocessing_json,
        args.tsv_directory,
        args.output_maps,
        options,
    )
    doc = train_spec_dict(opts)
    return run_built_spec(doc, spec_path(args.output_maps, "train"), args.print_spec, args.quiet)
