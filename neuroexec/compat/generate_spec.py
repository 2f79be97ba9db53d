"""`neuroexec generate KIND ...` (ClinicaDL 1.6.1's `generate`) -> a one-dataset spec whose `generate`
table holds the command's flags, kept in `<GENERATED_CAPS_DIRECTORY>/.neuroexec/generate-<kind>.toml`
and applied like `neuroexec apply` (so the folder's ownership, the plan's removals and the resume hold:
the same command again does nothing, another one generates again).

>>> doc = generate_spec_dict("random", Path("/out"), {"caps_directory": Path("/caps"), "sigma": 1.0})
>>> doc["datasets"]["random"]["generate"]
{'kind': 'random', 'caps_directory': '/caps', 'sigma': 1.0}
>>> doc["datasets"]["random"]["preprocessing"]
't1-linear'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuroexec import records
from neuroexec.compat.runner import run_built_spec
from neuroexec.errors import InputError, SpecError
from neuroexec.spec.generate_kinds import output_preprocessing
from neuroexec.spec.model import Generate

PATH_KEYS = ("caps_directory", "participants_tsv", "mask_path")


def _plain(key: str, value: Any) -> Any:
    if key in PATH_KEYS:
        return str(Path(value).resolve())
    return list(value) if isinstance(value, tuple) else value


def generate_spec_dict(kind: str, output_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The spec (absolute paths): the generated CAPS as dataset `<kind>`, with the preprocessing keys of
    what the kind writes (spec/generate_kinds.output_preprocessing). Options None are left out."""
    given = {k: v for k, v in options.items() if v is not None}
    generate = {"kind": kind, **{k: _plain(k, v) for k, v in given.items()}}
    typed = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    dataset: dict[str, Any] = {"caps": str(output_dir.resolve()), "generate": generate}
    dataset.update(output_preprocessing(Generate(kind=kind, **typed)))
    return {"version": 1, "datasets": {kind: dataset}}


def argument_name(key: str) -> str:
    """The command-line argument a spec key of `generate` comes from.

    >>> argument_name("caps_directory"), argument_name("subjects"), argument_name("mask_path")
    ('CAPS_DIRECTORY', '--n_subjects', '--mask_path')
    """
    return {"caps_directory": "CAPS_DIRECTORY", "subjects": "--n_subjects"}.get(key, f"--{key}")


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _as_arguments(error: SpecError, kind: str, output_dir: Path, options: dict[str, Any]) -> InputError:
    """The spec's problems said with the arguments the user typed (the generated spec is not theirs)."""
    lines = []
    for problem in error.problems:
        parts = problem.key.split(".")
        if parts[2:3] == ["generate"] and len(parts) > 3 and parts[3] in options:
            where = f"{argument_name(parts[3])} {_shown(options[parts[3]])}"
        elif parts[2:3] == ["caps"]:
            where = f"GENERATED_CAPS_DIRECTORY {output_dir}"
        else:
            where = problem.key or "the arguments"
        lines.append(f"  - {where}: {problem.message}")
    n = len(lines)
    head = f"{n} problem{'s' if n != 1 else ''} in the arguments of `neuroexec generate {kind}`:"
    return InputError(None, "\n".join([head, *lines]))


def run_generate(kind: str, output_dir: Path, options: dict[str, Any], print_only: bool, quiet: bool) -> int:
    """Build, then print (print_only) or apply the spec of `neuroexec generate <kind>`."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(output_dir, "GENERATED_CAPS_DIRECTORY is a file, not a folder; give another path")
    doc = generate_spec_dict(kind, output_dir, options)
    try:
        return run_built_spec(doc, records.generate_spec(output_dir.resolve(), kind), print_only, quiet)
    except SpecError as exc:
        raise _as_arguments(exc, kind, output_dir, options) from exc
