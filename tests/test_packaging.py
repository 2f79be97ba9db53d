"""The wheel: built from a copy of the sources (pip, offline, the test environment's setuptools), it holds
every module, the Triton kernels under neuroexec/kernels/ and no top-level `kernels`, the example specs
(neuroexec/examples/, the files of spec/examples/ and not the data a run generates there), the schema as a
file, the LICENSE in its dist-info and the metadata (SPDX licence, project URLs); unpacked on a path, `init` writes
a project from the examples it carries."""

from __future__ import annotations

import email
import importlib.metadata
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setuptools_version() -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in importlib.metadata.version("setuptools").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (0,)


pytestmark = pytest.mark.skipif(
    setuptools_version() < (77,), reason="the wheel builds offline with the environment's setuptools>=77"
)


def copy_sources(dest: Path) -> Path:
    """What the build reads, with a run's generated data in spec/examples/ (which must stay out)."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        run_outputs = {"data", "maps"} if Path(folder) == ROOT / "spec" / "examples" else set()
        return {n for n in names if n in run_outputs or n == "__pycache__" or n.endswith(".pyc")}

    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("neuroexec", "kernels", "spec"):
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=ignore)
    (dest / "spec" / "examples" / "data" / "demo").mkdir(parents=True)
    (dest / "spec" / "examples" / "data" / "demo" / "participants.tsv").write_text("participant_id\n")
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = copy_sources(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run([*build, "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (found,) = out.glob("neuroexec-*.whl")
    return found


def test_the_wheel_holds_every_module_the_kernels_under_neuroexec_and_no_top_level_kernels(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {n for n in names if n.endswith(".py")}
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "neuroexec").rglob("*.py")}
    expected |= {
        f"neuroexec/kernels/{p.relative_to(ROOT / 'kernels')}" for p in (ROOT / "kernels").rglob("*.py")
    }
    expected.add("neuroexec/examples/__init__.py")
    assert modules == expected
    assert "neuroexec/kernels/__init__.py" in names
    assert {n.split("/")[0] for n in names} == {"neuroexec", wheel.name.split("-py3")[0] + ".dist-info"}
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["neuroexec"]


def test_the_wheel_holds_the_examples_the_schema_and_the_license(wheel):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    examples = sorted((ROOT / "spec" / "examples").glob("*.toml"))
    assert {n for n in names if n.startswith("neuroexec/examples/")} == {
        "neuroexec/examples/__init__.py",
        *(f"neuroexec/examples/{p.name}" for p in examples),
    }
    for p in examples:
        assert archive.read(f"neuroexec/examples/{p.name}") == p.read_bytes()
    schema = archive.read("neuroexec/spec/schema.json")  # the file itself, not the repository's link
    assert schema == (ROOT / "spec" / "schema.json").read_bytes() and json.loads(schema)["properties"]
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert archive.read(license_file) == (ROOT / "LICENSE").read_bytes()


def test_the_wheel_metadata_has_the_spdx_license_the_project_urls_and_the_command(wheel):
    archive = zipfile.ZipFile(wheel)
    (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
    meta = email.message_from_bytes(archive.read(metadata))
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert not any(c.startswith("License ::") for c in meta.get_all("Classifier"))  # the SPDX field instead
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert set(urls) == {"Homepage", "Documentation", "Issues", "Source"}
    assert all(u.startswith("https://") for u in urls.values())
    (entry_points,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "neuroexec = neuroexec.cli:main" in archive.read(entry_points).decode()


def test_init_from_the_installed_wheel_writes_the_examples_it_carries(wheel, tmp_path):
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)  # installing a pure-Python wheel is unpacking it on the path
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import neuroexec; from pathlib import Path\n"
        "from neuroexec.init_project import init_project\n"
        "assert Path(neuroexec.__file__).is_relative_to(sys.argv[1]), neuroexec.__file__\n"
        "print(init_project(Path(sys.argv[2]), 'four_modes')[0])\n"
    )
    # -S: no site-packages, so neither the editable install nor torch can answer in the wheel's place
    run = subprocess.run(
        [sys.executable, "-S", "-c", script, str(target), str(tmp_path / "project")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    spec = Path(run.stdout.strip())
    assert spec == tmp_path / "project" / "four_modes.toml"
    assert spec.read_text().split("\n", 1)[1].strip() == (
        (ROOT / "spec" / "examples" / "four_modes.toml").read_text().replace("spec/examples/", "").strip()
    )
    assert (tmp_path / "project" / "schema.json").read_bytes() == (ROOT / "spec" / "schema.json").read_bytes()
