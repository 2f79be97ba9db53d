"""The overall training bar: one bar over the epochs (a resumed training's done ones counted), the
epoch's batch bar below it."""

from __future__ import annotations

import io

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import NORMAL, Reporter
from neuroexec.spec import load_spec
from tests.training.training_specs import write_spec


def test_training_shows_an_overall_bar_over_its_epochs_and_one_per_epoch(tmp_path):
    path = write_spec(tmp_path, {"cnn": "train = { epochs = 2 }"}, subjects=8)
    out = io.StringIO()
    reporter = Reporter(stream=out, live=True, level=NORMAL)
    apply(make_plan(load_spec(path)), RunContext(reporter=reporter), "model.cnn.train*")
    text = out.getvalue()
    assert "split-0 epochs 0/2" in text and "split-0 epochs 2/2" in text and "epochs 3/2" not in text
    assert "split-0 epoch 1/2 " in text and "split-0 epoch 2/2 " in text  # each epoch's batches
