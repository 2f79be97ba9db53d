"""`neuroexec init`: an example project to start from, written into a new or empty folder.

The examples are the specs of the repository's `spec/examples/`, installed as the package data of
`neuroexec.examples` (pyproject's package-dir), so a wheel and a clone offer the same ones. A project is the
spec (its first line a `#:schema` comment naming the schema beside it), that schema (`schema.json`, for
TOML editors: taplo, Even Better TOML), a `.taplo.toml` applying it to every spec of the folder, and a
README.txt with the next commands. Only the standard library is imported: init needs neither torch nor the
spec checks.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from neuroexec import atomic
from neuroexec.errors import InputError

DEFAULT_EXAMPLE = "quickstart"
SCHEMA_FILE = "schema.json"

TAPLO_CONFIG = f"""\
# taplo (and VS Code's Even Better TOML, which runs it) checks and completes the specs of this folder
# against the spec's JSON Schema; `taplo check` runs the same check on the command line.
[[rule]]
include = ["*.toml"]
exclude = [".taplo.toml"]

[rule.schema]
path = "{SCHEMA_FILE}"
"""

README = """\
An example neuroexec project ("{name}"), written by `neuroexec init`.

  {spec_col}the experiment spec: datasets, models (MAPS folders) and data groups
  {schema_col}the spec's JSON Schema (neuroexec {version}), for completion and checks in TOML editors
  {taplo_col}the rule that applies it to every *.toml of this folder (taplo, Even Better TOML)

Next, from this folder (paths in the spec are relative to the spec file):

  neuroexec validate {spec}   check the spec
  neuroexec plan {spec}       what apply would run, and why
  neuroexec apply {spec}      run it (generated data under data/, MAPS under maps/)
  neuroexec report {spec}     where the results are and what they say

After upgrading neuroexec, `neuroexec schema > {schema}` refreshes the schema.
"""


def example_names() -> list[str]:
    """The packaged examples, by name (the spec's file name without `.toml`).

    >>> "quickstart" in example_names()
    True
    """
    folder = resources.files("neuroexec.examples")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


def example_spec(name: str) -> str:
    """The text of the example spec `name`, as `neuroexec init` writes it: a `#:schema` comment first, and
    the example's commands naming the spec as it lies in the project (not under `spec/examples/`)."""
    names = example_names()
    if name not in names:
        raise InputError(
            None, f"--example {name!r} is not a packaged example; choose one of: {', '.join(names)}"
        )
    text = (resources.files("neuroexec.examples") / f"{name}.toml").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#:schema")]
    body = "\n".join(lines).replace("spec/examples/", "")
    return f"#:schema ./{SCHEMA_FILE}\n{body}\n"


def project_files(name: str) -> dict[str, str]:
    """File name -> text of the project `init` writes for example `name`."""
    from neuroexec import __version__

    spec = f"{name}.toml"
    width = max(len(spec), len(SCHEMA_FILE), len(".taplo.toml")) + 3
    readme = README.format(
        name=name,
        spec=spec,
        schema=SCHEMA_FILE,
        version=__version__,
        spec_col=spec.ljust(width),
        schema_col=SCHEMA_FILE.ljust(width),
        taplo_col=".taplo.toml".ljust(width),
    )
    return {
        spec: example_spec(name),
        SCHEMA_FILE: (resources.files("neuroexec") / "spec" / SCHEMA_FILE).read_text(encoding="utf-8"),
        ".taplo.toml": TAPLO_CONFIG,
        "README.txt": readme,
    }


def check_target(directory: Path) -> None:
    """Refuse a folder that holds anything (init never overwrites nor mixes with other files)."""
    if directory.exists() and not directory.is_dir():
        raise InputError(directory, "is a file, not a folder; give the path of a new or empty folder")
    if directory.is_dir():
        entries = sorted(p.name for p in directory.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            count = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}"
            raise InputError(
                directory,
                f"the folder is not empty ({count}: {shown}); neuroexec init writes only into a new or empty "
                "folder: give another one",
            )


def init_project(directory: Path, example: str = DEFAULT_EXAMPLE) -> list[Path]:
    """Write the project of example `example` into `directory` (created if needed); return the files
    written, the spec first. Nothing is written when the example is unknown or the folder not empty."""
    files = project_files(example)
    check_target(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(directory, f"cannot create the folder ({exc.strerror}); give another one") from exc
    written = []
    for name, text in files.items():
        atomic.write_text(directory / name, text)
        written.append(directory / name)
    return written
