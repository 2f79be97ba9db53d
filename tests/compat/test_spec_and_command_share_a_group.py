"""A spec and the ClinicaDL-style command that re-uses its data group do not undo each other's records:
`neuroexec predict MAPS GROUP` (no data flags) after the spec names the dataset as the group recorded,
and counts what the spec recorded as done when it is what the command would do (compat/recorded.py),
so neither re-runs define, extraction or predict, and a real change re-runs only what it touches."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from neuroexec.cli import main
from neuroexec.compat.recorded import adopt_recorded
from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

SPEC = """
version = 1
[compute]
device = "cpu"
workers = 0
batch_size = 4
[datasets.demo]
caps = "data/demo"
generate = { subjects = 8, resolution_mm = 8, seed = 1 }
[datasets.demo-test]
caps = "data/demo-test"
generate = { subjects = 6, resolution_mm = 8, seed = 2, subject_offset = 1000 }
[models.cnn]
maps = "maps/cnn"
dataset = "demo"
architecture = "TinyCNN"
split = { n_splits = 2, splits = [0] }
train = { epochs = 1, learning_rate = 1e-3 }
[groups.test]
dataset = "demo-test"
models = ["cnn"]
interpret = [{ name = "grad", target = "AD" }]
"""

PREDICT = "group.test.predict[cnn/split-0/best-loss]"
CKPT = "split-0/best-loss/model.pth.tar"


def project(folder: Path) -> Path:
    """The spec, applied: trained, its group defined, predicted and interpreted."""
    path = folder / "spec.toml"
    path.write_text(SPEC)
    apply(make_plan(load_spec(path)), RunContext(reporter=Reporter(quiet=True)))
    return path


def command(spec: Path) -> int:
    maps = spec.parent / "maps" / "cnn"
    return main(["predict", str(maps), "test", "--no-gpu", "--n_proc", "0", "--quiet"])


def plans(spec: Path) -> tuple[dict, dict]:
    """Step id -> (action, reasons) of the spec's plan and of the command's (as the command plans it)."""
    built = load_spec(spec.parent / "maps" / "cnn" / ".neuroexec" / "predict-test.toml")
    theirs = make_plan(built)
    adopt_recorded(theirs)
    ours = make_plan(load_spec(spec))
    return ({p.step.id: (p.action, p.reasons) for p in x.steps} for x in (ours, theirs))


def records(spec: Path) -> dict:
    """Every step record of the MAPS and of the test CAPS (a re-run step changes its own)."""
    homes = (spec.parent / "maps" / "cnn", spec.parent / "data" / "demo-test")
    return {str(h): json.loads((h / ".neuroexec" / "state.json").read_text())["steps"] for h in homes}


def tensors(spec: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in (spec.parent / "data" / "demo-test").rglob("*.pt")}


def test_command_reusing_the_spec_group_runs_nothing_and_the_spec_stays_up_to_date(tmp_path, capsys):
    spec = project(tmp_path)
    before, extracted = records(spec), tensors(spec)
    for _ in range(2):
        assert command(spec) == 0
        ours, theirs = plans(spec)
        assert {a for a, _ in ours.values()} == {"="}, ours
        assert {a for a, _ in theirs.values()} == {"="}, theirs
    built = (spec.parent / "maps" / "cnn" / ".neuroexec" / "predict-test.toml").read_text()
    assert "[datasets.demo-test]" in built  # the dataset as the group recorded it, not 'test-data'
    assert records(spec) == before  # no step ran: define, extraction and predict are the spec's
    assert tensors(spec) == extracted  # the CAPS's tensors were not extracted again
    assert "Nothing to do" in capsys.readouterr().out


def test_replaced_model_reruns_predict_once_for_its_true_reason_then_both_settle(tmp_path):
    spec = project(tmp_path)
    checkpoint_file = spec.parent / "maps" / "cnn" / CKPT
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    checkpoint["model"] = {
        k: v + 0.05 if v.is_floating_point() else v for k, v in checkpoint["model"].items()
    }
    torch.save(checkpoint, checkpoint_file)
    assert command(spec) == 0  # writes the command's spec; predict re-runs with the new model
    ours, theirs = plans(spec)
    assert {a for a, _ in theirs.values()} == {"="}
    assert ours["group.test.interpret.grad[cnn/split-0/best-loss]"] == ("~", [f"input {CKPT} changed"])
    action, reasons = ours[PREDICT]  # the command's record: the spec runs it once more, and says why
    assert action == "~" and not any(r.startswith("upstream") for r in reasons), reasons
    assert reasons == [
        "recorded by a run that did not depend on model.cnn.train[split-0], dataset.demo-test.generate "
        "(another spec or a ClinicaDL-style command, or before this spec used them)"
    ]

    apply(make_plan(load_spec(spec)), RunContext(reporter=Reporter(quiet=True)))
    settled = records(spec)
    assert command(spec) == 0
    ours, theirs = plans(spec)
    assert {a for a, _ in ours.values()} == {"="} and {a for a, _ in theirs.values()} == {"="}
    assert records(spec) == settled


def test_command_plan_names_the_changed_model_not_upstream_steps(tmp_path):
    spec = project(tmp_path)
    assert command(spec) == 0
    (spec.parent / "maps" / "cnn" / CKPT).write_bytes(b"")  # replaced by something else entirely
    _, theirs = plans(spec)
    assert theirs[PREDICT] == ("~", [f"input {CKPT} changed"])
    assert {a for step, (a, _) in theirs.items() if step != PREDICT} == {"="}


def test_a_copied_project_is_not_extracted_again_by_the_command(tmp_path):
    import shutil

    (tmp_path / "here").mkdir()
    spec = project(tmp_path / "here")
    copy = tmp_path / "there"
    shutil.copytree(spec.parent, copy)  # new mtimes everywhere (as cp -r gives), the same bytes
    spec = copy / spec.name
    before = tensors(spec)
    assert command(spec) == 0
    assert tensors(spec) == before  # the command extracted nothing again
    ours, theirs = plans(spec)
    assert {a for a, _ in ours.values()} == {"="} and {a for a, _ in theirs.values()} == {"="}
