"""The results page of a spec (`neuroexec report SPEC --html`): one self-contained HTML file, one module
per part of it (curves, group results and their figures, saliency, provenance) and page.py that puts
them together and writes the file. This module only names the page (apply's last lines give its path
without importing matplotlib)."""

from __future__ import annotations

from pathlib import Path

PAGE_SUFFIX = ".report.html"


def default_page(spec_path: Path) -> Path:
    """Where `neuroexec report SPEC --html` writes the page without OUT: beside the spec, named after it
    (two specs of one folder get two pages).

    >>> default_page(Path("project/spec.toml"))
    PosixPath('project/spec.report.html')
    """
    spec_path = Path(spec_path)
    return spec_path.parent / f"{spec_path.stem}{PAGE_SUFFIX}"
