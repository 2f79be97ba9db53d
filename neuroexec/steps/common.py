"""Helpers shared by step kinds: step-id builders (one place that spells step ids) and the steps a
dataset's images depend on. The tasks the steps run live in their packages (data/tasks.py,
training/task.py, inference/task.py)."""

from __future__ import annotations

from neuroexec.extraction_mode import ExtractionMode
from neuroexec.spec.model import Dataset, Model, Spec


def generate_id(dataset: str) -> str:
    return f"dataset.{dataset}.generate"


def extract_id(dataset: str, mode: ExtractionMode) -> str:
    return f"dataset.{dataset}.extract[{mode}]"


def split_id(model: str) -> str:
    return f"model.{model}.split"


def train_id(model: str, split: int) -> str:
    return f"model.{model}.train[split-{split}]"


def group_id(group: str, model: str) -> str:
    return f"group.{group}.define[{model}]"


def result_key(model: str, split: int, metric: str) -> str:
    return f"{model}/split-{split}/best-{metric}"


def predict_id(group: str, model: str, split: int, metric: str) -> str:
    return f"group.{group}.predict[{result_key(model, split, metric)}]"


def save_tensors_id(group: str, model: str, split: int, metric: str) -> str:
    return f"group.{group}.save-tensors[{result_key(model, split, metric)}]"


def interpret_id(group: str, name: str, model: str, split: int, metric: str) -> str:
    return f"group.{group}.interpret.{name}[{result_key(model, split, metric)}]"


def generate_deps(ds: Dataset) -> tuple[str, ...]:
    """The generate steps that write a dataset's CAPS: its own, or those of the cohorts it borrows."""
    return tuple(generate_id(name) for name in dict.fromkeys(c.generated_by for c in ds.cohorts) if name)


def dataset_deps(spec: Spec, dataset: str, mode: ExtractionMode | None = None) -> tuple[str, ...]:
    """The steps that make a dataset's images (and tensors of `mode`) exist."""
    deps = generate_deps(spec.datasets[dataset])
    return (*deps, extract_id(dataset, mode)) if mode else deps


def trained_models(spec: Spec) -> list[Model]:
    return [m for m in spec.models.values() if not m.pretrained]
