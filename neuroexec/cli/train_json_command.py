"""`neuroexec train from_json CONFIG_JSON MAPS [--split]` and `neuroexec train resume MAPS [--split]`
(ClinicaDL's): argument parsing only; the work is in neuroexec/compat/from_json.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neuroexec.cli.flags import HelpFormatter, add_run_flags, flag


def add_json_commands(kinds: argparse._SubParsersAction) -> None:
    """`train from_json` and `train resume`, beside train's KIND sub-commands."""
    q = kinds.add_parser(
        "from_json",
        help="train from_json CONFIG_JSON MAPS: train what a JSON of ClinicaDL parameters (a maps.json) says",
        description="Train what a JSON of ClinicaDL parameters says (a maps.json, a random search's config): "
        "its CAPS, split directory, extraction and task, ClinicaDL's defaults for what it lacks.",
        formatter_class=HelpFormatter,
    )
    q.add_argument("config_json", type=Path, help="JSON of ClinicaDL parameters (e.g. a MAPS's maps.json)")
    q.add_argument("output_maps", type=Path, help="MAPS folder to write")
    _split_flag(q, "splits to train (default: all)")
    add_run_flags(q)
    q.set_defaults(func=cmd_from_json)
    q = kinds.add_parser(
        "resume",
        help="train resume MAPS: continue the interrupted trainings of a MAPS `neuroexec train` wrote",
        description="Continue the trainings `neuroexec train` (or `train from_json`) started in a MAPS: "
        "interrupted splits resume after their last epoch, bit-identical to an uninterrupted run, and "
        "the splits it chose that are not started are trained.",
        formatter_class=HelpFormatter,
    )
    q.add_argument("input_maps", type=Path, help="MAPS folder of the training")
    _split_flag(q, "splits to resume (default: all)")
    flag(q, "--quiet", action="store_true", default=False, help="no progress bars")
    q.set_defaults(func=cmd_resume)


def _split_flag(p: argparse.ArgumentParser, help: str) -> None:
    flag(p, "--split", "-s", type=int, nargs="+", action="extend", default=None, help=help)


def cmd_from_json(args: argparse.Namespace) -> int:
    from neuroexec.compat.from_json import TRAIN_SPEC, from_json_options
    from neuroexec.compat.runner import run_built_spec, spec_path
    from neuroexec.compat.train_spec import train_spec_dict

    doc = train_spec_dict(from_json_options(args.config_json, args.output_maps, args.split))
    return run_built_spec(doc, spec_path(args.output_maps, TRAIN_SPEC), args.print_spec, args.quiet)


def cmd_resume(args: argparse.Namespace) -> int:
    from neuroexec.compat.from_json import check_resume_splits, recorded_train_spec, resume_targets
    from neuroexec.run_spec import run_spec_file

    path, model = recorded_train_spec(args.input_maps.resolve())
    check_resume_splits(path, model, args.split)
    return run_spec_file(path, target=resume_targets(model, args.split), quiet=args.quiet)
