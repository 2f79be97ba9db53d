"""compute.threads: torch's CPU threads while each step runs (set back after it), in the training's
fingerprint when set (their number changes float sums on the CPU), in none when unset."""

from __future__ import annotations

import pytest
import torch

from neuroexec.errors import SpecError
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.spec.model import Compute
from neuroexec.training import run as training_run
from neuroexec.training.task import result_compute
from tests.training.training_specs import run_apply, write_spec


def _actions(path) -> dict[str, str]:
    return {p.step.id: p.action for p in make_plan(load_spec(path)).steps}


def test_a_training_runs_with_the_threads_asked_for_and_they_are_in_its_fingerprint(tmp_path, monkeypatch):
    seen = []
    real = training_run.train_split

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(training_run, "train_split", spy)
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    path = write_spec(tmp_path, {"cnn": "train = { epochs = 1 }"})
    text = path.read_text()
    path.write_text(text.replace("workers = 0\n", f"workers = 0\nthreads = {other}\n", 1))
    run_apply(path)
    assert seen == [other] and torch.get_num_threads() == before  # set while the step ran, then back
    assert _actions(path)["model.cnn.train[split-0]"] == "="
    path.write_text(text.replace("workers = 0\n", "workers = 0\nthreads = 1\n", 1))
    assert _actions(path)["model.cnn.train[split-0]"] == "~"  # another count: other float sums
    path.write_text(text)
    assert _actions(path)["model.cnn.train[split-0]"] == "~"  # unset: torch's default, another again


def test_unset_threads_leave_the_fingerprint_of_a_spec_written_before_them(tmp_path):
    """A spec that never said threads plans as before it existed: its recorded training stays up to date."""
    path = write_spec(tmp_path, {"cnn": "train = { epochs = 1 }"})
    run_apply(path)
    assert "threads" not in result_compute(Compute()) and result_compute(Compute(threads=1))["threads"] == 1
    assert _actions(path)["model.cnn.train[split-0]"] == "="


@pytest.mark.parametrize("value", [0, -1, "2"])
def test_a_bad_thread_count_is_a_spec_error_naming_the_key(tmp_path, value):
    path = write_spec(tmp_path, {"cnn": "train = { epochs = 1 }"})
    path.write_text(path.read_text().replace("workers = 0\n", f"workers = 0\nthreads = {value!r}\n", 1))
    with pytest.raises(SpecError, match="threads"):
        load_spec(path)
