"""The learning rate of each epoch goes to TensorBoard (train/learning_rate) and to the trackers (every
metric observer gets the same points; MLflow and W&B name it `learning_rate`, observers.suffixed), at
the epoch's step, beside the other per-epoch values; training.tsv keeps ClinicaDL's columns."""

from __future__ import annotations

import pandas as pd
import pytest

from neuroexec.maps.layout import MapsLayout
from neuroexec.training import observers
from tests.training.training_specs import run_apply, write_spec

BODY = (
    'task = "classification"\n'
    'train = { epochs = 2, learning_rate = 1e-3, scheduler = { name = "StepLR", step_size = 1, gamma = 0.5 } }'
)
EXPECTED = [1e-3, 5e-4]  # the epoch's rate, before its end-of-epoch scheduler step


class Recorder(observers.Observer):
    """A tracker that keeps what it is given."""

    points: list = []

    def log(self, phase: str, values: dict[str, float], step: int) -> None:
        self.points.append((phase, observers.suffixed(phase, values), step))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> MapsLayout:
    folder = tmp_path_factory.mktemp("lr")
    real = observers._metric_observers
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(observers, "_metric_observers", lambda *args: [*real(*args), Recorder()])
        run_apply(write_spec(folder, {"m": BODY}, subjects=6, batch_size=4))
    return MapsLayout(folder / "maps/m")


def test_tensorboard_gets_the_learning_rate_of_each_epoch(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(trained.tensorboard_dir(0, "train")))
    board.Reload()
    rates = board.Scalars("learning_rate")
    assert [e.step for e in rates] == [e.step for e in board.Scalars("loss")] and len(rates) == 2
    assert [e.value for e in rates] == pytest.approx(EXPECTED, rel=1e-6)
    assert "learning_rate" not in pd.read_csv(trained.training_tsv(0), sep="\t").columns


def test_the_trackers_get_the_learning_rate_with_the_train_values(trained):
    train = [(values, step) for phase, values, step in Recorder.points if phase == "train"]
    assert [values["learning_rate"] for values, _ in train] == pytest.approx(EXPECTED, rel=1e-6)
    assert all("loss_train" in values for values, _ in train)
    assert len(train) == 2
