"""A scheduler whose arguments build but fail at its first step (StepLR's step_size is only used by
step()) is refused by validate, naming train.scheduler, instead of failing after the first epoch."""

from __future__ import annotations

import pytest

from neuroexec.errors import SpecError
from neuroexec.spec import load_spec
from tests.training.training_specs import write_spec


def spec(tmp_path, scheduler: str):
    return write_spec(tmp_path, {"m": f'task = "classification"\ntrain = {{ scheduler = {scheduler} }}'})


@pytest.mark.parametrize(
    "scheduler, starts, said",
    [
        ('{ name = "StepLR", step_size = "x" }', "StepLR fails at its first step", "unsupported operand"),
        ('{ name = "CosineAnnealingLR", T_max = 0 }', "CosineAnnealingLR fails at its first", "ZeroDivision"),
    ],
)
def test_a_scheduler_failing_at_its_first_step_is_refused_by_validate(tmp_path, scheduler, starts, said):
    with pytest.raises(SpecError) as err:
        load_spec(spec(tmp_path, scheduler))
    (problem,) = err.value.problems
    assert problem.key == "models.m.train.scheduler"
    assert problem.message.startswith(starts) and said in problem.message


def test_a_scheduler_that_steps_is_accepted(tmp_path):
    model = load_spec(spec(tmp_path, '{ name = "StepLR", step_size = 2 }')).models["m"]
    assert model.train.scheduler.name == "StepLR"
