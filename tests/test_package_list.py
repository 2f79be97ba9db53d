"""pyproject.toml lists the packages by hand (kernels/ installs as neuroexec.kernels, which automatic
discovery cannot map): the list must name every package folder of the repository, or a wheel would
silently miss one."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_in_pyproject():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "neuroexec").rglob("__init__.py")}
    folders |= {"neuroexec.kernels", "neuroexec.examples"}
    assert listed == folders
    assert setuptools["package-dir"] == {
        "neuroexec.kernels": "kernels",
        "neuroexec.examples": "spec/examples",
    }
    assert (ROOT / "kernels" / "__init__.py").is_file()
    assert (ROOT / "spec" / "examples" / "__init__.py").is_file()


def test_the_installed_kernels_are_under_the_neuroexec_name():
    import neuroexec.kernels

    assert Path(neuroexec.kernels.__file__).resolve() == ROOT / "kernels" / "__init__.py"
