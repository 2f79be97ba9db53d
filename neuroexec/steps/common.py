"""Helpers shared by step kinds: which extractions a spec needs, the config slices of compute settings
that change results, and step-id builders (one place that spells step ids)."""

from __future__ import annotations

import pandas as pd

from neuroexec.data.participants import check_images_exist, load_participants
from neuroexec.spec.model import Compute, Dataset, Model, Spec


def generate_id(dataset: str) -> str:
    return f"dataset.{dataset}.generate"


def extract_id(dataset: str, mode: str) -> str:
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


def result_compute(c: Compute) -> dict:
    """Compute settings that change a trained model (workers, device and kernels do not)."""
    return {"seed": c.seed, "deterministic": c.deterministic, "amp": c.amp, "batch_size": c.batch_size}


def generate_deps(ds: Dataset) -> tuple[str, ...]:
    """The generate steps that write a dataset's CAPS: its own, or those of the cohorts it borrows."""
    return tuple(generate_id(name) for name in dict.fromkeys(c.generated_by for c in ds.cohorts) if name)


def dataset_deps(spec: Spec, dataset: str, mode: str | None = None) -> tuple[str, ...]:
    """The steps that make a dataset's images (and tensors of `mode`) exist."""
    deps = generate_deps(spec.datasets[dataset])
    return (*deps, extract_id(dataset, mode)) if mode else deps


def participants_inputs(spec: Spec, dataset: str) -> tuple:
    """External participant files of a dataset (not those a generate step makes)."""
    ds = spec.datasets[dataset]
    return tuple(c.participants for c in ds.cohorts if c.generated_by is None and c.participants.is_file())


def trained_models(spec: Spec) -> list[Model]:
    return [m for m in spec.models.values() if not m.pretrained]


def dataset_frame(
    ds: Dataset, label: str | None, diagnoses: tuple[str, ...] | None, check_images: bool = True
) -> pd.DataFrame:
    """The participants of every cohort of a dataset (with a `cohort` column), filtered on `diagnoses`;
    with `check_images`, every session's image must exist (all missing ones reported together)."""
    frames = [
        load_participants(c.participants, label=label, diagnoses=list(diagnoses) if diagnoses else None,
                          baseline=ds.baseline).assign(cohort=c.name)
        for c in ds.cohorts
    ]  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    if check_images:
        check_images_exist(frame, {c.name: c.caps for c in ds.cohorts}, ds.uncropped)
    return frame
