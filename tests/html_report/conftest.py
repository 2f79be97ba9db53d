"""One tiny applied project for the results page's tests (trained once per session, its page written
once): a classifier on two splits interpreted on a held-out cohort, a regression and an autoencoder
whose reconstructions are saved; and a reader of the page (headings, tables, images, viewers)."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.html_report.page import write_page
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = { subjects = 12, resolution_mm = 8, region = "hippocampus", seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 6, resolution_mm = 8, region = "hippocampus", seed = 5, subject_offset = 100 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2 }
train = { epochs = 2, learning_rate = 1e-2 }
[models.age]
maps = "maps/age"
dataset = "demo"
task = "regression"
label = "age"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[models.ae]
maps = "maps/ae"
dataset = "demo"
task = "reconstruction"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[groups.test]
dataset = "other"
models = ["cnn"]
interpret = [{ name = "grad", method = "gradients", target = "AD" }]
[groups.ages]
dataset = "other"
models = ["age"]
[groups.recon]
dataset = "other"
models = ["ae"]
save_tensors = {}
"""


class Page(HTMLParser):
    """What a page holds: its headings (level, text), tables (the heading above, rows of cell texts),
    images (src, alt), viewers (the srcdoc of each iframe) and <pre> texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[int, str]] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.images: list[tuple[str, str]] = []
        self.viewers: list[str] = []
        self.pre: list[str] = []
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        values = dict(attrs)
        if tag in ("h1", "h2", "h3", "h4", "td", "th", "pre"):
            self._text = []
        if tag == "table":
            self.tables.append((self.headings[-1][1] if self.headings else "", []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag == "img":
            self.images.append((values.get("src", ""), values.get("alt", "")))
        elif tag == "iframe":
            self.viewers.append(values.get("srcdoc", ""))

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._text is None:
            return
        text = "".join(self._text).strip()
        if tag in ("h1", "h2", "h3", "h4"):
            self.headings.append((int(tag[1]), text))
        elif tag in ("td", "th"):
            self.tables[-1][1][-1].append(text)
        elif tag == "pre":
            self.pre.append("".join(self._text))
        self._text = None

    def table_under(self, heading: str, nth: int = 0) -> dict[str, dict[str, str]]:
        """The nth table under a heading starting with `heading`, as {row label: {column: cell}}."""
        found = [rows for title, rows in self.tables if title.startswith(heading)]
        header, *rows = found[nth]
        return {row[0]: dict(zip(header[1:], row[1:])) for row in rows}


def read_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@dataclass(frozen=True)
class Project:
    root: Path
    spec: Path
    page_path: Path
    text: str
    page: Page


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("results_page")
    (root / "spec.toml").write_text(SPEC)
    spec = load_spec(root / "spec.toml")
    apply(make_plan(spec), RunContext(reporter=Reporter(quiet=True)))
    path = write_page(spec)
    text = path.read_text()
    return Project(root, root / "spec.toml", path, text, read_page(text))
