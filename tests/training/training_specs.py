"""Tiny training specs (synthetic CAPS at 8 mm, TinyCNN) run through the real plan/apply path."""

from __future__ import annotations

from pathlib import Path

from neuroexec.context import RunContext
from neuroexec.executor import apply
from neuroexec.plan.graph import make_plan
from neuroexec.progress import Reporter
from neuroexec.spec import load_spec

HEADER = """
version = 1
[compute]
workers = 0
batch_size = {batch_size}
seed = 0
deterministic = true
[datasets.demo]
caps = "data/demo"
generate = {{ subjects = {subjects}, resolution_mm = 8, seed = 1 }}
"""

MODEL = """
[models.{name}]
maps = "maps/{name}"
dataset = "demo"
architecture = "TinyCNN"
split = {{ n_splits = 2, splits = [0] }}
{body}
"""


def write_spec(tmp_path: Path, models: dict[str, str], subjects: int = 12, batch_size: int = 4) -> Path:
    """A spec with the demo dataset and one TinyCNN model per entry (`body` = its extra TOML lines)."""
    text = HEADER.format(subjects=subjects, batch_size=batch_size)
    text += "".join(MODEL.format(name=name, body=body) for name, body in models.items())
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def run_apply(path: Path, target: str | None = None):
    spec = load_spec(path)
    return apply(make_plan(spec), RunContext(reporter=Reporter(quiet=True)), target)


def train_task(path: Path, model: str, split: int = 0):
    """The TrainTask payload of `model.<model>.train[split-<split>]`."""
    plan = make_plan(load_spec(path))
    step_id = f"model.{model}.train[split-{split}]"
    return next(p.step.payload for p in plan.steps if p.step.id == step_id)
