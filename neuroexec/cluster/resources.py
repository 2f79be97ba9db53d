"""What a SLURM job asks for, per job kind: `data` (generate, extract, split, group define), `train`
(one training per array task) and `evaluate` (predict, save-tensors, interpret per model and split).

Settings come from the spec's `[cluster]` table (keys for every kind at its top, a table per kind that
overrides them) and then from `--slurm-opt KEY=VALUE` flags (`partition=gpu` for every kind,
`train.gpus=1` for one); what neither sets keeps the defaults below.

>>> settings = parse_options(["train.gpus=2", "time=01:00:00"])
>>> settings
{'train': {'gpus': '2'}, '': {'time': '01:00:00'}}
>>> r = resources_for("train", {}, settings)
>>> (r.gpus, r.time, r.cpus)
(2, '01:00:00', 1)
>>> r.sbatch_lines()[:3]
['--cpus-per-task=1', '--gpus=2', '--time=01:00:00']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from neuroexec.errors import InputError

KINDS = ("data", "train", "evaluate")
STEP_KINDS = {  # the job kind of each step kind
    "generate": "data",
    "extract": "data",
    "split": "data",
    "group": "data",
    "train": "train",
    "predict": "evaluate",
    "save-tensors": "evaluate",
    "save_tensors": "evaluate",
    "interpret": "evaluate",
}
# sbatch --time's forms (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) and --mem's (an integer, K/M/G/T)
TIME = re.compile(r"\d+(:\d+){0,2}|\d+-\d+(:\d+){0,2}|(?i:unlimited|infinite)")
MEM = re.compile(r"\d+[KMGTkmgt]?")
DEFAULT_GRACE_S = 120  # SIGTERM this long before the time limit (the training checkpoints and requeues)


@dataclass(frozen=True)
class Resources:
    """One job's sbatch options (None: SLURM's default, the partition's)."""

    cpus: int = 1
    gpus: int = 0
    mem: str | None = None  # sbatch --mem: "16G"
    time: str | None = None  # sbatch --time: "20:00:00"
    partition: str | None = None
    account: str | None = None
    grace_s: int = DEFAULT_GRACE_S
    options: tuple[str, ...] = field(default=())  # any other sbatch options: ("--qos=gpu-t3",)

    def sbatch_lines(self) -> list[str]:
        """The sbatch options these resources make (without the requeue and signal ones)."""
        lines = [f"--cpus-per-task={self.cpus}"]
        if self.gpus:
            lines.append(f"--gpus={self.gpus}")
        named = {"time": self.time, "mem": self.mem, "partition": self.partition, "account": self.account}
        lines += [f"--{key}={value}" for key, value in named.items() if value]
        return lines + list(self.options)


KEYS = {f.name for f in fields(Resources)}


def parse_options(pairs: list[str] | None) -> dict[str, dict[str, str]]:
    """`--slurm-opt` values (`KEY=VALUE` or `KIND.KEY=VALUE`) as {kind or "": {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        kind, dot, name = key.rpartition(".")
        if not sep or not name or (dot and kind not in KINDS) or name not in KEYS:
            raise InputError(
                None,
                f"--slurm-opt {pair!r}: expected KEY=VALUE or KIND.KEY=VALUE with KIND one of "
                f"{', '.join(KINDS)} and KEY one of {', '.join(sorted(KEYS))} (e.g. train.gpus=1)",
            )
        out.setdefault(kind, {})[name] = value
    return out


def resources_for(
    kind: str,
    table: dict[str, Any],
    flags: dict[str, dict[str, str]],
    defaults: dict[str, Any] | None = None,
    spec: Path | None = None,
) -> Resources:
    """The resources of a job of `kind`: `defaults` (the job's own: cpus for its DataLoader workers, a GPU
    for a `device = "cuda"` training), then the spec's `[cluster]` keys, its `[cluster.<kind>]` table, the
    flags for every kind, those for `kind`. A bad value is an InputError naming the key (`spec`: the
    file of the table) and the value."""
    values: dict[str, Any] = dict(defaults or {})
    layers = (
        ("cluster.{key}", spec, {k: v for k, v in table.items() if k not in KINDS}),
        (f"cluster.{kind}.{{key}}", spec, table.get(kind) or {}),
        ("--slurm-opt {key}={value}", None, flags.get("", {})),
        (f"--slurm-opt {kind}.{{key}}={{value}}", None, flags.get(kind, {})),
    )
    for where, path, layer in layers:
        for key, value in layer.items():
            try:
                values[key] = _typed(key, value)
            except ValueError as exc:
                name = where.format(key=key, value=value)
                shown = name if name.startswith("--") else f"{name} = {value!r}"
                raise InputError(path, f"{shown}: {exc}") from None
    return Resources(**values)


def check(table: dict[str, Any], flags: dict[str, dict[str, str]], spec: Path | None = None) -> None:
    """Every kind's resources from the `[cluster]` table and the flags, checked before any job is made
    (a bad `time` would otherwise fail at sbatch, after the jobs before it were submitted)."""
    for kind in KINDS:
        resources_for(kind, table, flags, spec=spec)


def _typed(key: str, value: Any) -> Any:
    """The value of `key`, or ValueError saying what was expected."""
    if key in ("cpus", "gpus", "grace_s"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < 0 or isinstance(value, bool):
            raise ValueError("expected a whole number (0 or more)")
        return number
    if key == "options":
        return tuple(value.split()) if isinstance(value, str) else tuple(str(v) for v in value)
    text = str(value).strip()
    if key == "time" and not TIME.fullmatch(text):
        raise ValueError(
            "expected a SLURM time limit: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED "
            '(e.g. "20:00:00" or "2-00:00:00")'
        )
    if key == "mem" and not MEM.fullmatch(text):
        raise ValueError(
            'expected a SLURM memory size: a whole number with an optional K, M, G or T (e.g. "16G")'
        )
    return text
