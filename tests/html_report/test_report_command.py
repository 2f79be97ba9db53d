"""`neuroexec report SPEC --html [OUT]` and the end of apply: the page lands beside the spec (or at OUT)
even before anything is trained, and apply's last lines say where the results are and how to get the
page."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.html_report.elements import Markup, table
from neuroexec.html_report.metric_tables import Estimate, read_metrics
from neuroexec.run_spec import run_spec_file
from tests.html_report.conftest import read_page

UNTRAINED = """
version = 1
[compute]
device = "cpu"
workers = 0
[datasets.demo]
caps = "data/demo"
generate = { subjects = 6, resolution_mm = 8, seed = 1 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[groups.test]
dataset = "demo"
models = ["cnn"]
"""


@pytest.fixture
def untrained(tmp_path: Path) -> Path:
    (tmp_path / "project").mkdir()
    spec = tmp_path / "project" / "spec.toml"
    spec.write_text(UNTRAINED)
    return spec


def test_report_html_writes_the_page_beside_the_spec_or_at_out(untrained: Path, tmp_path: Path, capsys):
    assert main(["report", str(untrained), "--html"]) == 0
    page = untrained.parent / "spec.report.html"
    assert f"Results page written: {page}" in capsys.readouterr().out
    text = page.read_text()
    assert "No finished training in" in text and "run `neuroexec apply`" in text
    assert [t for level, t in read_page(text).headings if level == 2][-1] == "What produced this page"
    out = tmp_path / "elsewhere" / "page.html"
    out.parent.mkdir()  # the page never creates folders (tests/cli/test_output_path_errors.py)
    assert main(["report", str(untrained), "--html", str(out)]) == 0
    assert out.is_file() and "Model cnn (classification)" in out.read_text()
    assert main(["report", str(untrained), "--html", str(out.parent)]) == 0  # a folder: the page in it
    assert (out.parent / "spec.report.html").is_file()


def test_report_without_html_still_prints_the_summary(untrained: Path, capsys):
    assert main(["report", str(untrained)]) == 0
    printed = capsys.readouterr().out
    assert "model cnn" in printed and "not trained yet" in printed
    assert not (untrained.parent / "spec.report.html").exists()


def test_apply_ends_with_where_the_results_are_and_the_page_command(untrained: Path, capsys):
    assert run_spec_file(untrained, target="dataset.*") == 0
    said = capsys.readouterr().err
    maps = untrained.parent / "maps" / "cnn"
    assert f"model cnn: MAPS {maps}" in said
    assert (
        f"results page: neuroexec report {untrained} --html  (writes {untrained.parent / 'spec.report.html'})"
        in said
    )


def test_metrics_tsv_na_cells_and_missing_ci_read_as_not_a_number(tmp_path: Path):
    path = tmp_path / "m.tsv"
    path.write_text(
        "Metrics\tBA\tPPV\tloss\nValues\t0.75\tN/A\t0.4\nLower bound CI\t0.5\tN/A\tN/A\n"
        "Upper bound CI\t1.0\tN/A\tN/A\nSE\t0.1\tN/A\tN/A\n"
    )
    found = read_metrics(path)
    assert found["BA"].text() == "0.750 [0.500, 1.000]"
    assert found["PPV"].text() == "n/a" and found["loss"].text() == "0.400"
    assert read_metrics(tmp_path / "absent.tsv") == {}


def test_table_cells_are_escaped_unless_marked_up():
    made = table(["a"], [["<b>x</b>"], [Markup("<i>y</i>")]])
    assert "&lt;b&gt;x&lt;/b&gt;" in made and "<i>y</i>" in made
    assert Estimate(float("nan")).text() == "n/a"


def test_two_specs_of_one_folder_get_two_pages(untrained: Path, capsys):
    other = untrained.with_name("other.toml")
    other.write_text(UNTRAINED.replace('"maps/cnn"', '"maps/other"'))
    assert main(["report", str(untrained), "--html"]) == 0
    assert main(["report", str(other), "--html"]) == 0
    first, second = untrained.parent / "spec.report.html", untrained.parent / "other.report.html"
    assert "Results of spec.toml" in first.read_text() and "Results of other.toml" in second.read_text()


def test_a_spec_without_models_ends_without_offering_a_page(tmp_path: Path, capsys):
    spec = tmp_path / "data_only.toml"
    spec.write_text(UNTRAINED.split("[models.cnn]")[0])
    assert run_spec_file(spec) == 0
    said = capsys.readouterr().err
    assert f"dataset demo: CAPS {tmp_path / 'data' / 'demo'}" in said
    assert "--html" not in said and "neuroexec report" not in said
