"""A group's data is its sessions (rule 3), and replacing it removes only what the plan shows (rule 2):
a spec predicting and interpreting a data group with a hand-built ClinicaDL MAPS of two splits."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from neuroexec.context import RunContext
from neuroexec.errors import PlanRefused
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.plan.render import render_json, render_text
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec
from tests.compat.conftest import make_clinicadl_maps, tiny_data  # noqa: F401

DEFINE = "group.test.define[maps]"

SPEC = """
version = 1
[models.maps]
maps = "{maps}"
[datasets.t]
caps = "{caps}"
participants = "{tsv}"
[groups.test]
dataset = "t"
models = ["maps"]
{extra}
[[groups.test.interpret]]
name = "grad"
method = "gradients"
save_individual = true
[groups.test.compute]
device = "cpu"
workers = 0
batch_size = 2
"""


@pytest.fixture
def project(tmp_path, tiny_data):  # noqa: F811
    """A MAPS with two splits, a copy of the test participants, and a spec that predicts and interprets."""
    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, metrics=("loss",))
    tsv = tmp_path / "test.tsv"
    shutil.copy(tiny_data["test_tsv"], tsv)
    path = write(tmp_path, maps, tiny_data["test_caps"], tsv)
    apply_spec(path)
    return path, maps, tsv


def write(tmp_path: Path, maps: Path, caps: Path, tsv: Path, extra: str = "") -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(maps=maps, caps=caps, tsv=tsv, extra=extra))
    return path


def apply_spec(path: Path):
    return apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)))


def files(maps: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(maps)): p.read_bytes()
        for p in maps.rglob("*")
        if p.is_file() and ".neuroexec" not in p.parts
    }


def caps(spec: Path) -> Path:
    """The group's CAPS, as the spec names it."""
    return Path(re.search(r'^caps = "(.*)"$', spec.read_text(), re.MULTILINE)[1])


def edit_tsv(tsv: Path, change) -> None:
    frame = pd.read_csv(tsv, sep="\t", dtype=str)
    change(frame).to_csv(tsv, sep="\t", index=False)


def define(path: Path):
    return next(p for p in make_plan(load_spec(path)).steps if p.step.id == DEFINE)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda f: f.iloc[:-1], "4 sessions, the participants now give 3 (1 dropped: sub-0103 ses-M000)"),
        (lambda f: pd.concat([f, f.iloc[:1].assign(session_id="ses-M006")]), "1 added: sub-0100 ses-M006"),
        (lambda f: f.assign(diagnosis=f["diagnosis"].where(f.index != 0, "XX")), "1 with another diagnosis"),
    ],
    ids=["dropped", "added", "relabelled"],
)
def test_edited_participants_are_a_redefinition_refused_without_overwrite(project, change, expected):
    path, maps, tsv = project
    before = files(maps)
    edit_tsv(tsv, change)
    planned = define(path)
    assert planned.action == "!" and expected in planned.reasons[0]
    assert "groups.test.overwrite = true" in planned.reasons[0]
    with pytest.raises(PlanRefused, match="group.test.define"):
        apply_spec(path)
    assert files(maps) == before


def test_same_sessions_from_another_participants_file_are_the_same_group(project, tmp_path):
    path, maps, tsv = project
    moved = tmp_path / "elsewhere.tsv"
    edit_tsv(tsv, lambda f: f.iloc[::-1])  # other order, same rows
    shutil.move(tsv, moved)
    path = write(tmp_path, maps, caps(path), moved)
    planned = define(path)
    assert planned.action == "~" and planned.removals == []


def planned_removals(path: Path) -> dict[str, int]:
    """Removed path (relative to the MAPS) -> file count, from the plan's JSON."""
    data = json.loads(render_json(make_plan(load_spec(path))))
    (step,) = [s for s in data["steps"] if s["id"] == DEFINE]
    home = Path(step["home"])
    out = {}
    for r in step["removals"]:
        for p in r["paths"]:
            out[str(Path(p).relative_to(home))] = sum(f.is_file() for f in Path(p).rglob("*"))
        assert r["files"] == sum(out[str(Path(p).relative_to(home))] for p in r["paths"])
    return out


def test_redefinition_with_overwrite_removes_the_old_results_as_planned(project, tmp_path):
    path, maps, tsv = project
    edit_tsv(tsv, lambda f: f.iloc[:-1])
    path = write(tmp_path, maps, caps(path), tsv, "overwrite = true")
    assert planned_removals(path) == {"split-0/best-loss/test": 14, "split-1/best-loss/test": 14}
    text = render_text(make_plan(load_spec(path)))
    assert (
        "    - results of group test, split 0 (replaced: overwrite = true): split-0/best-loss/test (14 files)"
        in text
    )
    assert "; 28 files to remove." in text
    before = files(maps)
    apply_spec(path)
    after = files(maps)
    gone = set(before) - set(after)
    assert gone == {
        f"split-{i}/best-loss/test/interpret-grad/sub-0103_ses-M000_image-0_map.pt" for i in (0, 1)
    }
    outside = {k for k in before if "/test/" not in k and not k.startswith("groups/test/")}
    assert all(after[k] == before[k] for k in outside)  # nothing else touched
    table = pd.read_csv(maps / "split-1/best-loss/test/test_image_level_prediction.tsv", sep="\t")
    assert sorted(table["participant_id"]) == ["sub-0100", "sub-0101", "sub-0102"]
    assert len(pd.read_csv(maps / "groups/test/data.tsv", sep="\t")) == 3
    assert all(p.action == "=" for p in make_plan(load_spec(path)).steps)


def test_overwrite_of_one_split_removes_the_other_splits_old_results_as_planned(project, tmp_path):
    path, maps, tsv = project
    edit_tsv(tsv, lambda f: f.iloc[:-1])
    path = write(tmp_path, maps, caps(path), tsv, "overwrite = true\nsplits = [0]")
    removals = define(path).removals
    assert [r.what for r in removals] == [
        "results of group test, split 0 (replaced: overwrite = true)",
        "results of group test, split 1 (computed on its old data; split 1 is not in groups.test.splits)",
    ]
    planned = planned_removals(path)
    before = files(maps)
    apply_spec(path)
    after = files(maps)
    # Split 1's folder went, as planned, and nothing recreated it; split 0's was computed again.
    assert not (maps / "split-1/best-loss/test").exists()
    assert {k for k in before if k.startswith("split-1/best-loss/test/")} == set(before) - set(after) - {
        "split-0/best-loss/test/interpret-grad/sub-0103_ses-M000_image-0_map.pt"
    }
    assert planned["split-1/best-loss/test"] == len(
        [k for k in before if k.startswith("split-1/best-loss/test/")]
    )
    assert (maps / "split-0/best-loss/test/test_image_level_prediction.tsv").is_file()
    assert all(
        after[k] == before[k] for k in before if "/test/" not in k and not k.startswith("groups/test/")
    )
    state = json.loads((maps / ".neuroexec/state.json").read_text())["steps"]
    assert not [
        s for s in state if "split-1" in s and s.startswith("group.test.")
    ]  # records follow the files


def test_overwrite_with_the_same_data_removes_nothing(project, tmp_path):
    path, maps, tsv = project
    path = write(tmp_path, maps, caps(path), tsv, "overwrite = true")
    plan = make_plan(load_spec(path))
    assert all(p.action == "=" and not p.removals for p in plan.steps)
    assert "to remove" not in render_text(plan)


PROJECT = """
version = 1
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.other]
caps = "data/other"
generate = { subjects = 6, resolution_mm = 8, seed = 5, subject_offset = 100 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
[groups.test]
dataset = "other"
models = ["cnn"]
"""


def test_a_moved_project_keeps_its_data_groups_and_another_caps_is_still_refused(tmp_path):
    first = tmp_path / "first"
    first.mkdir()
    (first / "spec.toml").write_text(PROJECT)
    spec = load_spec(first / "spec.toml")
    apply(
        make_plan(spec),
        RunContext(reporter=Reporter(quiet=True)),
        target="group.test.define[cnn]",
    )
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    plan = {p.step.id: p for p in make_plan(load_spec(moved / "spec.toml")).steps}
    assert plan["group.test.define[cnn]"].action != "!", plan["group.test.define[cnn]"].reasons
    # The same sessions in another CAPS (a copy beside it) are other data.
    shutil.copytree(moved / "data/other", moved / "data/copy")
    (moved / "spec.toml").write_text(
        PROJECT.replace('dataset = "other"', 'dataset = "copy"')
        + '[datasets.copy]\ncaps = "data/copy"\nparticipants = "data/copy/participants.tsv"\n'
    )
    planned = {p.step.id: p for p in make_plan(load_spec(moved / "spec.toml")).steps}[
        "group.test.define[cnn]"
    ]
    assert planned.action == "!" and f"it was defined with CAPS {first / 'data/other'}" in planned.reasons[0]


def test_the_clinicadl_commands_refuse_an_edited_group_too_and_replace_it_with_overwrite(
    tmp_path,
    tiny_data,  # noqa: F811
    capsys,
):
    from neuroexec.cli import main

    maps = make_clinicadl_maps(tmp_path / "maps", tiny_data, metrics=("loss",))
    tsv = tmp_path / "test.tsv"
    shutil.copy(tiny_data["test_tsv"], tsv)
    run = ["--no-gpu", "--n_proc", "0", "--quiet"]
    data = ["--caps_directory", str(tiny_data["test_caps"]), "--participants_tsv", str(tsv)]
    assert main(["predict", str(maps), "test", *data, *run]) == 0
    before = files(maps)
    edit_tsv(tsv, lambda f: f.iloc[1:])
    capsys.readouterr()
    assert main(["predict", str(maps), "test", *run]) == 2  # the group re-used: its recorded TSV changed
    err = capsys.readouterr().err
    assert "1 dropped: sub-0100 ses-M000" in err and "--overwrite" in err
    assert files(maps) == before
    assert main(["predict", str(maps), "test", "--overwrite", *run]) == 0
    table = pd.read_csv(maps / "split-0/best-loss/test/test_image_level_prediction.tsv", sep="\t")
    assert sorted(table["participant_id"]) == ["sub-0101", "sub-0102", "sub-0103"]


def test_a_moved_maps_re_uses_its_group_with_the_data_moved_beside_it(tmp_path, tiny_data, capsys):  # noqa: F811
    from neuroexec.cli import main

    first = tmp_path / "first"
    maps = make_clinicadl_maps(first / "maps", tiny_data, splits=(0,), metrics=("loss",))
    shutil.copytree(tiny_data["test_caps"], first / "caps")
    run = ["--no-gpu", "--n_proc", "0", "--quiet"]
    data = [
        "--caps_directory",
        str(first / "caps"),
        "--participants_tsv",
        str(first / "caps/participants.tsv"),
    ]
    assert main(["predict", str(maps), "test", *data, *run]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(first, moved)
    original = files(first / "caps")
    assert main(["predict", str(moved / "maps"), "test", *run]) == 0
    spec = load_spec(moved / "maps/.neuroexec/predict-test.toml")
    assert spec.datasets["test-data"].caps == moved / "caps"  # its own copy, not the folder it came from
    assert files(first / "caps") == original
    assert all(p.action == "=" for p in make_plan(spec).steps)


def test_sessions_compare_labels_only_where_both_tables_have_them():
    from neuroexec.steps.group_record import sessions_differ

    rows = pd.DataFrame(
        {"participant_id": ["sub-1", "sub-2"], "session_id": ["ses-M000"] * 2, "age": ["70", "71"]}
    )
    clinicadl = rows[["participant_id", "session_id"]]  # a data.tsv without the label column
    assert sessions_differ(clinicadl, rows, "age") is None
    assert "1 with another age: sub-2 ses-M000" in sessions_differ(rows, rows.assign(age=["70", "72"]), "age")
    twice = pd.concat([rows, rows.iloc[:1]])
    assert sessions_differ(rows, twice, "age").startswith(
        "its data.tsv has 2 sessions, the participants now give 3"
    )


def test_a_replacement_that_would_leak_is_refused_before_anything_is_removed(project, tmp_path, tiny_data):  # noqa: F811
    path, maps, _ = project
    before = files(maps)
    path = write(tmp_path, maps, tiny_data["caps"], tiny_data["tsv"], "overwrite = true")  # the training data
    planned = define(path)
    assert planned.action == "!" and "data leakage: 8 participant(s) of group 'test'" in planned.reasons[0]
    with pytest.raises(PlanRefused):
        apply_spec(path)
    assert files(maps) == before


def test_apply_removes_what_the_plan_showed_and_nothing_that_appeared_since(project, tmp_path):
    path, maps, tsv = project
    edit_tsv(tsv, lambda f: f.iloc[:-1])
    path = write(tmp_path, maps, caps(path), tsv, "overwrite = true\nsplits = [0]")
    plan = make_plan(load_spec(path))
    later = maps / "split-1/best-BA/test/kept.tsv"  # written after the plan was shown
    later.parent.mkdir(parents=True)
    later.write_text("participant_id\tsession_id\n")
    apply(plan, RunContext(reporter=Reporter(quiet=True)))
    assert later.is_file() and not (maps / "split-1/best-loss/test").exists()
