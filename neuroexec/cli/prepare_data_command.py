"""`neuroexec prepare-data image|patch|roi|slice CAPS_DIRECTORY MODALITY` (ClinicaDL 1.6.1's
`prepare-data`, its arguments and flags): argument parsing only; the spec and the record are built by
neuroexec/compat/prepare_spec.py, and the engine's extract step does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec import records
from neuroexec.cli.flags import HelpFormatter, Options, add_run_flags, flag

MODES = ("image", "patch", "roi", "slice")
# ClinicaDL's MODALITY choices (those neuroexec's datasets cannot read yet are refused by name).
MODALITIES = ("t1-linear", "t2-linear", "t1-extensive", "dwi-dti", "pet-linear", "flair-linear", "custom")
SUVR_REGIONS = ("pons", "cerebellumPons", "pons2", "cerebellumPons2")


def add_prepare_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare-data",
        help="ClinicaDL-style: prepare-data image|patch|roi|slice CAPS_DIRECTORY MODALITY",
        description="Extract PyTorch tensors from the CAPS's NIfTI images, as ClinicaDL's `prepare-data` "
        "(the extract step of the engine: incremental), and write tensor_extraction/<extract_json>.",
        formatter_class=HelpFormatter,
    )
    modes = p.add_subparsers(dest="mode", metavar="MODE", required=True)
    for mode in MODES:
        q = modes.add_parser(
            mode,
            help=f"extract {mode}s",
            description=f"Extract {mode} tensors.",
            formatter_class=HelpFormatter,
        )
        q.add_argument("caps_directory", type=Path, help="CAPS folder of the images (the tensors go there)")
        q.add_argument("modality", choices=MODALITIES, help="preprocessing of the images (Clinica pipeline)")
        _common_flags(q, with_features=mode != "image")
        {"patch": _patch_flags, "slice": _slice_flags, "roi": _roi_flags}.get(mode, lambda g: None)(
            q.add_argument_group(f"{mode.capitalize()} options")
        )
        _modality_flags(q.add_argument_group("Modality options"))
        add_run_flags(q)
        q.set_defaults(func=cmd_prepare_data)


def _common_flags(p: argparse.ArgumentParser, with_features: bool) -> None:
    flag(
        p,
        "--n_proc",
        "-np",
        type=int,
        default=2,
        help="ClinicaDL's workers (accepted; the extraction runs in this process)",
    )
    flag(
        p,
        "--subjects_sessions_tsv",
        "-tsv",
        "--participants_tsv",
        dest="participants_tsv",
        type=Path,
        default=None,
        help="TSV of the sessions to extract (default: every sub-*/ses-* of the CAPS)",
    )
    flag(
        p,
        "--extract_json",
        "-ej",
        default=None,
        help="name of the record written in tensor_extraction/ (default: extract_<timestamp>.json)",
    )
    flag(
        p, "--use_uncropped_image", "-uui", action="store_true", default=False, help="use the uncropped image"
    )
    if with_features:
        flag(
            p,
            "--save_features",
            action="store_true",
            default=False,
            help="also save each part in its own file (ClinicaDL's layout); by default only the images are "
            "saved and the parts cut from them when read",
        )


def _patch_flags(g: Options) -> None:
    flag(g, "--patch_size", "-ps", type=int, default=50, help="patch size")
    flag(g, "--stride_size", "-ss", type=int, default=50, help="stride size")


def _slice_flags(g: Options) -> None:
    flag(g, "--slice_direction", "-sd", type=int, choices=[0, 1, 2], default=0,
         help="0 sagittal, 1 coronal, 2 axial")  # fmt: skip
    flag(g, "--slice_mode", "-sm", choices=["rgb", "single"], default="rgb",
         help="rgb: three identical channels, single: one channel")  # fmt: skip
    flag(
        g,
        "--discarded_slices",
        "-ds",
        type=int,
        nargs="+",
        action="extend",
        default=None,
        help="slices left out at the beginning and the end (one number: both) (default: 0 0)",
    )


def _roi_flags(g: Options) -> None:
    flag(g, "--roi_list", nargs="+", action="extend", default=None, required=True,
         help="regions to extract (mask names: _roi-<name>_mask)")  # fmt: skip
    flag(g, "--roi_uncrop_output", action="store_true", default=False,
         help="keep the whole image size instead of cropping to the mask's bounding box")  # fmt: skip
    flag(g, "--roi_custom_template", "-ct", default="", help="custom MODALITY: the template of the masks")
    flag(
        g,
        "--roi_custom_mask_pattern",
        "-cmp",
        default="",
        help="custom MODALITY: a string the mask names contain",
    )


def _modality_flags(g: Options) -> None:
    flag(g, "--tracer", default=None, help="pet-linear: the tracer (trc-<tracer>)")
    flag(g, "--suvr_reference_region", "-suvr", choices=SUVR_REGIONS, default=None,
         help="pet-linear: the SUVR reference region")  # fmt: skip
    flag(g, "--custom_suffix", "-cn", default="", help="custom: the suffix of the image files")


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from neuroexec.compat.prepare_spec import PrepareOptions, run_prepare

    opts = PrepareOptions(
        mode=args.mode,
        caps_directory=args.caps_directory,
        modality=args.modality,
        participants_tsv=args.participants_tsv,
        extract_json=args.extract_json,
        use_uncropped_image=args.use_uncropped_image,
        save_features=getattr(args, "save_features", False),
        patch_size=getattr(args, "patch_size", 50),
        stride_size=getattr(args, "stride_size", 50),
        slice_direction=getattr(args, "slice_direction", 0),
        slice_mode=getattr(args, "slice_mode", "rgb"),
        discarded_slices=tuple(getattr(args, "discarded_slices", None) or (0, 0)),
        roi_list=tuple(getattr(args, "roi_list", None) or ()),
        roi_uncrop_output=getattr(args, "roi_uncrop_output", False),
        roi_custom_template=getattr(args, "roi_custom_template", ""),
        roi_custom_mask_pattern=getattr(args, "roi_custom_mask_pattern", ""),
        tracer=args.tracer,
        suvr_reference_region=args.suvr_reference_region,
        custom_suffix=args.custom_suffix,
        n_proc=args.n_proc,
    )
    spec_file = records.prepare_data_spec(args.caps_directory.resolve(), args.mode)
    return run_prepare(opts, spec_file, args.print_spec, args.quiet)
