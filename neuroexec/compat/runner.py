"""Run (or print) a spec built by a ClinicaDL-style command: written as TOML with absolute paths into
`<MAPS>/.neuroexec/<command>[-<group>].toml`, validated, then planned and applied like `neuroexec apply`.

`run_built_spec(doc, Path("maps/.neuroexec/predict-test.toml"), print_only=False)` applies the spec `doc`
and returns the exit code (0 when every step succeeded); the ClinicaDL-style commands are its examples
(tests/cli/). A command re-using data groups counts what a spec recorded of them as done when it is
what the command would do (compat/recorded.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from neuroexec import atomic
from neuroexec.compat.recorded import adopt_recorded
from neuroexec.maps.layout import MapsLayout
from neuroexec.run_spec import run_spec_file
from neuroexec.spec import spec_from_dict
from neuroexec.spec.toml_writer import dumps


def spec_path(maps: Path, command: str, group: str | None = None) -> Path:
    """Where the spec of a command run on `maps` is kept (neuroexec's own folder of the MAPS)."""
    name = command if group is None else f"{command}-{group}"
    return MapsLayout(maps.resolve()).command_spec(name)


def run_built_spec(doc: dict[str, Any], path: Path, print_only: bool = False, quiet: bool = False) -> int:
    """Validate `doc` (every problem at once), then print its TOML (print_only) or write it to `path`
    and plan + apply it."""
    text = dumps(doc)
    spec_from_dict(doc, path)  # refuse a bad spec before writing or running anything
    if print_only:
        print(text, end="")
        return 0
    atomic.write_text(path, text)
    return run_spec_file(path, quiet=quiet, adjust=adopt_recorded if reuses(doc) else None)


def reuses(doc: dict[str, Any]) -> bool:
    """Whether the command evaluates data groups as they are (no --overwrite): then what a spec or
    another command recorded of them counts as done when it is what this command would do
    (compat/recorded.py), so that the spec and the command do not undo each other's records."""
    groups = doc.get("groups") or {}
    return bool(groups) and not any(g.get("overwrite") for g in groups.values())
