"""The quickstart's own results page in headless Chromium: spec/examples/quickstart.toml as it is (its
anatomy dataset, model, held-out group and saliency maps), with only its sizes made small (fewer and
coarser subjects, two epochs), applied, then `report --html`. The page loads with no console error and
no request leaving the file, every figure decodes, the saliency viewers draw, and the screenshot shows
the plots. Skipped where Debian's chromium is not installed (`.ci/run` installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from neuroexec.cli import main
from neuroexec.spec.load import parse_toml
from tests.html_report.chromium import CHROMIUM, Chromium
from tests.html_report.conftest import read_page
from tests.html_report.test_in_chromium import assert_offline_with_plots

QUICKSTART = Path(__file__).resolve().parents[2] / "spec/examples/quickstart.toml"
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian: apt-get install chromium)"
)


def small_quickstart(folder: Path) -> Path:
    """The quickstart spec in `folder`, its datasets 12 and 6 subjects at 8 mm, its training 2 epochs."""
    spec = parse_toml(QUICKSTART)
    for name, subjects in (("demo", 12), ("demo-test", 6)):
        spec["datasets"][name]["generate"].update(subjects=subjects, resolution_mm=8)
    spec["models"]["cnn"]["train"]["epochs"] = 2
    path = folder / "quickstart.toml"
    path.write_text(tomli_w.dumps(spec))
    return path


def test_the_quickstart_page_loads_offline_without_errors_and_shows_its_plots(tmp_path, capsys):
    spec = small_quickstart(tmp_path)
    assert main(["apply", str(spec)]) == 0
    said = capsys.readouterr()
    assert "results page: neuroexec report" in said.out + said.err  # the end of apply says how
    assert main(["report", str(spec), "--html"]) == 0
    page_path = tmp_path / "quickstart.report.html"
    page = read_page(page_path.read_text())
    headings = [text for _, text in page.headings]
    assert any("cnn" in h for h in headings) and any("test" in h for h in headings), headings
    assert any("hippocampus" in cell for _, rows in page.tables for row in rows for cell in row)
    with Chromium(tmp_path / "profile") as browser:
        visit = browser.visit(page_path)
    assert_offline_with_plots(visit, images=4)
    assert visit.dom["viewers"] >= 1
