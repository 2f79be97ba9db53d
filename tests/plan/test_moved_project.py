"""Rule 12: a project copied or moved elsewhere keeps its records. Input files are recorded by their
path relative to the step's home (data beside the MAPS too), so the copy plans `=` and apply runs
nothing; a real change in the copy is named as such. Records written when keys were absolute paths
still plan `=` in place and after a move."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from neuroexec.context import RunContext
from neuroexec.data.synthetic import generate_atrophy_dataset
from neuroexec.executor import apply
from neuroexec.plan.fingerprint import fingerprint, recorded_keys
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.records import state_file
from neuroexec.spec import load_spec

# A generated training CAPS, and a test CAPS the spec does not generate, with its participants list
# outside the CAPS (lists/real.tsv): every kind of input (checkpoint, participants, images) is recorded.
SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.real]
caps = "data/real"
participants = "lists/real.tsv"
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1 }
[groups.test]
dataset = "real"
models = ["cnn"]
interpret = [{ name = "grad", target = "AD" }]
"""
CKPT = "split-0/best-loss/model.pth.tar"
RESULTS = {
    "group.test.predict[cnn/split-0/best-loss]",
    "group.test.interpret.grad[cnn/split-0/best-loss]",
}


def plan_of(path: Path) -> dict[str, tuple[str, list[str]]]:
    return {p.step.id: (p.action, p.reasons) for p in make_plan(load_spec(path)).steps}


def run(path: Path) -> list[str]:
    return apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True))).ran


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The applied project: generate, extract (both CAPS), split, train, define, predict, interpret."""
    folder = tmp_path_factory.mktemp("project") / "proj"
    data = generate_atrophy_dataset(folder / "data" / "real", 6, 8.0, seed=5, subject_offset=100)
    (folder / "lists").mkdir()
    shutil.copyfile(data.participants_tsv, folder / "lists" / "real.tsv")
    path = folder / "spec.toml"
    path.write_text(SPEC)
    ran = run(path)
    assert RESULTS <= set(ran) and "dataset.real.extract[image]" in ran
    assert {action for action, _ in plan_of(path).values()} == {"="}
    return path


def copied(project: Path, where: Path, how: str) -> Path:
    """The project copied to `where`, or copied aside then moved (renamed) there."""
    if how == "copy":
        shutil.copytree(project.parent, where)
    else:
        shutil.copytree(project.parent, where.parent / "aside")
        shutil.move(where.parent / "aside", where)
    return where / project.name


def replace_model(maps: Path) -> None:
    """Another file in place of the model (one byte changed; a new file, as a copy over it would be)."""
    path = maps / CKPT
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path.parent / "new").write_bytes(bytes(data))
    os.replace(path.parent / "new", path)


def write_the_old_way(path: Path) -> None:
    """Rewrite every record as the code before relative keys wrote it: inputs keyed by absolute path,
    fingerprints (and the upstream fingerprints in downstream records) computed with those keys."""
    fps: dict[str, str] = {}
    files: dict[Path, dict] = {}
    for p in make_plan(load_spec(path)).steps:
        step = p.step
        state = files.setdefault(step.home, json.loads(state_file(step.home).read_text()))
        rec = state["steps"][step.record_key]
        assert fingerprint(step.kind, rec["config"], rec["upstream"], rec["inputs"]) == rec["fingerprint"]
        rec["inputs"] = {str(f): rec["inputs"][os.path.relpath(f, step.home)] for f in step.inputs}
        rec["upstream"] = {d: fps[d] for d in step.deps}
        rec["fingerprint"] = fps[step.id] = fingerprint(
            step.kind, rec["config"], rec["upstream"], rec["inputs"]
        )
    for home, state in files.items():
        state_file(home).write_text(json.dumps(state))


def test_records_key_inputs_relative_to_their_home(project):
    maps, real = project.parent / "maps" / "cnn", project.parent / "data" / "real"
    steps = json.loads(state_file(maps).read_text())["steps"]
    assert set(steps["group.test.predict[cnn/split-0/best-loss]"]["inputs"]) == {CKPT}
    assert set(steps["group.test.define[cnn]"]["inputs"]) == {"../../lists/real.tsv"}
    (key, extract), *others = json.loads(state_file(real).read_text())["steps"].items()
    assert not others and key.endswith("participants=../../lists/real.tsv")
    assert "../../lists/real.tsv" in extract["inputs"] and not any(map(os.path.isabs, extract["inputs"]))


@pytest.mark.parametrize("how", ["copy", "move"])
def test_moved_project_plans_up_to_date_and_apply_runs_nothing(project, tmp_path, how):
    moved = copied(project, tmp_path / "elsewhere" / "proj", how)
    plan = plan_of(moved)
    assert {step: action for step, (action, _) in plan.items() if action != "="} == {}
    assert run(moved) == []


def test_a_changed_model_in_the_copy_replans_its_results_only(project, tmp_path):
    moved = copied(project, tmp_path / "proj", "copy")
    replace_model(moved.parent / "maps" / "cnn")
    changed = {step: reasons for step, (action, reasons) in plan_of(moved).items() if action != "="}
    assert changed == {step: [f"input {CKPT} changed"] for step in RESULTS}
    assert {action for action, _ in plan_of(project).values()} == {"="}  # the original is untouched


def test_records_with_absolute_keys_plan_up_to_date_in_place(project, tmp_path):
    here = copied(project, tmp_path / "proj", "copy")
    write_the_old_way(here)
    records = json.loads(state_file(here.parent / "maps" / "cnn").read_text())["steps"]
    assert (
        str(here.parent / "maps" / "cnn" / CKPT)
        in records["group.test.predict[cnn/split-0/best-loss]"]["inputs"]
    )
    assert {action for action, _ in plan_of(here).values()} == {"="}
    assert run(here) == []


def test_records_with_absolute_keys_survive_a_move_and_name_a_real_change(project, tmp_path):
    old = copied(project, tmp_path / "old" / "proj", "copy")
    write_the_old_way(old)
    moved = tmp_path / "new" / "place" / "proj"
    shutil.move(old.parent, moved)
    assert {action for action, _ in plan_of(moved / old.name).values()} == {"="}
    replace_model(moved / "maps" / "cnn")
    changed = {s: reasons for s, (action, reasons) in plan_of(moved / old.name).items() if action != "="}
    assert changed == {step: [f"input {CKPT} changed"] for step in RESULTS}


def test_old_absolute_keys_are_matched_to_the_inputs_they_name_today():
    """A moved folder's files map through the move, files outside it (not moved) stay, relative keys
    are kept, and a file used by neither is made relative to the old home (then 'no longer used')."""
    home = Path("/new/lab/proj/maps/cnn")
    now = [CKPT, "../../lists/real.tsv", "../../../../../caps/sub-1.nii.gz", "already/relative.tsv"]
    old = {
        f"/old/proj/maps/cnn/{CKPT}": CKPT,
        "/old/proj/lists/real.tsv": "../../lists/real.tsv",
        "/caps/sub-1.nii.gz": "../../../../../caps/sub-1.nii.gz",
        "already/relative.tsv": "already/relative.tsv",
        "/old/proj/maps/cnn/gone.tsv": "gone.tsv",
    }
    assert recorded_keys(old, home, now) == old
    assert recorded_keys(["/elsewhere/x.tsv"], home, now) == {
        "/elsewhere/x.tsv": "../../../../../elsewhere/x.tsv"
    }
