"""ClinicaDL-style commands (predict, interpret, save-tensor, import-maps; train in train_command.py):
argument parsing only.

Each command builds the equivalent spec (neuroexec/compat/), writes it into `<MAPS>/.neuroexec/` and runs
it through plan/apply; `--print-spec` prints that spec instead. Flags keep ClinicaDL's spellings
(`--batch_size`) and accept dashed forms (`--batch-size`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: X)` for every flag with a default; flags whose default is "not given" (None) say
    what applies in their help text instead."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool) and "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """--print-spec and --quiet, which every spec-building command has."""
    flag(
        p,
        "--print-spec",
        dest="print_spec",
        action="store_true",
        default=False,
        help="print the equivalent spec (TOML) and exit instead of running it",
    )
    flag(p, "--quiet", action="store_true", default=False, help="no progress bars")


def flag(p: argparse.ArgumentParser | argparse._ArgumentGroup, name: str, *aliases: str, **kw: Any) -> None:
    """An option under its ClinicaDL spelling plus its dashed form (`--batch_size`, `--batch-size`)."""
    names = [name, *aliases]
    dashed = name.replace("_", "-")
    if dashed not in names:
        names.append(dashed)
    p.add_argument(*names, **kw)


def switch(p, name: str, negation: str, dest: str, default: bool | None, help: str) -> None:
    """A `--name / --negation` pair (both spellings of each), e.g. --gpu / --no-gpu."""
    flag(p, name, dest=dest, action="store_true", default=default, help=help)
    flag(
        p,
        negation,
        dest=dest,
        action="store_false",
        default=argparse.SUPPRESS,
        help=f"negation of {name} (default: see {name})",
    )


def add_compute(p, batch_default: int, amp_negation: bool = True, train: bool = False) -> None:
    g = p.add_argument_group("Computational resources")
    switch(
        g,
        "--gpu",
        "--no-gpu",
        "gpu",
        None,
        "use the GPU (--gpu: required, error without one; --no-gpu: CPU) (default: the GPU when present)",
    )
    if amp_negation:
        switch(
            g,
            "--amp",
            "--no-amp",
            "amp",
            None if train else False,
            "mixed precision, GPU only" + (" (default: off)" if train else ""),
        )
    flag(
        g,
        "--n_proc",
        "-np",
        type=int,
        default=None if train else 2,
        help="DataLoader workers" + (" (default: 2)" if train else ""),
    )
    flag(
        g,
        "--batch_size",
        type=int,
        default=None if train else batch_default,
        help="batch size" + (f" (default: {batch_default})" if train else ""),
    )


def add_splits(p: argparse.ArgumentParser | argparse._ArgumentGroup, help: str) -> None:
    """--split / -s, repeatable and multi-valued: `-s 0 1` or `-s 0 -s 1`."""
    flag(p, "--split", "-s", type=int, nargs="+", action="extend", default=None, help=help)


def add_data(p, labels: bool) -> None:
    g = p.add_argument_group("Data management")
    flag(
        g,
        "--caps_directory",
        type=Path,
        default=None,
        help="CAPS of a new data group (a cohort TSV with --multi_cohort) (default: the CAPS the existing group recorded)",
    )
    flag(
        g,
        "--participants_tsv",
        type=Path,
        default=None,
        help="participants TSV, per-diagnosis folder or split `test` folder of a new data group "
        "(default: the sessions the existing group recorded)",
    )
    flag(
        g,
        "--multi_cohort",
        action="store_true",
        default=False,
        help="caps_directory and participants_tsv are TSVs with columns cohort, path",
    )
    flag(
        g,
        "--diagnoses",
        "-d",
        nargs="+",
        action="extend",
        default=None,
        help="keep only these labels (default: all of the TSVs)",
    )
    flag(
        g,
        "--overwrite",
        "-o",
        action="store_true",
        default=False,
        help="redefine an existing data group: the plan shows the results it removes (with the same "
        "sessions, those of --split only)",
    )
    flag(
        g,
        "--skip_leak_check",
        action="store_true",
        default=False,
        help="do not check that the group's participants were not used for training (not good practice)",
    )
    if labels:
        switch(
            g,
            "--use_labels",
            "--no_labels",
            "use_labels",
            True,
            "the data has ground-truth labels (--no_labels: predictions only, no metrics)",
        )
        flag(g, "--label", default=None, help="label column (default: the model's)")
    flag(
        p,
        "--selection_metrics",
        "-sm",
        nargs="+",
        action="extend",
        default=None,
        help="best models to use, e.g. loss BA (default: loss)",
    )
    add_run_flags(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    fmt = {"formatter_class": HelpFormatter}
    from neuroexec.cli import train_command

    train_command.add_command(sub)

    p = sub.add_parser(
        "predict",
        help="ClinicaDL-style: predict INPUT_MAPS_DIRECTORY DATA_GROUP",
        description="Predictions and metrics of a data group with a MAPS's best models.",
        **fmt,
    )
    p.add_argument("input_maps_directory", type=Path, help="MAPS (neuroexec, ClinicaDL 1.x or older)")
    p.add_argument("data_group", help="data group name")
    add_compute(p, 8)
    add_data(p, labels=True)
    add_splits(p, "splits to use (default: every split of the MAPS)")
    g = p.add_argument_group("Reconstruction")
    flag(g, "--save_tensor", action="store_true", default=False, help="save input/output tensors")
    flag(g, "--save_nifti", action="store_true", default=False, help="save input/output NIfTIs")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "interpret",
        help="ClinicaDL-style: interpret INPUT_MAPS_DIRECTORY DATA_GROUP NAME "
        "(or the older: interpret group|individual MODEL_PATH NAME)",
        description="Saliency maps of a data group. The older form `interpret group|individual "
        "MODEL_PATH NAME` is recognised by its first argument (see `interpret group --help`).",
        **fmt,
    )
    p.add_argument("input_maps_directory", type=Path, help="MAPS")
    p.add_argument("data_group", help="data group name")
    p.add_argument("name", help="name of the map set (interpret-<name>/)")
    p.add_argument(
        "method",
        nargs="?",
        default="gradients",
        choices=["gradients", "grad-cam", "smoothgrad"],
        help="saliency method, as ClinicaDL >= 1.3 takes it (smoothgrad is neuroexec's)",
    )
    add_compute(p, 2)
    add_data(p, labels=False)
    g = p.add_argument_group("Other options")
    flag(g, "--target_node", type=int, default=0, help="output node the gradients explain")
    flag(
        g,
        "--level_grad_cam",
        type=int,
        default=None,
        help="ClinicaDL's Grad-CAM layer (default: not given; a value is refused: neuroexec's Grad-CAM "
        "uses the last convolution block)",
    )
    flag(g, "--save_individual", action="store_true", default=False, help="also save one map per image")
    p.set_defaults(func=cmd_interpret)

    p = sub.add_parser(
        "save-tensor",
        aliases=["save-tensors"],
        help="ClinicaDL-style: save-tensor MAPS DATA_GROUP",
        description="Save the input and output tensors of a data group.",
        **fmt,
    )
    p.add_argument("input_maps_directory", type=Path, help="MAPS")
    p.add_argument("data_group", help="data group name")
    add_compute(p, 2, amp_negation=False)
    add_data(p, labels=False)
    flag(p, "--save_nifti", action="store_true", default=False, help="also save input/output NIfTIs")
    p.set_defaults(func=cmd_save_tensor)

    p = sub.add_parser(
        "import-maps", help="report what neuroexec recognises in a MAPS (either generation)", **fmt
    )
    p.add_argument("path", type=Path, help="MAPS folder")
    p.set_defaults(func=cmd_import_maps)


# --- commands ------------------------------------------------------------------------------------


def group_options(args: argparse.Namespace):
    from neuroexec.compat.group_spec import GroupOptions

    return GroupOptions(
        maps=args.input_maps_directory,
        group=args.data_group,
        caps_directory=args.caps_directory,
        participants_tsv=args.participants_tsv,
        multi_cohort=args.multi_cohort,
        diagnoses=args.diagnoses,
        label=getattr(args, "label", None),
        use_labels=getattr(args, "use_labels", True),
        selection_metrics=args.selection_metrics,
        overwrite=args.overwrite,
        skip_leak_check=args.skip_leak_check,
        splits=getattr(args, "split", None),
        compute={
            "gpu": args.gpu,
            "amp": getattr(args, "amp", None) or None,
            "n_proc": args.n_proc,
            "batch_size": args.batch_size,
        },
    )


def _run_group(args: argparse.Namespace, command: str, **kw: Any) -> int:
    from neuroexec.compat.group_spec import RESERVED, check_models, group_spec_dict
    from neuroexec.compat.runner import run_built_spec, spec_path

    opts = group_options(args)
    doc = group_spec_dict(opts, **kw)
    if not args.print_spec and args.data_group not in RESERVED:
        check_models(args.input_maps_directory, args.selection_metrics, opts.splits)
    return run_built_spec(
        doc, spec_path(args.input_maps_directory, command, args.data_group), args.print_spec, args.quiet
    )


def cmd_predict(args: argparse.Namespace) -> int:
    save = {"nifti": True} if args.save_nifti else ({} if args.save_tensor else None)
    return _run_group(args, "predict", predict=True, save_tensors=save)


def cmd_interpret(args: argparse.Namespace) -> int:
    from neuroexec.errors import InputError

    if args.level_grad_cam is not None:
        raise InputError(
            None,
            f"--level_grad_cam {args.level_grad_cam} is not supported: neuroexec's Grad-CAM explains the "
            "activation of the last convolution block (the standard Grad-CAM); leave the option out",
            field="--level_grad_cam",
        )
    entry = {
        "name": args.name,
        "method": args.method,
        "target_node": args.target_node,
        "save_individual": args.save_individual,
    }
    return _run_group(args, f"interpret-{args.name}", interpret=[entry])


def cmd_save_tensor(args: argparse.Namespace) -> int:
    return _run_group(args, "save-tensor", save_tensors={"nifti": True} if args.save_nifti else {})


def cmd_import_maps(args: argparse.Namespace) -> int:
    from neuroexec.compat.import_maps import describe_maps, render

    report = describe_maps(args.path)
    print(render(report))
    return 0 if report.usable else 2
