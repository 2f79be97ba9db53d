"""ClinicaDL-style commands (predict, interpret, save-tensor, import-maps; train in train_command.py):
argument parsing only; their shared flags are in flags.py, and neuroexec/cli/__init__.py registers them.

Each command builds the equivalent spec (neuroexec/compat/), writes it into `<MAPS>/.neuroexec/` and runs
it through plan/apply; `--print-spec` prints that spec instead. Flags keep ClinicaDL's spellings
(`--batch_size`) and accept dashed forms (`--batch-size`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from neuroexec.cli.flags import HelpFormatter, add_compute, add_data, add_splits, flag

FORMAT = {"formatter_class": HelpFormatter}


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="ClinicaDL-style: predict INPUT_MAPS_DIRECTORY DATA_GROUP",
        description="Predictions and metrics of a data group with a MAPS's best models.",
        **FORMAT,
    )
    p.add_argument("input_maps_directory", type=Path, help="MAPS (neuroexec, ClinicaDL 1.x or older)")
    p.add_argument("data_group", help="data group name")
    add_compute(p, 8)
    add_data(p, labels=True)
    add_splits(p, "splits to use (default: every split of the MAPS)")
    g = p.add_argument_group("Reconstruction")
    flag(g, "--save_tensor", action="store_true", default=False, help="save input/output tensors")
    flag(g, "--save_nifti", action="store_true", default=False, help="save input/output NIfTIs")
    flag(
        g,
        "--save_latent_tensor",
        action="store_true",
        default=False,
        help="save each item's latent tensor (an autoencoder's code) in latent_tensors/",
    )
    p.set_defaults(func=cmd_predict)


def add_interpret(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "interpret",
        help="ClinicaDL-style: interpret INPUT_MAPS_DIRECTORY DATA_GROUP NAME "
        "(or the older: interpret group|individual MODEL_PATH NAME)",
        description="Saliency maps of a data group. The older form `interpret group|individual "
        "MODEL_PATH NAME` is recognised by its first argument (see `interpret group --help`).",
        **FORMAT,
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
    add_compute(p, 8)  # ClinicaDL 1.6.1's interpret: batch size 8
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
    flag(
        g,
        "--save_nifti",
        action="store_true",
        default=False,
        help="also save the individual maps (--save_individual) as NIfTI; the mean maps always are",
    )
    p.set_defaults(func=cmd_interpret)


def add_save_tensor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "save-tensor",
        aliases=["save-tensors"],
        help="ClinicaDL-style: save-tensor MAPS DATA_GROUP",
        description="Save the input and output tensors of a data group.",
        **FORMAT,
    )
    p.add_argument("input_maps_directory", type=Path, help="MAPS")
    p.add_argument("data_group", help="data group name")
    add_compute(p, 2, amp_negation=False)
    add_data(p, labels=False)
    flag(p, "--save_nifti", action="store_true", default=False, help="also save input/output NIfTIs")
    p.set_defaults(func=cmd_save_tensor)


def add_import_maps(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-maps", help="report what neuroexec recognises in a MAPS (either generation)", **FORMAT
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
    save = None
    if args.save_tensor or args.save_nifti or args.save_latent_tensor:  # each writes its own, as ClinicaDL's
        wanted = (("nifti", args.save_nifti), ("latent", args.save_latent_tensor))
        save = {key: True for key, on in wanted if on} | ({} if args.save_tensor else {"tensors": False})
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
    if args.save_nifti and args.save_individual:  # alone, ClinicaDL's --save_nifti writes the mean maps'
        entry["save_nifti"] = True  # NIfTIs, which neuroexec always writes
    return _run_group(args, f"interpret-{args.name}", interpret=[entry])


def cmd_save_tensor(args: argparse.Namespace) -> int:
    return _run_group(args, "save-tensor", save_tensors={"nifti": True} if args.save_nifti else {})


def cmd_import_maps(args: argparse.Namespace) -> int:
    from neuroexec.compat.import_maps import describe_maps, render

    report = describe_maps(args.path)
    print(render(report))
    return 0 if report.usable else 2
