"""The flags the commands share: ClinicaDL's spellings with their dashed forms (`flag`), the `--gpu /
--no-gpu` pairs (`switch`), the groups of the ClinicaDL-style commands (computation, data, splits,
`--print-spec` / `--quiet`) and the `--target` of plan and apply; `HelpFormatter` shows every default.

>>> p = argparse.ArgumentParser()
>>> flag(p, "--batch_size", type=int, default=8)
>>> p.parse_args(["--batch-size", "2"]).batch_size
2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

TARGET_HELP = (
    "only steps matching GLOB (e.g. 'model.cnn.train[split-1]'), plus what they need; give it several "
    "times for the steps matching any of them"
)


Options = argparse.ArgumentParser | argparse._ArgumentGroup  # where a flag can be added


def add_target(p: argparse.ArgumentParser) -> None:
    """--target GLOB, repeatable (plan and apply)."""
    p.add_argument("--target", metavar="GLOB", action="append", help=TARGET_HELP)


class _SlurmFlag(argparse.Action):
    """--slurm: the command runs its cluster form instead (neuroexec/cluster/cli.py, imported then)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        namespace.slurm = True
        namespace.func = _slurm_command(self.const)


class _SlurmOption(argparse._AppendAction):
    """--slurm-opt: kept, and an error unless --slurm is given too (before or after it)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option: Any = None) -> None:
        super().__call__(parser, namespace, values, option)
        if not getattr(namespace, "slurm", False):
            namespace.func = _without_slurm


def _without_slurm(args: argparse.Namespace) -> int:
    from neuroexec.errors import InputError

    raise InputError(None, "--slurm-opt only goes with --slurm (add --slurm, or drop --slurm-opt)")


def _slurm_command(command: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from neuroexec.cluster import cli

        return cli.cmd_plan_slurm(args) if command == "plan" else cli.cmd_apply_slurm(args)

    return run


def add_slurm(p: argparse.ArgumentParser, command: str) -> None:
    """--slurm and --slurm-opt KEY=VALUE (plan and apply: `command`)."""
    g = p.add_argument_group("SLURM (README: Running on a SLURM cluster)")
    what = (
        "show the SLURM jobs apply --slurm would submit"
        if command == "plan"
        else "submit the steps as SLURM jobs"
    )
    g.add_argument("--slurm", nargs=0, const=command, default=False, action=_SlurmFlag, help=what)
    g.add_argument(
        "--slurm-opt",
        metavar="KEY=VALUE",
        action=_SlurmOption,
        help="a job resource for every job (time=02:00:00) or one job kind (train.gpus=1; kinds: data, "
        "train, evaluate; keys: cpus, gpus, mem, time, partition, account, grace_s, options); over the "
        "spec's [cluster] table",
    )


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


def flag(p: Options, name: str, *aliases: str, **kw: Any) -> None:
    """An option under its ClinicaDL spellings plus their dashed forms (`--batch_size`, `--batch-size`)."""
    names = [name, *aliases]
    for long in [n for n in names if n.startswith("--")]:
        dashed = long.replace("_", "-")
        if dashed not in names:
            names.append(dashed)
    p.add_argument(*names, **kw)


def switch(p: Options, name: str, negation: str, dest: str, default: bool | None, help: str) -> None:
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


def add_compute(
    p: argparse.ArgumentParser, batch_default: int, amp_negation: bool = True, train: bool = False
) -> None:
    """--gpu, --amp, --n_proc, --batch_size; for train (whose config file may set them) "not given" by
    default, the default named in the help."""
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


def add_splits(p: Options, help: str) -> None:
    """--split / -s, repeatable and multi-valued: `-s 0 1` or `-s 0 -s 1`."""
    flag(p, "--split", "-s", type=int, nargs="+", action="extend", default=None, help=help)


def add_data(p: argparse.ArgumentParser, labels: bool) -> None:
    """The data group's flags of predict, interpret and save-tensor (labels: predict's --use_labels,
    --label), their --selection_metrics and the run flags."""
    g = p.add_argument_group("Data management")
    _group_source_flags(g)
    _group_redefinition_flags(g)
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


def _group_source_flags(g: Options) -> None:
    """Where a data group's sessions come from: CAPS, participants, cohorts, diagnoses kept."""
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


def _group_redefinition_flags(g: Options) -> None:
    """Redefining an existing data group, and the leak check of a new one."""
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
