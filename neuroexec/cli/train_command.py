"""`neuroexec train image|patch cnn|autoencoder CAPS PREPROCESSING TSV_DIRECTORY MAPS` (ClinicaDL's
`train image`, seed 002) and `neuroexec train classification|regression|reconstruction CAPS
PREPROCESSING_JSON TSV_DIRECTORY MAPS` (ClinicaDL 1.3 and later): argument parsing only; the spec is built
by neuroexec/compat/train_spec.py.

Flags given on the command line override the `--config_file` TOML's values; a flag left out keeps the
config file's value, else the spec's default (each `--help` line says which).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuroexec.cli.flags import (
    HelpFormatter,
    Options,
    add_compute,
    add_run_flags,
    add_splits,
    flag,
    switch,
)
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

# The parts' settings under ClinicaDL's prepare-data names (compat/train_spec.part_record reads them).
MODE_KEYS = ("patch_size", "stride_size", "roi_list", "uncropped_roi", "slice_direction", "slice_mode",
             "discarded_slices")  # fmt: skip
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
    "multi_network",
    "selection_threshold",
    *MODE_KEYS,
)


ALIASES = {"--learning_rate": ("-lr",), "--weight_decay": ("-wd",), "--accumulation_steps": ("-asteps",)}

# `train KIND ...`: ClinicaDL's older page (seed 002) names the input type then the network; ClinicaDL 1.3
# and later name the task, and the preprocessing JSON says image, patch, roi or slice.
INPUT_TYPES = ("image", "patch", "roi", "slice")
TASKS = ("classification", "regression", "reconstruction")


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


def _add_positionals(p: argparse.ArgumentParser) -> None:
    p.add_argument("caps_directory", type=Path, help="CAPS folder")
    p.add_argument(
        "preprocessing_json",
        help="a JSON of CAPS/tensor_extraction/ (extract_<mode>.json), or the whole images of "
        "t1-linear, t2-linear or flair-linear",
    )
    p.add_argument(
        "tsv_directory", type=Path, help="split directory (split-<i>/train.tsv, validation_baseline.tsv)"
    )
    p.add_argument("output_maps", type=Path, help="MAPS folder to write")


def _add_flags(p: argparse.ArgumentParser, kind: str) -> None:
    add_compute(p, 8, train=True)
    g = p.add_argument_group("Training")
    _network_flags(g)
    _part_flags(g, kind)
    _mode_flags(p.add_argument_group("Input parts (ClinicaDL's prepare-data settings; override the JSON's)"))
    _data_flags(g)
    _run_flags(g)
    _start_flags(g)
    add_run_flags(p)


def _network_flags(g: Options) -> None:
    """The numbers of the training, the optimizer, the network, the splits and the best models kept."""
    for name, kind, shown in NUMBERS:
        flag(
            g,
            name,
            *ALIASES.get(name, ()),
            type=kind,
            default=None,
            help=f"{name.strip('-').replace('_', ' ')} (default: {shown})",
        )
    flag(g, "--optimizer", choices=["Adam", "AdamW", "SGD"], default=None, help="optimizer (default: Adam)")
    flag(
        g,
        "--architecture",
        "-a",
        default=None,
        help="Conv5_FC3, Conv4_FC3 or TinyCNN (default: Conv5_FC3)",
    )
    add_splits(g, "splits to train (default: all)")
    flag(
        g,
        "--selection_metrics",
        "-sm",
        nargs="+",
        action="extend",
        default=None,
        help="best models kept (default: loss)",
    )


def _part_flags(g: Options, kind: str) -> None:
    """ClinicaDL's --multi_network / --single_network (every task) and the soft voting's
    --selection_threshold (classification only, as ClinicaDL)."""
    switch(
        g,
        "--multi_network",
        "--single_network",
        "multi_network",
        None,
        "one network per part (patch, roi, slice), soft-voted to the image (default: off, one network)",
    )
    if kind in ("classification", *INPUT_TYPES):
        flag(
            g,
            "--selection_threshold",
            type=float,
            default=None,
            help="soft voting: parts whose validation accuracy is below it get no weight (default: 0.0)",
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


def _data_flags(g: Options) -> None:
    """The label column and the labels kept."""
    flag(g, "--label", default=None, help="label column (default: diagnosis; age for regression)")
    flag(g, "--diagnoses", "-d", nargs="+", action="extend", default=None, help="labels kept (default: all)")


def _run_flags(g: Options) -> None:
    """Determinism and the autoencoder's visualisation."""
    flag(
        g,
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic algorithms (default: off)",
    )
    flag(
        g,
        "--nondeterministic",
        dest="deterministic",
        action="store_false",
        default=argparse.SUPPRESS,
        help="negation of --deterministic (default: see --deterministic)",
    )
    flag(
        g,
        "--visualization",
        action="store_true",
        default=False,
        help="autoencoder: write input/output NIfTIs",
    )


def _start_flags(g: Options) -> None:
    """Where the weights and the settings start from: a transfer source, a ClinicaDL config file."""
    flag(
        g,
        "--transfer_learning_path",
        "--transfer_path",
        "-tp",
        type=Path,
        default=None,
        help="MAPS (either generation) to initialise from (default: none, random initialisation)",
    )
    flag(
        g,
        "--transfer_learning_selection",
        "--transfer_selection_metric",
        "-tsm",
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
    from neuroexec.compat.train_spec import NETWORKS, TrainOptions, preprocessing, train_spec_dict

    options = train_options(args)
    if args.input_type is not None:
        options["input_type"] = args.input_type
    mode = preprocessing(args.caps_directory.resolve(), args.preprocessing_json, options)["mode"]
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
