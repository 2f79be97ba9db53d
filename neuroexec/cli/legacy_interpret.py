"""The older `interpret group|individual MODEL_PATH NAME` command (ClinicaDL's older page, seed 004):
argument parsing only; the work is in neuroexec/compat/legacy_interpret.py.

It is told apart from the newer `interpret INPUT_MAPS_DIRECTORY DATA_GROUP NAME` by its first argument
(`group` or `individual`, unless that is a MAPS folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.cli.flags import HelpFormatter, Options, add_run_flags, flag
from neuroexec.maps.layout import MapsLayout

LEVELS = ("group", "individual")


def _positionals(argv: list[str]) -> list[str]:
    return [a for a in argv if not a.startswith("-")]


def wants(argv: list[str]) -> bool:
    """Whether argv is the older form: `interpret group|individual ...` (options may come first)."""
    words = _positionals(argv)
    if len(words) < 2 or words[0] != "interpret" or words[1] not in LEVELS:
        return False
    level = Path(words[1])
    return not MapsLayout(level).is_maps


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="neuroexec interpret",
        description="Saliency maps of a pretrained model (ClinicaDL's older `interpret`): one mean map of a group "
        "of images, or one map per image. Outputs: MODEL_PATH/fold-<i>/gradients/<selection>/NAME/.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("level", choices=LEVELS, help="group: one mean map; individual: one map per session")
    p.add_argument("model_path", type=Path, help="model folder (commandline.json + fold-<i>/, or a MAPS)")
    p.add_argument("name", help="name of the saliency map task")
    g = p.add_argument_group("Computational resources")
    flag(g, "--use_cpu", action="store_true", default=False, help="force the CPU (default: GPU when present)")
    flag(g, "--nproc", type=int, default=2, help="DataLoader workers")
    flag(g, "--batch_size", type=int, default=2, help="batch size")
    g = p.add_argument_group("Model selection")
    flag(
        g,
        "--selection",
        nargs="+",
        action="extend",
        choices=["best_loss", "best_balanced_accuracy"],
        default=None,
        help="best models to explain (default: best_balanced_accuracy; several allowed)",
    )
    _data_flags(p.add_argument_group("Data management"))
    g = p.add_argument_group("Results display")
    flag(g, "--vmax", type=float, default=0.5, help="maximum of the colour scale of 2D maps")
    add_run_flags(p)
    return p


def _data_flags(g: Options) -> None:
    """The images explained: their TSVs and CAPS, the diagnosis read and the one explained, which
    predictions are kept, the affine of the maps."""
    flag(
        g,
        "--tsv_path",
        type=Path,
        default=None,
        help="folder with one TSV per diagnosis (AD.tsv, ...), a split's test folder or a TSV (default: the training TSVs)",
    )
    flag(g, "--caps_dir", type=Path, default=None, help="CAPS (default: the training CAPS)")
    flag(g, "--diagnosis", default="AD", help="diagnosis loaded from tsv_path")
    flag(g, "--target_diagnosis", default=None, help="class the gradients explain (default: --diagnosis)")
    flag(g, "--baseline", action="store_true", default=False, help="read the <diagnosis>_baseline.tsv files")
    flag(
        g,
        "--keep_true",
        dest="keep_true",
        action="store_true",
        default=None,
        help="only correctly classified images (--no-keep_true: only misclassified) (default: all images)",
    )
    flag(
        g,
        "--no-keep_true",
        "--no_keep_true",
        dest="keep_true",
        action="store_false",
        default=argparse.SUPPRESS,
        help="only misclassified images (default: see --keep_true)",
    )
    flag(
        g,
        "--nifti_template_path",
        type=Path,
        default=None,
        help="NIfTI whose affine the 3D maps get (default: the affine of the source images)",
    )
    flag(
        g, "--multi_cohort", action="store_true", default=False, help="caps_dir and tsv_path are cohort TSVs"
    )


def main(argv: list[str]) -> int:
    from neuroexec.compat.legacy_interpret import LegacyOptions, run_legacy

    argv = list(argv)
    argv.remove("interpret")
    args = build_parser().parse_args(argv)
    values = vars(args)
    values["selection"] = list(dict.fromkeys(values["selection"] or ["best_balanced_accuracy"]))
    return run_legacy(LegacyOptions(**values))
