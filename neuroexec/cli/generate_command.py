"""`neuroexec generate trivial|random|shepplogan|hypometabolic|artifacts ...` (ClinicaDL 1.6.1's
`generate`, its arguments and flags): argument parsing only; neuroexec/compat/generate_spec.py builds the
one-dataset spec and the engine's generate step writes the CAPS (data/generate_kinds.py).

neuroexec's own flags: `--seed` (every draw comes from it: the same command writes the same bytes) and,
for hypometabolic, `--mask_path` (the pathology mask, instead of ClinicaDL's downloaded one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.cli.flags import HelpFormatter, Options, add_run_flags, flag, switch
from neuroexec.generate_keys import READS

SUVR_REGIONS = ("pons", "cerebellumPons", "pons2", "cerebellumPons2")
KINDS = {
    "trivial": "images of a CAPS with one hemisphere atrophied (AD: mask-1, CN: mask-2)",
    "random": "Gaussian noise added to the first image of a CAPS (labels no model can learn)",
    "shepplogan": "2D Shepp-Logan phantoms of three subtypes",
    "hypometabolic": "pet-linear images with the hypometabolism of a pathology",
    "artifacts": "images of a CAPS with TorchIO's motion, contrast and noise artifacts",
}
# The flags of each kind beyond the positional arguments and the common --n_proc and --seed: the keys
# it reads (neuroexec/generate_keys.py READS, ClinicaDL's option names, `subjects` spelt --n_subjects)
FLAGS = {kind: tuple(k for k in keys if k not in ("caps_directory", "seed")) for kind, keys in READS.items()}


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="ClinicaDL-style: generate a synthetic CAPS (trivial, random, shepplogan, hypometabolic, artifacts)",
        description="Generate a synthetic CAPS as ClinicaDL's `generate` does, through a one-dataset spec "
        "applied like `neuroexec apply` (kept in GENERATED_CAPS_DIRECTORY/.neuroexec/).",
        formatter_class=HelpFormatter,
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text in KINDS.items():
        q = kinds.add_parser(kind, help=text, description=text[:1].upper() + text[1:] + ".",
                             formatter_class=HelpFormatter)  # fmt: skip
        if kind != "shepplogan":
            q.add_argument("caps_directory", type=Path, help="CAPS folder whose images are read")
        q.add_argument("generated_caps_directory", type=Path, help="CAPS folder where the dataset is written")
        flag(
            q,
            "--n_proc",
            "-np",
            type=int,
            default=2,
            help="processes writing the images (same bytes for any number)",
        )
        flag(q, "--seed", type=int, default=0, help="neuroexec: seed of every random draw")
        for name in FLAGS[kind]:
            OPTIONS[name](q, kind)
        add_run_flags(q)
        q.set_defaults(func=cmd_generate)


def _two(name: str, default: list[float], text: str):
    return lambda q, _: flag(
        q, f"--{name}", type=float, nargs=2, default=default, metavar=("MIN", "MAX"), help=text
    )


def _preprocessing(q: Options, kind: str) -> None:
    flag(q, "--preprocessing", choices=["t1-linear", "t1-extensive", "pet-linear"], required=True,
         help="preprocessing of the images read")  # fmt: skip


def _n_subjects(q: Options, kind: str) -> None:
    what = "images" if kind == "hypometabolic" else "subjects in each class"
    flag(
        q,
        "--n_subjects",
        dest="subjects",
        type=int,
        default=300,
        help=f"number of {what} of the synthetic dataset",
    )


def _sigma(q: Options, kind: str) -> None:
    if kind == "random":
        flag(q, "--sigma", type=float, default=0.5, help="standard deviation of the Gaussian noise")
    else:
        flag(q, "--sigma", type=int, default=5, help="sigma of the Gaussian filter smoothing the mask")


def _mask_path(q: Options, kind: str) -> None:
    text = (
        "folder holding mask-1.nii and mask-2.nii (default: hemisphere grey-matter masks of the MNI152 template)"
        if kind == "trivial"
        else "neuroexec: the pathology mask (default: ClinicaDL's cache ~/.cache/clinicadl/ressources/masks_hypo/)"
    )
    flag(q, "--mask_path", type=Path, default=None, help=text)


def _distribution(label: str, short: str, default: list[float]):
    return lambda q, _: flag(q, f"--{label}_subtypes_distribution", short, type=float, nargs=3, default=default,
                             help=f"probability of each subtype in label {label.upper()}")  # fmt: skip


def _toggle(name: str, text: str):
    return lambda q, _: switch(q, f"--{name}", f"--no-{name}", name, False, text)


OPTIONS = {
    "preprocessing": _preprocessing,
    "participants_tsv": lambda q, _: flag(
        q, "--participants_tsv", type=Path, default=None, help="TSV of the participants/sessions to read"
    ),  # fmt: skip
    "use_uncropped_image": lambda q, _: flag(
        q,
        "--use_uncropped_image",
        "-uui",
        action="store_true",
        default=False,
        help="use the uncropped images",
    ),  # fmt: skip
    "tracer": lambda q, _: flag(q, "--tracer", default=None, help="pet-linear: the tracer (trc-<tracer>)"),
    "suvr_reference_region": lambda q, _: flag(
        q,
        "--suvr_reference_region",
        "-suvr",
        choices=SUVR_REGIONS,
        default=None,
        help="pet-linear: the SUVR reference region",
    ),  # fmt: skip
    "subjects": _n_subjects,
    "mask_path": _mask_path,
    "atrophy_percent": lambda q, _: flag(
        q, "--atrophy_percent", type=float, default=60.0, help="percentage of atrophy applied"
    ),  # fmt: skip
    "mean": lambda q, _: flag(q, "--mean", type=float, default=0.0, help="mean of the Gaussian noise"),
    "sigma": _sigma,
    "extract_json": lambda q, _: flag(
        q,
        "--extract_json",
        "-ej",
        default=None,
        help="name of the extraction record (default: extract_shepplogan.json)",
    ),  # fmt: skip
    "image_size": lambda q, _: flag(
        q, "--image_size", type=int, default=128, help="size in pixels of the images"
    ),
    "cn_subtypes_distribution": _distribution("cn", "-csd", [1.0, 0.0, 0.0]),
    "ad_subtypes_distribution": _distribution("ad", "-asd", [0.05, 0.85, 0.10]),
    "smoothing": _toggle("smoothing", "random smoothing of the images"),
    "pathology": lambda q, _: flag(
        q,
        "--pathology",
        "-p",
        choices=["ad", "bvftd", "lvppa", "nfvppa", "pca", "svppa"],
        default="ad",
        help="pathology applied",
    ),  # fmt: skip
    "anomaly_degree": lambda q, _: flag(
        q,
        "--anomaly_degree",
        "-anod",
        type=float,
        default=30.0,
        help="degree of hypometabolism applied (percent)",
    ),  # fmt: skip
    "contrast": _toggle("contrast", "a random gamma contrast change"),
    "gamma": _two("gamma", [-0.2, -0.05], "range of the log-gamma, between -1 and 1"),
    "motion": _toggle("motion", "random motion"),
    "translation": _two("translation", [2.0, 4.0], "range in mm of the translations"),
    "rotation": _two("rotation", [2.0, 4.0], "range in degrees of the rotations"),
    "num_transforms": lambda q, _: flag(q, "--num_transforms", type=int, default=2, help="number of motions"),
    "noise": _toggle("noise", "random Gaussian noise"),
    "noise_std": _two("noise_std", [5.0, 15.0], "range of the noise's standard deviation"),
}


def cmd_generate(args: argparse.Namespace) -> int:
    from neuroexec.compat.generate_spec import run_generate

    options = {name: getattr(args, name) for name in FLAGS[args.kind]}
    if args.kind != "shepplogan":
        options["caps_directory"] = args.caps_directory
    options["seed"], options["n_proc"] = args.seed, args.n_proc
    return run_generate(args.kind, args.generated_caps_directory, options, args.print_spec, args.quiet)
