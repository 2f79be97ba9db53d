"""SIGTERM during training checkpoints at once, mid-epoch (after the batch in hand, or the accumulation
step), and stops like an interrupt; the resumed training ends with the model, optimizer and log of an
uninterrupted one, bit for bit (training/preemption.py)."""

from __future__ import annotations

import os
import signal
from types import SimpleNamespace

import pandas as pd
import psutil
import pytest
import torch

from neuroexec.errors import InputError
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.training import preemption, resume
from neuroexec.training.preemption import SIGTERM_AT_BATCH_ENV, Preempted
from neuroexec.training.resume import INTERRUPT_ENV, Progress
from tests.training.training_specs import run_apply, write_spec

EPOCHS = 3


def body(accumulation: int = 1, workers: int = 0, evaluation_steps: int = 0, epochs: int = EPOCHS) -> str:
    return (
        'task = "classification"\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {epochs}, learning_rate = 1e-3, selection_metrics = ["loss", "BA"], '
        f"accumulation_steps = {accumulation}, evaluation_steps = {evaluation_steps} }}"
    )


def stopped(path, model: str, env: str, value: str, error: type[BaseException] = KeyboardInterrupt) -> None:
    """Apply `model`'s training with the test hook `env` = `value`; it stops with `error`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(env, value)
        with pytest.raises(error):
            run_apply(path, target=f"model.{model}.train*")


def to_the_end(path, model: str, epochs: int = EPOCHS) -> None:
    """Train `model` to its last epoch and stop there, so tmp/ keeps the final weights and optimizer."""
    stopped(path, model, INTERRUPT_ENV, str(epochs - 1))


def in_epoch(tmp_path, model: str) -> dict | None:
    state = load_checkpoint(MapsLayout(tmp_path / "maps" / model).resume_state(0))
    return state["progress"]["in_epoch"]


def assert_same_training(tmp_path, a: str, b: str) -> None:
    """Same final weights, Adam state, best models and training log (time aside)."""
    maps_a, maps_b = MapsLayout(tmp_path / "maps" / a), MapsLayout(tmp_path / "maps" / b)
    files = (
        lambda m: m.checkpoint(0),
        lambda m: m.staged_best_model(0, "loss"),
        lambda m: m.staged_best_model(0, "BA"),
    )
    for file in files:
        state_a, state_b = (load_checkpoint(file(m)) for m in (maps_a, maps_b))
        assert state_a["epoch"] == state_b["epoch"]
        assert state_a["model"].keys() == state_b["model"].keys()
        for key, value in state_a["model"].items():
            assert torch.equal(value, state_b["model"][key]), key
    opt_a, opt_b = (
        load_checkpoint(m.optimizer_checkpoint(0))["optimizer"]["state"] for m in (maps_a, maps_b)
    )
    assert opt_a.keys() == opt_b.keys()
    for index, state in opt_a.items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(torch.as_tensor(state[name]), torch.as_tensor(opt_b[index][name])), name
    log_a = pd.read_csv(maps_a.staged_training_tsv(0), sep="\t").drop(columns="time")
    log_b = pd.read_csv(maps_b.staged_training_tsv(0), sep="\t").drop(columns="time")
    pd.testing.assert_frame_equal(log_a, log_b)


def test_sigterm_mid_epoch_checkpoints_there_and_resumes_bit_identically(tmp_path):
    # 12 subjects, batches of 2: 3 training batches an epoch. "twice" gets SIGTERM in two epochs, after
    # the first batch of epoch 0 and after the second of epoch 1 (with train.evaluation_steps' points
    # made before it, which the checkpoint must keep for the log).
    path = write_spec(
        tmp_path, {"ref": body(evaluation_steps=1), "twice": body(evaluation_steps=1)}, batch_size=2
    )
    before = signal.getsignal(signal.SIGTERM)
    stopped(path, "twice", SIGTERM_AT_BATCH_ENV, "0:0", Preempted)
    assert signal.getsignal(signal.SIGTERM) == before  # outside training, SIGTERM is handled as before
    at = in_epoch(tmp_path, "twice")
    assert (at["epoch"], at["batch"], at["steps"]) == (0, 1, 1)
    assert len(at["points"]) == 1 and len(at["collectors"]) == 1
    assert load_checkpoint(MapsLayout(tmp_path / "maps/twice").checkpoint(0))["epoch"] == -1
    stopped(path, "twice", SIGTERM_AT_BATCH_ENV, "1:1", Preempted)
    at = in_epoch(tmp_path, "twice")
    assert (at["epoch"], at["batch"], at["steps"]) == (1, 2, 2)
    to_the_end(path, "twice")
    to_the_end(path, "ref")
    assert in_epoch(tmp_path, "twice") is None
    assert_same_training(tmp_path, "ref", "twice")


def sigterm_to_the_training(earlier: set[int]):
    """In place of the test hook after batch 0 of epoch 0: SIGTERM to this process and the children it
    started for the training (its DataLoader workers), as SLURM's `scancel --signal=TERM` reaches every
    process of a job step. Children that were there before the training (`earlier`: a W&B service, a
    test SLURM, the workers of an earlier torch.compile) are not the job step's and are left alone."""

    def hook(epoch: int, batch: int, rank: int) -> None:
        if (epoch, batch) == (0, 0):
            for child in psutil.Process().children(recursive=True):
                if child.pid not in earlier:
                    os.kill(child.pid, signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def test_with_accumulation_the_checkpoint_waits_for_the_optimizer_step(tmp_path, monkeypatch):
    # accumulation_steps = 2 over 3 batches: steps after batches 1 and 2. SIGTERM after batch 0 is taken
    # after batch 1 (no gradient is left half-accumulated), here in a training whose 2 DataLoader workers
    # get it too (they ignore it); after batch 2 (the last), the epoch's validation is left to the resumed run.
    models = {"ref": body(accumulation=2), "w0": body(accumulation=2), "w2": body(accumulation=2, workers=2)}
    path = write_spec(tmp_path, models, batch_size=2)
    with monkeypatch.context() as mp:
        earlier = {child.pid for child in psutil.Process().children(recursive=True)}
        mp.setattr(preemption, "signal_for_test", sigterm_to_the_training(earlier))
        with pytest.raises(Preempted):
            run_apply(path, target="model.w2.train*")
    stopped(path, "w0", SIGTERM_AT_BATCH_ENV, "1:2", Preempted)
    for model, done in (("w2", (0, 2)), ("w0", (1, 3))):
        at = in_epoch(tmp_path, model)
        assert (at["epoch"], at["batch"]) == done
        to_the_end(path, model)
    to_the_end(path, "ref")
    assert_same_training(tmp_path, "ref", "w0")
    assert_same_training(tmp_path, "ref", "w2")


def test_an_error_after_sigterm_stops_as_an_interrupt():
    # e.g. a DataLoader worker that SIGTERM ended (one started without ignore_sigterm)
    with pytest.raises(Preempted, match="SIGTERM, then RuntimeError: DataLoader worker"):
        with preemption.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            raise RuntimeError("DataLoader worker (pid 1) is killed by signal: Terminated.")
    with pytest.raises(RuntimeError):  # without SIGTERM an error is an error
        with preemption.deferred():
            raise RuntimeError("broken")


def test_a_mid_epoch_checkpoint_loads_weights_only_and_plan_resumes_it(tmp_path):
    path = write_spec(tmp_path, {"a": body()}, batch_size=2)
    stopped(path, "a", SIGTERM_AT_BATCH_ENV, "1:0", Preempted)
    maps = MapsLayout(tmp_path / "maps/a")
    found = resume.load_resume(maps, 0, load_checkpoint(maps.resume_state(0))["config_key"])
    assert found is not None  # weights_only loads of the three files, epochs consistent
    assert found[2]["progress"]["in_epoch"]["batch"] == 1
    run_apply(path)  # finishes: results published, tmp/ removed
    assert maps.best_model(0, "loss").is_file() and not maps.tmp_dir(0).exists()


def test_a_mid_epoch_checkpoint_of_two_processes_is_not_resumed_by_one(tmp_path):
    # each process's running predictions are in the checkpoint: another process count cannot continue it
    maps = MapsLayout(tmp_path / "maps/m")
    progress = Progress(epoch=0, in_epoch=preemption.in_epoch_state(1, 2, 1, [{}, {}], []))
    run = SimpleNamespace(ctx=SimpleNamespace(world_size=1, rank=0), maps=maps, split=0, trainer=None)
    with pytest.raises(InputError) as err:
        preemption.resumed_position(run, progress, SimpleNamespace(epoch=1, start=0.0, points=[]))
    message = str(err.value)
    assert "stopped mid-epoch with 2 processes and resumes with 1: run it with 2" in message
    assert str(maps.tmp_dir(0)) in message and "delete this folder" in message
