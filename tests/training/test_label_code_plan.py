"""The plan knows a classification model's labels (its participants after the diagnoses filter) and
checks its label_code against them as the training does: a label without an index, an index beyond
the one output per label, refused before any step runs; and a network of your own is checked against
the output size the training builds (one per label, also when the code merges labels)."""

from __future__ import annotations

import pytest

from neuroexec.errors import PlanRefused
from neuroexec.plan.graph import REFUSED, make_plan
from neuroexec.spec import load_spec
from tests.training.training_specs import run_apply, write_spec

NETS = """
import torch

class Fixed(torch.nn.Module):
    '''Gives {n} outputs whatever output_size says.'''
    def __init__(self, input_size, output_size, dropout=0.0):
        super().__init__()
        self.fc = torch.nn.Linear(input_size[0], {n})

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))
"""


def refusals(path) -> dict[str, str]:
    plan = make_plan(load_spec(path))
    return {p.step.id: " ".join(p.reasons) for p in plan.steps if p.action == REFUSED}


@pytest.mark.parametrize(
    "code, why",
    [
        ("{ AD = 0, CN = 5 }", "models.m.label_code gives {'CN': 5}, but the network has 2 outputs"),
        ("{ CN = 0, MCI = 1 }", "the 'diagnosis' labels ['AD'] have no class index in models.m.label_code"),
    ],
)
def test_the_plan_refuses_a_label_code_that_does_not_fit_the_labels(tmp_path, code, why):
    path = write_spec(
        tmp_path, {"m": f'task = "classification"\nlabel_code = {code}\ntrain = {{ epochs = 1 }}'}
    )
    said = refusals(path)
    assert list(said) == ["model.m.train[split-0]"]
    assert (
        said["model.m.train[split-0]"].startswith("models.m.label_code: ")
        and why in said["model.m.train[split-0]"]
    )
    with pytest.raises(PlanRefused):
        run_apply(path)
    assert not (tmp_path / "data").exists()  # no step ran, generate included


@pytest.mark.parametrize("module, n", [("label_plan_two", 2), ("label_plan_one", 1)])
def test_a_merged_code_plans_one_output_per_label_as_the_training_builds(tmp_path, module, n):
    (tmp_path / f"{module}.py").write_text(NETS.format(n=n))
    body = f'task = "classification"\narchitecture = "{module}:Fixed"\nlabel_code = {{ AD = 0, CN = 0 }}'
    path = write_spec(tmp_path, {"m": body})
    path.write_text(path.read_text().replace('architecture = "TinyCNN"\n', ""))
    said = refusals(path)
    if n == 2:  # two labels: two outputs, the index 1 unused
        assert said == {}
    else:
        assert "models.m.architecture" in said["model.m.train[split-0]"]
        assert "the task needs outputs of (2, 2)" in said["model.m.train[split-0]"]
