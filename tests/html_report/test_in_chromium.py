"""The results page in a real browser: headless Chromium loads it with no console error and no request
leaving the file, every figure decodes, nilearn's viewers draw their canvases, and the screenshot shows
the plots (many colours). Skipped where Debian's chromium is not installed (`.ci/run` installs it)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.html_report.chromium import CHROMIUM, Chromium, Visit
from tests.html_report.conftest import Project

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (Debian: apt-get install chromium)"
)


def colours(png: bytes) -> int:
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return len(np.unique(picture.reshape(-1, 3).astype(np.int32) @ [65536, 256, 1]))


def assert_offline_with_plots(visit: Visit, images: int) -> None:
    """No console error, no request leaving the file, at least `images` images all decoded, every viewer
    drawn, and a screenshot of many colours."""
    assert visit.errors == []
    assert [url for url in visit.requests if not url.startswith(("file:", "data:", "about:"))] == []
    assert visit.dom["images"] >= images and visit.dom["drawn"] == visit.dom["images"]
    assert all(n > 0 for n in visit.dom["canvases"])
    assert colours(visit.screenshot) > 1000


def test_results_page_loads_offline_without_errors_and_shows_its_plots(project: Project, tmp_path):
    with Chromium(tmp_path / "profile") as browser:
        visit = browser.visit(project.page_path)
    assert_offline_with_plots(visit, images=10)
    assert visit.dom["viewers"] == 2


def test_the_browser_check_sees_errors_and_network_requests(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><img src="http://192.0.2.1/x.png"><script>console.error("drawn wrong");'
        "missing();</script></body></html>"
    )
    with Chromium(tmp_path / "profile", height=400) as browser:
        visit = browser.visit(page, settle_s=0.5)
    assert any("drawn wrong" in e for e in visit.errors)
    assert any("missing is not defined" in e for e in visit.errors)
    assert "http://192.0.2.1/x.png" in visit.requests
    assert colours(visit.screenshot) < 300  # a broken-image icon on white
