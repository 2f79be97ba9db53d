"""train.track_exp across a resume: an interrupted training resumed by apply logs into the MLflow run it
began (its id waits in tmp/ of the split, removed when the split is published), so one run holds every
epoch's metrics instead of a KILLED run and a second FINISHED one."""

from __future__ import annotations

import contextlib
import importlib.util

import pandas as pd
import pytest

from neuroexec.maps.layout import MapsLayout
from tests.training.test_workers_determinism import interrupted
from tests.training.training_specs import run_apply, write_spec

_needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason="mlflow is not installed (pip install 'neuroexec[track]')",
)
EPOCHS = 3
BODY = (
    f"task = \"classification\"\ntrain = {{ epochs = {EPOCHS}, learning_rate = 1e-3, track_exp = 'mlflow' }}"
)


@_needs_mlflow
def test_a_resumed_training_logs_into_the_run_it_began(tmp_path):
    from mlflow.tracking import MlflowClient

    path = write_spec(tmp_path, {"cnn": BODY}, subjects=8, batch_size=4)
    maps = MapsLayout(tmp_path / "maps" / "cnn")
    interrupted(path, "model.cnn.train*", 0)
    kept = maps.staged_tracker_run(0, "mlflow")
    run_id = kept.read_text()
    client = MlflowClient(tracking_uri=f"sqlite:///{maps.mlflow_store}")
    assert client.get_run(run_id).info.status == "KILLED"

    run_apply(path)
    experiment = client.get_experiment_by_name("clinicadl-cnn")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    log = pd.read_csv(maps.training_tsv(0), sep="\t")
    assert list(log["epoch"]) == list(range(EPOCHS))
    for column in ("loss_train", "loss_valid"):  # one point per epoch, at ClinicaDL's global step
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, column))
        steps = [step for step, _ in history]
        assert len(steps) == EPOCHS and steps == sorted(set(steps))
        assert [v for _, v in history] == pytest.approx(log[column].tolist(), rel=1e-6)
    assert not kept.exists() and not maps.tmp_dir(0).exists()  # gone with tmp/ when published


@pytest.fixture
def fresh_wandb_service():
    """W&B keeps one service process per Python process; in the full suite an earlier test could leave it
    gone while wandb still held its connection (MailboxClosedError at the next init): test_preempt.py's
    SIGTERM to every child of the test process, which now spares the children it did not start. A
    user's apply is its own process; here the service starts anew all the same."""
    import wandb

    with contextlib.suppress(Exception):
        wandb.teardown()
    yield


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed")
def test_a_resumed_training_opens_its_wandb_run_again(tmp_path, fresh_wandb_service):
    path = write_spec(tmp_path, {"cnn": BODY.replace("'mlflow'", "'wandb'")}, subjects=8, batch_size=4)
    maps = MapsLayout(tmp_path / "maps" / "cnn")
    interrupted(path, "model.cnn.train*", 0)
    run_id = maps.staged_tracker_run(0, "wandb").read_text()
    run_apply(path)
    folders = sorted(maps.wandb_dir.glob("offline-run-*"))
    # one folder per start (or one, when both start in one second), all of the one run id
    # offline-run-<date>_<time>-<run id>[-<n>]: W&B adds -<n> to a folder of the same second
    assert folders and {f.name.split("-")[3] for f in folders} == {run_id}
