"""`neuroexec init [--example NAME] DIR`: an example project that validates as written, from the examples
packaged in neuroexec.examples; a folder with files in it, or an unknown example, is refused with nothing
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuroexec.cli import main
from neuroexec.init_project import example_names
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.spec.load import SCHEMA_PATH

REPO_EXAMPLES = Path(__file__).resolve().parents[2] / "spec" / "examples"


def test_the_packaged_examples_are_the_repository_specs():
    assert example_names() == sorted(p.stem for p in REPO_EXAMPLES.glob("*.toml"))
    assert "quickstart" in example_names()


def test_init_writes_the_quickstart_project_which_validates_and_plans(tmp_path, capsys):
    project = tmp_path / "new" / "project"  # parents created too
    assert main(["init", str(project)]) == 0
    assert "quickstart.toml" in capsys.readouterr().out
    assert sorted(p.name for p in project.iterdir()) == [
        ".taplo.toml",
        "README.txt",
        "quickstart.toml",
        "schema.json",
    ]
    spec = project / "quickstart.toml"
    text = spec.read_text()
    assert text.splitlines()[0] == "#:schema ./schema.json"
    assert "spec/examples/" not in text  # its commands name the spec where it now lies
    assert (project / "schema.json").read_text() == SCHEMA_PATH.read_text()
    assert 'path = "schema.json"' in (project / ".taplo.toml").read_text()
    assert "neuroexec apply quickstart.toml" in (project / "README.txt").read_text()
    assert main(["validate", str(spec)]) == 0
    assert "valid" in capsys.readouterr().out
    plan = make_plan(load_spec(spec))  # its data and MAPS go inside the project
    assert plan.steps and all(
        project in p.parents for p in (d.caps for d in load_spec(spec).datasets.values())
    )


@pytest.mark.parametrize("name", example_names())
def test_every_example_can_be_chosen_and_validates(name, tmp_path):
    assert main(["init", "--example", name, str(tmp_path / name)]) == 0
    body = (tmp_path / name / f"{name}.toml").read_text().split("\n", 1)[1]
    assert body.strip() == (REPO_EXAMPLES / f"{name}.toml").read_text().replace("spec/examples/", "").strip()
    assert main(["validate", str(tmp_path / name / f"{name}.toml")]) == 0


def test_init_refuses_a_folder_with_files_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["init", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not empty (1 entry: notes.txt)" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_init_refuses_a_path_that_is_a_file(tmp_path, capsys):
    (tmp_path / "spec.toml").write_text("version = 1\n")
    assert main(["init", str(tmp_path / "spec.toml")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "spec.toml").read_text() == "version = 1\n"


def test_an_unknown_example_is_refused_naming_the_choices(tmp_path, capsys):
    assert main(["init", "--example", "quikstart", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "'quikstart'" in err and all(name in err for name in example_names())
    assert not (tmp_path / "p").exists()


def test_init_list_prints_the_examples(capsys):
    assert main(["init", "--list"]) == 0
    assert capsys.readouterr().out.split() == example_names()


def test_init_without_a_folder_says_what_to_give(capsys):
    assert main(["init"]) == 2
    assert "neuroexec init [--example NAME] DIR" in capsys.readouterr().err


def test_init_writes_into_an_existing_empty_folder(tmp_path):
    assert main(["init", "--example", "transfer_and_patches", str(tmp_path)]) == 0
    assert (tmp_path / "transfer_and_patches.toml").is_file() and (tmp_path / "README.txt").is_file()


def test_the_folder_argument_completes_folder_names():
    import argparse

    import shtab

    from neuroexec.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    (folder,) = [a for a in sub.choices["init"]._actions if a.dest == "dir"]
    assert folder.complete == shtab.DIRECTORY
