"""Output paths that cannot be written (a missing folder, a file where a folder should be, a folder the
system refuses) end in one `error:` line naming the path, exit 2, not a traceback; the results page
never creates folders."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from neuroexec.cli import main

SPEC = """
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
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "q.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("mine")
    return path


def _refused(argv: list[str], capsys, *said: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error: ")
    assert all(s in err for s in said), err
    return err


def test_report_page_in_a_missing_folder_is_refused_and_the_folder_not_created(spec, capsys):
    missing = spec.parent / "nonexist" / "dir"
    _refused(["report", str(spec), "--html", str(missing / "r.html")], capsys, str(missing), "does not exist")
    assert not missing.parent.exists()


def test_report_page_under_a_file_is_refused(spec, afile, capsys):
    _refused(["report", str(spec), "--html", str(afile / "x.html")], capsys, str(afile), "is a file")
    assert afile.read_text() == "mine"


def test_report_page_where_the_system_refuses_to_write(spec, capsys):
    _refused(["report", str(spec), "--html", "/proc/x.html"], capsys, "/proc/x.html", "cannot write")


def test_init_where_no_folder_can_be_made(capsys):
    _refused(["init", "/proc/xx"], capsys, "/proc/xx", "cannot create the folder")


def test_generate_into_a_file(afile, capsys):
    _refused(["generate", "shepplogan", str(afile), "--n_subjects", "1"], capsys, str(afile), "is a file")
    assert afile.read_text() == "mine"


def test_an_os_error_the_checks_missed_is_one_line_and_debug_shows_the_traceback(spec, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "/somewhere/file")

    monkeypatch.setattr("neuroexec.cli.report_command.load_spec", refuse)
    err = _refused(["report", str(spec)], capsys)
    assert err.strip() == "error: /somewhere/file: Input/output error"
    assert main(["report", str(spec), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err
