"""The MAPS always matches its models: an interrupted retraining leaves maps.json, environment.txt,
information.log and the TensorBoard event files of the last finished training in place until the new
training finishes; report never announces a resume that apply will not do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from neuroexec.inference.model_io import load_model
from neuroexec.maps.layout import MapsLayout
from neuroexec.plan.graph import make_plan
from neuroexec.report import report
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import run_apply, write_spec

BODY = 'task = "classification"\ntrain = { epochs = 2, learning_rate = 1e-3, selection_metrics = ["loss"] }'
STEP = "model.a.train[split-0]"


def interrupted(path: Path, after_epoch: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, str(after_epoch))
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target="model.a.train*")


def records(maps: MapsLayout) -> dict[str, bytes]:
    """Every MAPS-level record of a training, and its TensorBoard event files, by path."""
    files = [maps.maps_json, maps.environment_txt, maps.information_log]
    files += sorted((maps.training_logs(0) / "tensorboard").rglob("*"))
    return {str(f.relative_to(maps.root)): f.read_bytes() for f in files if f.is_file()}


def planned(path: Path, step_id: str = STEP):
    return next(p for p in make_plan(load_spec(path)).steps if p.step.id == step_id)


def test_a_reverted_spec_finds_the_finished_training_intact(tmp_path):
    # Finished with TinyCNN; a retraining with Conv4_FC3 is stopped after its first epoch; the spec is
    # reverted. The plan says "=", so the MAPS must still describe the TinyCNN models: same maps.json,
    # same event files, and its best model loads and predicts.
    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/a")
    finished = records(maps)
    assert {"maps.json", "environment.txt", "information.log"} <= set(finished)
    assert any("tensorboard/validation/events" in name for name in finished)

    original = path.read_text()
    path.write_text(original.replace('architecture = "TinyCNN"', 'architecture = "Conv4_FC3"'))
    interrupted(path, 0)
    assert records(maps) == finished
    assert "apply continues it" in report(load_spec(path))

    path.write_text(original)
    assert planned(path).action == "="
    assert records(maps) == finished
    net, info = load_model(maps.root, 0, "loss")
    assert info.architecture == "TinyCNN"
    with torch.no_grad():
        assert torch.isfinite(net(torch.zeros(1, *info.input_size))).all()
    text = report(load_spec(path))
    assert f"waits in {maps.tmp_dir(0)}" in text and "apply continues it" not in text
    assert "apply leaves it" in text


def test_a_learning_rate_change_keeps_the_event_files_until_it_finishes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/a")
    finished = records(maps)
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 3e-3"))
    interrupted(path, 0)
    assert records(maps) == finished
    step = planned(path)
    assert step.action == "~" and any("apply resumes there" in r for r in step.reasons)

    run_apply(path)
    assert not maps.tmp_dir(0).exists()
    now = records(maps)
    assert now["maps.json"] != finished["maps.json"] and b'"learning_rate": 0.003' in now["maps.json"]
    # Only the new training's events: one point per epoch of its training.tsv (both runs of it).
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    for phase, suffix in (("train", "_train"), ("validation", "_valid")):
        board = EventAccumulator(str(maps.tensorboard_dir(0, phase)))
        board.Reload()
        events = board.Scalars("loss")
        assert [e.step for e in events] == [1, 3]
        np.testing.assert_allclose([e.value for e in events], log["loss" + suffix], rtol=1e-6)
    information = maps.information_log.read_text()
    assert information.count("architecture: TinyCNN") == 1
    events = [line.split(" ", 2)[2] for line in information.splitlines() if line[:2] == "20"]
    assert events == [
        "split-0: training started",
        "split-0: training finished after 2 epochs",
        "split-0: training started",
        "split-0: training resumed after epoch 0",
        "split-0: training finished after 2 epochs",
    ]


def test_a_stop_while_the_final_results_are_written_keeps_the_finished_training(tmp_path, monkeypatch):
    # The end of a retraining computes its best models' train and validation results: stopped there,
    # the MAPS still holds the finished training whole (models, results, records), and the next apply
    # completes the new one.
    from neuroexec.training import run

    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/a")
    results = sorted(maps.best_dir(0, "loss").rglob("*.tsv"))
    kept = [maps.best_model(0, "loss"), maps.training_tsv(0), *results]
    before, finished = [f.read_bytes() for f in kept], records(maps)
    assert len(results) == 4  # train and validation: predictions and metrics

    write_results, calls = run.write_results, []

    def stopped(*args, **kwargs):
        calls.append(args[0].group)
        if len(calls) == 2:
            raise KeyboardInterrupt("stopped while writing results")
        return write_results(*args, **kwargs)

    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 3e-3"))
    with monkeypatch.context() as mp:
        mp.setattr(run, "write_results", stopped)
        with pytest.raises(KeyboardInterrupt):
            run_apply(path)
    assert calls == ["validation", "train"]
    assert [f.read_bytes() for f in kept] == before and records(maps) == finished
    assert any("apply resumes there" in r for r in planned(path).reasons)

    run_apply(path)
    assert maps.best_model(0, "loss").read_bytes() != before[0] and not maps.tmp_dir(0).exists()
    assert b'"learning_rate": 0.003' in maps.maps_json.read_bytes()
    assert sorted(maps.best_dir(0, "loss").rglob("*.tsv")) == results


def test_the_plan_names_an_interrupted_run_that_apply_discards(tmp_path):
    path = write_spec(tmp_path, {"a": BODY})
    interrupted(path, 0)
    maps = MapsLayout(tmp_path / "maps/a")
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 3e-3"))
    step = planned(path)
    assert step.action == "+" and step.reasons == [
        f"the training interrupted after epoch 1 in {maps.tmp_dir(0)} was made with other settings or data: "
        "apply discards it and trains the split from the start"
    ]
    assert "apply discards it" in report(load_spec(path))


def test_a_stop_halfway_through_publishing_is_completed_by_the_next_apply(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from neuroexec.training import outputs

    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/a")
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 3e-3"))
    replace = outputs.os.replace

    def stop_at_maps_json(source, target):
        if Path(target) == maps.maps_json:
            raise KeyboardInterrupt("stopped before maps.json moved")
        return replace(source, target)

    with monkeypatch.context() as mp:
        mp.setattr(outputs.os, "replace", stop_at_maps_json)
        with pytest.raises(KeyboardInterrupt):
            run_apply(path)
    assert b'"learning_rate": 0.001' in maps.maps_json.read_bytes()  # not yet moved
    run_apply(path)
    assert not maps.tmp_dir(0).exists()
    assert b'"learning_rate": 0.003' in maps.maps_json.read_bytes()
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    board = EventAccumulator(str(maps.tensorboard_dir(0, "validation")))
    board.Reload()
    np.testing.assert_allclose([e.value for e in board.Scalars("loss")], log["loss_valid"], rtol=1e-6)
    assert {p.action for p in make_plan(load_spec(path)).steps} == {"="}


def test_the_plan_of_a_retraining_says_what_it_replaces_when_it_finishes(tmp_path):
    path = write_spec(tmp_path, {"a": BODY})
    assert not any("replaces" in r for r in planned(path).reasons)  # nothing finished yet
    run_apply(path)
    maps = MapsLayout(tmp_path / "maps/a")
    events = [f for f in (maps.training_logs(0) / "tensorboard").rglob("*") if f.is_file()]
    path.write_text(path.read_text().replace("learning_rate = 1e-3", "learning_rate = 3e-3"))
    step = planned(path)
    assert step.action == "~" and not step.removals  # nothing is removed before it finishes
    note = next(r for r in step.reasons if "replaces" in r)
    assert "when it finishes" in note and "split-0" in note
    assert f"{len(events)} TensorBoard event file(s)" in note


def test_the_plan_names_an_interrupted_run_waiting_behind_steps_that_run_first(tmp_path):
    # The split tables change (another dataset seed): the upstream split step runs first, so the plan
    # cannot know the resume key yet; it still says that a training waits in tmp/ and what decides.
    path = write_spec(tmp_path, {"a": BODY})
    run_apply(path, target="model.a.split")
    interrupted(path, 0)
    path.write_text(path.read_text().replace("resolution_mm = 8, seed = 1", "resolution_mm = 8, seed = 2"))
    step = planned(path)
    assert step.action == "+"  # no training of the split has finished yet
    note = next(r for r in step.reasons if "waits in" in r)
    assert (
        "after epoch 1" in note
        and "discards it" in note
        and str(MapsLayout(tmp_path / "maps/a").tmp_dir(0)) in note
    )
