"""Steps only wire tasks into the graph: every step kind carries its package's frozen task (no tuples)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from neuroexec.data.tasks import ExtractTask, GroupDefineTask, SplitTask
from neuroexec.inference.task import GroupTask
from neuroexec.plan.graph import make_plan
from neuroexec.spec import load_spec
from neuroexec.spec.model import Dataset
from neuroexec.training.task import TrainTask
from tests.training.training_specs import write_spec

GROUP = """
[datasets.other]
caps = "data/other"
generate = { subjects = 4, resolution_mm = 8, seed = 2, subject_offset = 100 }
[groups.test]
dataset = "other"
models = ["patches"]
save_tensors = {}
interpret = [{ name = "grad", method = "gradients" }]
"""

TASKS = {
    "generate": Dataset,
    "extract": ExtractTask,
    "split": SplitTask,
    "train": TrainTask,
    "group": GroupDefineTask,
    "predict": GroupTask,
    "save-tensors": GroupTask,
    "interpret": GroupTask,
}


def test_every_step_carries_its_typed_task(tmp_path: Path):
    path = write_spec(tmp_path, {"patches": 'mode = "patch"\npatch = { size = 8, stride = 8 }' + GROUP})
    steps = [p.step for p in make_plan(load_spec(path)).steps]
    assert {s.kind for s in steps} == set(TASKS)
    for step in steps:
        assert isinstance(step.payload, TASKS[step.kind]), step.id
        assert dataclasses.is_dataclass(step.payload) and type(step.payload).__dataclass_params__.frozen
    extracts = {s.id: s.payload.mode for s in steps if s.kind == "extract"}
    assert {k: str(v) for k, v in extracts.items()} == {
        "dataset.demo.extract[patch-s8-t8]": "patch-s8-t8",
        "dataset.other.extract[patch-s8-t8]": "patch-s8-t8",
    }
    interpret = next(s for s in steps if s.kind == "interpret")
    assert interpret.payload.interpretation.name == "grad"
    assert interpret.inputs == (interpret.payload.checkpoint,)
