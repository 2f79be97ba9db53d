"""The docstring examples of neuroexec/ and kernels/ are tests: `pytest` (and so `make test`) collects
each module of those two packages as a doctest module (testpaths in pyproject.toml), as
--doctest-modules would, but only there: tests/ and benchmarks/ keep their own collection. Each example
runs in its own empty temporary folder, made the current directory, so that the relative paths it
writes (`Path("maps/cnn")`) land there; `tmp_path` names that folder. (This file sits at the root
because a conftest applies to the folders below it only; the tests' own setup and fixtures are in
tests/conftest.py and the conftest.py files of tests/' subfolders.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

ROOT = Path(__file__).resolve().parent
DOCTESTED = (ROOT / "neuroexec", ROOT / "kernels")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".py" or file_path.name == "__main__.py":  # importing it runs the CLI
        return None
    if parent.config.getoption("doctestmodules"):  # pytest collects them itself
        return None
    if any(file_path.is_relative_to(package) for package in DOCTESTED):
        return DoctestModule.from_parent(parent, path=file_path)
    return None


@pytest.fixture(autouse=True)
def _doctest_in_empty_folder(request: pytest.FixtureRequest) -> None:
    if not isinstance(request.node, DoctestItem):
        return
    folder = request.getfixturevalue("tmp_path")
    request.getfixturevalue("monkeypatch").chdir(folder)
    request.getfixturevalue("doctest_namespace")["tmp_path"] = folder
