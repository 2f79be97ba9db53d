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

from dataclasses import dataclass, field, fields
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
    kind: str, table: dict[str, Any], flags: dict[str, dict[str, str]], defaults: dict[str, Any] | None = None
) -> Resources:
    """The resources of a job of `kind`: `defaults` (the job's own: cpus for its DataLoader workers, a GPU
    for a `device = "cuda"` training), then the spec's `[cluster]` keys, its `[cluster.<kind>]` table, the
    flags for every kind, those for `kind`."""
    values: dict[str, Any] = dict(defaults or {})
    layers = (
        ("[cluster]", {k: v for k, v in table.items() if k not in KINDS}),
        (f"[cluster.{kind}]", table.get(kind) or {}),
        ("--slurm-opt", flags.get("", {})),
        (f"--slurm-opt {kind}.", flags.get(kind, {})),
    )
    for where, layer in layers:
        for key, value in layer.items():
            values[key] = _typed(key, value, where)
    return Resources(**values)


def _typed(key: str, value: Any, where: str) -> Any:
    if key in ("cpus", "gpus", "grace_s"):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = -1
        if number < 0 or isinstance(value, bool):
            raise InputError(None, f"{where} {key} = {value!r}: expected a whole number (0 or more)")
        return number
    if key == "options":
        return tuple(value.split()) if isinstance(value, str) else tuple(str(v) for v in value)
    return str(value)
