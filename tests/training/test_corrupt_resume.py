"""A damaged resume file in split-<i>/tmp/ (a truncated resume.pth.tar or checkpoint.pth.tar): the plan
shows the training as interrupted with the folder to delete, apply stops with that sentence, and
nothing restarts silently over the interrupted run."""

from __future__ import annotations

import pytest

from neuroexec.errors import StepFailed
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.report import report
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import run_apply, write_spec

BODY = 'task = "classification"\ntrain = { epochs = 3, learning_rate = 1e-3 }'
STEP = "model.a.train[split-0]"


def interrupted_run(tmp_path):
    path = write_spec(tmp_path, {"a": BODY})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path)
    return path, MapsLayout(tmp_path / "maps/a")


def truncate(file) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize("name", ["resume.pth.tar", "checkpoint.pth.tar"])
def test_a_truncated_resume_file_is_named_with_the_folder_to_delete(tmp_path, name):
    path, maps = interrupted_run(tmp_path)
    tmp = maps.tmp_dir(0)
    truncate(tmp / name)
    kept = sorted(p.name for p in tmp.rglob("*"))

    planned = next(p for p in make_plan(load_spec(path)).steps if p.step.id == STEP)
    assert planned.action == "+"
    [note] = planned.reasons
    assert note.startswith(f"interrupted, but {name} is ") and f"delete {tmp}" in note
    assert "apply stops there" in note and note in report(load_spec(path))

    with pytest.raises(StepFailed) as err:
        run_apply(path)
    message = str(err.value)
    assert str(tmp) in message and name in message and "delete this folder" in message
    assert "\n" not in message
    assert sorted(p.name for p in tmp.rglob("*")) == kept  # not restarted over it

    import shutil

    shutil.rmtree(tmp)  # what the message says to do
    run_apply(path)
    assert maps.best_model(0, "loss").is_file() and not tmp.exists()


def test_a_truncated_staged_best_model_is_noticed_before_training_goes_on(tmp_path):
    path, maps = interrupted_run(tmp_path)
    truncate(maps.staged_best_model(0, "loss"))
    [note] = next(p.reasons for p in make_plan(load_spec(path)).steps if p.step.id == STEP)
    assert note.startswith("interrupted, but best-loss/model.pth.tar is truncated or altered")
    with pytest.raises(StepFailed, match="delete this folder"):
        run_apply(path)
