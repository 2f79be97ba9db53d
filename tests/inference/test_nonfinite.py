"""A model whose outputs are NaN or infinite: predict stops with the model file and the count of bad
outputs, and writes no table (before: exit 0, empty probabilities and a metrics table saying BA 0.5)."""

from __future__ import annotations

import pytest
import torch
from inference_bench import make_bench

from neuroexec.context import StepSettings
from neuroexec.evaluation import NonFiniteOutputs, predict_frames
from neuroexec.inference.model_io import group_dataset, load_model
from neuroexec.inference.predict import predict_group
from neuroexec.nn.networks import build_network


def net_with(value: float) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("TinyCNN", (1, 12, 14, 12), 2, 0.0)
    with torch.no_grad():
        net.fc[-1].bias.fill_(value)  # every output of the last layer
    return net


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_predict_names_the_model_file_and_the_count_of_bad_outputs(tmp_path, cohort_a, value):
    bench = make_bench(tmp_path, [("A", cohort_a)], model=net_with(value))
    with pytest.raises(NonFiniteOutputs) as err:
        predict_group(bench.task(), bench.ctx)
    message = str(err.value)
    assert str(bench.maps.best_model(0, "loss")) in message
    assert "NaN or infinite for 8 of 8 images" in message
    assert not bench.maps.result_dir(0, "loss", "test").exists()


class SomeRowsNaN(torch.nn.Module):
    """Wraps a network and spoils the first output row of every batch."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x).clone()
        out[0, 0] = float("nan")
        return out


def test_the_count_is_of_the_outputs_that_are_not_numbers(tmp_path, cohort_a):
    bench = make_bench(tmp_path, [("A", cohort_a)])
    task = bench.task()
    net, info = load_model(bench.root, 0, "loss")
    dataset = group_dataset(task, info, bench.frame, "diagnosis")
    model_file = bench.maps.best_model(0, "loss")
    args = (
        dataset,
        "classification",
        StepSettings(torch.device("cpu"), "auto", False, 0, 3),
        info.label_code,
    )
    frame, _ = predict_frames(net, *args, model_file=model_file)
    assert len(frame) == 8  # the intact model: no error
    with pytest.raises(NonFiniteOutputs) as err:
        predict_frames(SomeRowsNaN(net), *args, model_file=model_file)
    assert (err.value.bad, err.value.total) == (3, 8)  # batches of 3, 3 and 2: one row each
