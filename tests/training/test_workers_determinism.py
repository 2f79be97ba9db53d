"""compute.workers never changes results: with deterministic = true, trainings with 0 and 2 DataLoader
workers give bit-identical models and logs, and a run with workers interrupted and resumed gives the
model of an uninterrupted run (TinyCNN has dropout, whose draws would shift with the loader's)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from neuroexec.context import RunContext
from neuroexec.maps.checkpoints import load_checkpoint
from neuroexec.maps.layout import MapsLayout
from neuroexec.progress import Reporter
from neuroexec.spec.model import Compute
from neuroexec.training import resume
from neuroexec.training.loop import Trainer
from neuroexec.training.resume import INTERRUPT_ENV
from tests.training.test_loop import Items
from tests.training.training_specs import run_apply, write_spec

EPOCHS = 3


def body(workers: int) -> str:
    return (
        'task = "classification"\n'
        f"compute = {{ workers = {workers} }}\n"
        f'train = {{ epochs = {EPOCHS}, learning_rate = 1e-3, selection_metrics = ["loss"] }}'
    )


def interrupted(path, target: str, after_epoch: int) -> list[bool]:
    """Apply `target`, stopped after `after_epoch`; for each training run, whether it resumed."""
    resumed, real = [], resume.load_resume

    def load_resume(*args):
        found = real(*args)
        resumed.append(found is not None)
        return found

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INTERRUPT_ENV, str(after_epoch))
        mp.setattr(resume, "load_resume", load_resume)
        with pytest.raises(KeyboardInterrupt):
            run_apply(path, target=target)
    return resumed


def assert_same_training(tmp_path, a: str, b: str) -> None:
    """Same final weights (the tmp/ checkpoint of the last epoch), best model and training log."""
    maps_a, maps_b = MapsLayout(tmp_path / "maps" / a), MapsLayout(tmp_path / "maps" / b)
    for maps_files in (lambda m: m.checkpoint(0), lambda m: m.staged_best_model(0, "loss")):
        state_a, state_b = (load_checkpoint(maps_files(m)) for m in (maps_a, maps_b))
        assert state_a["epoch"] == state_b["epoch"]
        assert state_a["model"].keys() == state_b["model"].keys()
        for key, value in state_a["model"].items():
            assert torch.equal(value, state_b["model"][key]), key
    log_a = pd.read_csv(maps_a.staged_training_tsv(0), sep="\t").drop(columns="time")
    log_b = pd.read_csv(maps_b.staged_training_tsv(0), sep="\t").drop(columns="time")
    assert len(log_a) == EPOCHS
    pd.testing.assert_frame_equal(log_a, log_b)


def test_two_workers_train_the_model_of_none(tmp_path):
    # Both stopped right after their last epoch, so that tmp/ still holds the final weights.
    path = write_spec(tmp_path, {"w0": body(0), "w2": body(2)}, subjects=8, batch_size=2)
    interrupted(path, "model.w0.train*", EPOCHS - 1)
    interrupted(path, "model.w2.train*", EPOCHS - 1)
    assert_same_training(tmp_path, "w0", "w2")


def test_a_run_with_workers_resumes_bit_identically(tmp_path):
    path = write_spec(tmp_path, {"w0": body(0), "w2": body(2)}, subjects=8, batch_size=2)
    interrupted(path, "model.w0.train*", EPOCHS - 1)
    assert interrupted(path, "model.w2.train*", 0) == [False]
    assert interrupted(path, "model.w2.train*", EPOCHS - 1) == [True]
    assert_same_training(tmp_path, "w0", "w2")


@pytest.mark.parametrize("workers", [0, 2])
def test_the_training_loaders_leave_the_global_rng_to_the_model(workers):
    # Dropout draws from the global RNG: epochs of loading (the train loader's iterators, a validation
    # pass with its own loader; worker processes started or reused) must not move it.
    compute = Compute(device="cpu", workers=workers, batch_size=2, seed=0)
    ctx = RunContext(reporter=Reporter(quiet=True))
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(27, 1))
    t = Trainer(net, torch.optim.SGD(net.parameters()), "regression", "image", compute, 1, ctx)
    data = Items(6)
    loader = t.loader(data, t.sampler(data, shuffle=True))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        seen = [p for batch in loader for p in batch["participant_id"]]
        assert sorted(seen) == [f"sub-{i:02d}" for i in range(6)]
        t.evaluate(data)  # eval mode: no dropout draws
    assert torch.equal(torch.get_rng_state(), before)
