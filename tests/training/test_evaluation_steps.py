"""train.evaluation_steps, as ClinicaDL 1.6.1 runs it (maps_manager._train): after the optimizer step of
batch i, when i + 1 is a multiple of evaluation_steps, the train and validation sets are evaluated for a
training.tsv row and TensorBoard points at that iteration; best models and early stopping read the end
of each epoch only, and the weights are those of a training without it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from neuroexec.maps.layout import MapsLayout
from neuroexec.report import report
from neuroexec.spec import load_spec
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.training_specs import needs_torchrun, run_apply, write_spec

TRAIN = "learning_rate = 1e-3, selection_metrics = ['loss', 'BA']"


def _body(options: str = "", epochs: int = 2, compute: str = "") -> str:
    return f'task = "classification"\ntrain = {{ epochs = {epochs}, {TRAIN}{options} }}\n{compute}'


def _train(tmp_path, options: str = "", epochs: int = 2, compute: str = "") -> MapsLayout:
    run_apply(write_spec(tmp_path, {"cnn": _body(options, epochs, compute)}, batch_size=2))  # 3 batches
    return MapsLayout(tmp_path / "maps/cnn")


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> MapsLayout:
    return _train(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def every_step(tmp_path_factory) -> MapsLayout:
    return _train(tmp_path_factory.mktemp("every"), ", evaluation_steps = 1")


def test_every_step_adds_a_row_per_batch_before_the_epoch_row(every_step, plain):
    log = pd.read_csv(every_step.training_tsv(0), sep="\t")
    rows = list(zip(log["epoch"], log["iteration"]))
    assert rows == [(0, 0), (0, 1), (0, 2), (0, 2), (1, 0), (1, 1), (1, 2), (1, 2)]
    assert list(log.columns) == list(pd.read_csv(plain.training_tsv(0), sep="\t").columns)
    assert log["time"].is_monotonic_increasing
    # The evaluation after the last batch sees the epoch's final weights: its validation numbers are
    # the epoch row's; its train numbers are a pass over the train set in eval mode (ClinicaDL's), not
    # the running predictions of the epoch row.
    midway, end = log.iloc[[2, 6]].reset_index(), log.iloc[[3, 7]].reset_index()
    np.testing.assert_allclose(midway["loss_valid"], end["loss_valid"], rtol=1e-6)
    np.testing.assert_allclose(midway["BA_valid"], end["BA_valid"], rtol=1e-6)
    assert not np.allclose(midway["loss_train"], end["loss_train"], rtol=1e-6)
    assert json.loads(every_step.maps_json.read_text())["evaluation_steps"] == 1


def test_it_changes_no_weight_and_no_best_model_choice(every_step, plain):
    for metric in ("loss", "BA"):
        assert every_step.best_model(0, metric).read_bytes() == plain.best_model(0, metric).read_bytes()
    ends = pd.read_csv(every_step.training_tsv(0), sep="\t").iloc[[3, 7]].reset_index(drop=True)
    plain_log = pd.read_csv(plain.training_tsv(0), sep="\t")
    pd.testing.assert_frame_equal(ends.drop(columns="time"), plain_log.drop(columns="time"))


def test_tensorboard_gets_each_evaluation_at_its_global_step(every_step):
    log = pd.read_csv(every_step.training_tsv(0), sep="\t")
    for phase, suffix in (("train", "_train"), ("validation", "_valid")):
        board = EventAccumulator(str(every_step.tensorboard_dir(0, phase)))
        board.Reload()
        events = board.Scalars("loss")
        assert [e.step for e in events] == list(log["iteration"] + 3 * log["epoch"])
        np.testing.assert_allclose([e.value for e in events], log["loss" + suffix], rtol=1e-6)


def test_evaluations_wait_for_an_optimizer_step(tmp_path):
    # accumulation over 2 batches: batch 1 steps, batch 2 too (the epoch's end, not a ClinicaDL
    # update); only (i + 1) = 2 is a multiple of both
    maps = _train(tmp_path, ", evaluation_steps = 1, accumulation_steps = 2", epochs=1)
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    assert list(zip(log["epoch"], log["iteration"])) == [(0, 1), (0, 2)]


def test_steps_beyond_the_epoch_warn_and_log_the_epochs_only(tmp_path, capsys):
    maps = _train(tmp_path, ", evaluation_steps = 5", epochs=1)
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    assert list(zip(log["epoch"], log["iteration"])) == [(0, 2)]
    assert (
        "train.evaluation_steps = 5: no evaluation falls within an epoch of 3 batches"
        in capsys.readouterr().err
    )


def test_the_report_counts_epochs_not_rows(every_step):
    text = report(load_spec(every_step.root.parents[1] / "spec.toml"))
    assert "split-0: 2 epochs, training log" in text  # 8 rows


def test_workers_and_an_interruption_change_nothing(tmp_path, every_step):
    # the evaluations' loaders draw their worker seeds from their own generator, never the global RNG
    (tmp_path / "workers").mkdir(), (tmp_path / "resumed").mkdir()
    workers = _train(tmp_path / "workers", ", evaluation_steps = 1", compute="compute = { workers = 2 }")
    path = write_spec(tmp_path / "resumed", {"cnn": _body(", evaluation_steps = 1")}, batch_size=2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, "0")
        with pytest.raises(KeyboardInterrupt):
            run_apply(path)
    run_apply(path)
    resumed = MapsLayout(tmp_path / "resumed/maps/cnn")
    expected = pd.read_csv(every_step.training_tsv(0), sep="\t").drop(columns="time")
    for maps in (workers, resumed):
        assert maps.best_model(0, "loss").read_bytes() == every_step.best_model(0, "loss").read_bytes()
        log = pd.read_csv(maps.training_tsv(0), sep="\t").drop(columns="time")
        pd.testing.assert_frame_equal(log, expected)


@needs_torchrun
def test_under_ddp_every_rank_evaluates_and_rank_0_writes_the_row(ddp_project):
    # tests/training/test_ddp.py's set-up (tests/training/conftest.py, models steps_one and steps_two): the
    # same global batch with 1 process (6 accumulated batches) and with 2 (3 each): one optimizer step,
    # after which every rank evaluates its shard
    one = pd.read_csv(MapsLayout(ddp_project.root / "maps/steps_one").training_tsv(0), sep="\t")
    two = pd.read_csv(MapsLayout(ddp_project.root / "maps/steps_two").training_tsv(0), sep="\t")
    assert list(zip(one["epoch"], one["iteration"])) == [(0, 5), (0, 5)]
    assert list(zip(two["epoch"], two["iteration"])) == [(0, 2), (0, 2)]  # written once, by rank 0
    # (rank 0's batch-norm statistics saw 3 images, one process's 6: the two runs' losses differ)
    assert two["loss_valid"][0] == pytest.approx(two["loss_valid"][1], rel=1e-6)
