"""`neuroexec train image|patch cnn|autoencoder CAPS PREPROCESSING TSV_DIRECTORY MAPS` (ClinicaDL's
`train image`, seed 002): argument parsing only; the spec is built by neuroexec/compat/train_spec.py.

Flags given on the command line override the `--config_file` TOML's values; a flag left out keeps the
config file's value, else the spec's default (each `--help` line says which).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuroexec.cli.clinicadl_commands import HelpFormatter, add_compute, add_run_flags, flag
from neuroexec.errors import InputError

# (flag, type, default shown in --help): the training hyper-parameters, all "not given" (None) by default.
NUMBERS = (
    ("--epochs", int, 20),
    ("--learning_rate", float, 1e-4),
    ("--weight_decay", float, 1e-4),
    ("--dropout", float, 0.5),
    ("--patience", int, 0),
    ("--tolerance", float, 0.0),
    ("--accumulation_steps", int, 1),
    ("--n_splits", int, "the split directory's count"),
    ("--seed", int, 0),
)

TRAIN_KEYS = (
    *(name.strip("-") for name, _, _ in NUMBERS),
    "optimizer",
    "architecture",
    "split",
    "selection_metrics",
    "label",
    "diagnoses",
    "deterministic",
    "amp",
    "gpu",
    "n_proc",
    "batch_size",
    "visualization",
    "transfer_learning_path",
    "transfer_learning_selection",
)


def add_command(sub: argparse._SubParsersAction) -> None:
    """The `train` sub-command and its flags (seed 002 plus ClinicaDL's train options)."""
    p = sub.add_parser(
        "train",
        help="ClinicaDL-style: train image cnn|autoencoder CAPS PREPROCESSING TSV_DIR MAPS",
        description="Train a network as ClinicaDL's `train image` (builds and applies a spec).",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "input_type", choices=["image", "patch"], help="input type (the preprocessing JSON decides patches)"
    )
    p.add_argument("network", choices=["cnn", "autoencoder"], help="network type")
    p.add_argument("caps_directory", type=Path, help="CAPS folder")
    p.add_argument(
        "preprocessing_json", help="'t1-linear' or a JSON of CAPS/tensor_extraction/ (extract_<mode>.json)"
    )
    p.add_argument(
        "tsv_directory", type=Path, help="split directory (split-<i>/train.tsv, validation_baseline.tsv)"
    )
    p.add_argument("output_maps", type=Path, help="MAPS folder to write")
    add_compute(p, 8, train=True)
    g = p.add_argument_group("Training")
    for name, kind, shown in NUMBERS:
        flag(g, name, type=kind, default=None, help=f"{name.strip('-').replace('_', ' ')} (default: {shown})")
    flag(g, "--optimizer", choices=["Adam", "AdamW", "SGD"], default=None, help="optimizer (default: Adam)")
    flag(g, "--architecture", default=None, help="Conv5_FC3, Conv4_FC3 or TinyCNN (default: Conv5_FC3)")
    flag(
        g,
        "--split",
        type=int,
        nargs="+",
        action="extend",
        default=None,
        help="splits to train (default: all)",
    )
    flag(
        g,
        "--selection_metrics",
        nargs="+",
        action="extend",
        default=None,
        help="best models kept (default: loss)",
    )
    flag(g, "--label", default=None, help="label column (default: diagnosis)")
    flag(g, "--diagnoses", nargs="+", action="extend", default=None, help="labels kept (default: all)")
    flag(
        g,
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic algorithms (default: off)",
    )
    flag(
        g,
        "--visualization",
        action="store_true",
        default=False,
        help="autoencoder: write input/output NIfTIs",
    )
    flag(
        g,
        "--transfer_learning_path",
        type=Path,
        default=None,
        help="MAPS (either generation) to initialise from (default: none, random initialisation)",
    )
    flag(
        g,
        "--transfer_learning_selection",
        default=None,
        help="best model of the source: best_loss or best_balanced_accuracy (default: the latter when the source has it)",
    )
    flag(
        g,
        "--config_file",
        "-c",
        type=Path,
        default=None,
        help="ClinicaDL train config TOML, flags override it (default: none)",
    )
    add_run_flags(p)
    p.set_defaults(func=cmd_train)


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line over the config file's values."""
    from neuroexec.compat.clinicadl_config import read_train_config

    options = read_train_config(args.config_file) if args.config_file else {}
    for key in TRAIN_KEYS:
        value = getattr(args, key, None)
        if value is not None and not (key == "visualization" and not value):
            options[key] = value
    return options


def cmd_train(args: argparse.Namespace) -> int:
    from neuroexec.compat.runner import run_built_spec, spec_path
    from neuroexec.compat.train_spec import TrainOptions, preprocessing, train_spec_dict

    mode = preprocessing(args.caps_directory.resolve(), args.preprocessing_json)["mode"]
    if mode != args.input_type:
        raise InputError(
            args.preprocessing_json,
            f"this extraction is {mode}-based, but `train {args.input_type}` was asked",
        )
    if args.visualization and args.network != "autoencoder":
        raise InputError(
            None, "--visualization is for autoencoders (train image autoencoder)", "--visualization"
        )
    opts = TrainOptions(
        args.network,
        args.caps_directory,
        args.preprocessing_json,
        args.tsv_directory,
        args.output_maps,
        train_options(args),
    )
    doc = train_spec_dict(opts)
    return run_built_spec(doc, spec_path(args.output_maps, "train"), args.print_spec, args.quiet)
