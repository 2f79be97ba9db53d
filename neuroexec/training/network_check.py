"""Plan-time checks of a model's network against the data it will read: the label column exists, and
the architecture builds for the planned input size and gives the output the task needs. The spec's
own checks (spec/checks.py, at validate) saw the architecture's name; these need the data's sizes.

What is known before any step runs: a generated dataset's grid and participants (its settings say
them), else the first image's header and the participants TSV when they exist. A ROI model's input
size depends on its masks' boxes: it is not built here (the training says what does not fit). Registry networks are built on the meta device for large
inputs (no weights allocated; their builders check the sizes) and built and run on the CPU for small
ones; a network of your own is always built and run, on the CPU.

>>> from neuroexec.spec.model import Dataset, Generate, Model
>>> ds = Dataset("d", (), Generate(subjects=4, resolution_mm=8))
>>> planned_input_size(Model("m", Path("maps/m"), "d", architecture="TinyCNN"), ds)
(1, 21, 26, 22)
>>> architecture_refusal(Model("m", Path("maps/m"), "d", label="dx"), ds)[:46]
"models.m.label: no column 'dx' in the particip"
"""

from __future__ import annotations

import difflib
import functools
import math
from pathlib import Path

import pandas as pd
import torch

from neuroexec.errors import InputError, NeuroexecError
from neuroexec.nn import registry
from neuroexec.spec.model import Dataset, Generate, Model

# Inputs up to this many values (40^3) are built and run on the CPU at plan time (milliseconds);
# larger ones of a registry network are only built, on the meta device.
SMALL_INPUT = 1 << 16


def architecture_refusal(model: Model, ds: Dataset) -> str | None:
    """Why `model` cannot train on `ds`, known before any step runs, naming the key; None otherwise."""
    from neuroexec.training.setup import label_code_problem

    labels, why = planned_labels(model, ds)
    if why:
        return why
    if labels and model.task == "classification" and model.label_code is not None:
        why = label_code_problem(model, labels)
        if why:
            return f"models.{model.name}.label_code: {why}"
    size = planned_input_size(model, ds)
    if size is None:
        return None
    output = planned_output_size(model, labels)
    return network_refusal(model, size, output)


def planned_input_size(model: Model, ds: Dataset) -> tuple[int, ...] | None:
    """(C, D, H, W) or (C, H, W) of the model's inputs, when known before extraction."""
    from neuroexec.data import size_reduction
    from neuroexec.data.slice_extract import planned_image_shape

    if model.mode == "patch" and model.patch is not None:
        return (1, *(model.patch.size,) * 3)
    if model.mode == "roi":
        return None
    shape = planned_image_shape(ds)
    if shape is None:
        return None
    factor = model.size_reduction_factor
    if factor is not None:  # ClinicaDL's box, every factor-th voxel (data/size_reduction.py)
        return (1, *size_reduction.reduced_shape(factor)) if size_reduction.fits(shape, factor) else None
    if model.mode == "slice" and model.slice is not None:
        plane = tuple(n for axis, n in enumerate(shape) if axis != model.slice.direction)
        return (3 if model.slice.mode == "rgb" else 1, *plane)
    return (1, *shape)


def planned_output_size(model: Model, labels: list[str] | None) -> int | None:
    """Classes: one per label the data holds, with or without a label code (whose indices may merge
    labels: the training builds one output per label all the same, as ClinicaDL's,
    training/setup.output_size_of); 1 for regression; None for reconstruction or when the labels are
    not known yet."""
    if model.task == "regression":
        return 1
    if model.task != "classification":
        return None
    return len(labels) if labels else None


def planned_labels(model: Model, ds: Dataset) -> tuple[list[str] | None, str | None]:
    """(the labels of the model's data after its diagnoses filter, or None when not known yet; why the
    label column is wrong, or None). Reconstruction reads no label."""
    if model.task == "reconstruction":
        return None, None
    labels: set[str] = set()
    for cohort in ds.cohorts or (None,):
        frame, where = _participants(ds, cohort)
        if frame is None:
            return None, None
        if model.label not in frame.columns:
            return None, _no_column(model, ds, frame, where)
        try:
            kept = _filtered(frame, model, where)
        except InputError:
            return None, None  # another problem of the table: the step reading it says which
        labels |= set(kept[model.label].astype(str))
    return sorted(labels), None


def _participants(ds: Dataset, cohort) -> tuple[pd.DataFrame | None, str]:
    from neuroexec.data.synthetic import planned_participants

    if cohort is not None and Path(cohort.participants).exists():
        return _read(Path(cohort.participants)), str(cohort.participants)
    if ds.generate is not None or (cohort is not None and cohort.generated_by is not None):
        settings = ds.generate or Generate(subjects=2)  # every generated table has the same columns
        return planned_participants(settings), f"the participants dataset {ds.name} generates"
    return None, ""


def _read(path: Path) -> pd.DataFrame | None:
    stat = path.stat()
    return _read_cached(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _read_cached(path: str, _mtime_ns: int, _size: int) -> pd.DataFrame | None:
    from neuroexec.data.participants import load_participants

    try:
        return load_participants(Path(path))
    except (InputError, KeyError, ValueError, OSError):
        return None  # unreadable as a participants table: the steps reading it say why


def _filtered(frame: pd.DataFrame, model: Model, where: str) -> pd.DataFrame:
    from neuroexec.data.participants import validate_participants

    diagnoses = list(model.diagnoses) if model.diagnoses else None
    return validate_participants(frame, Path(where), model.label, diagnoses)


def _no_column(model: Model, ds: Dataset, frame: pd.DataFrame, where: str) -> str:
    columns = [str(c) for c in frame.columns if c not in ("participant_id", "session_id")]
    close = difflib.get_close_matches(model.label, columns, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return (
        f"models.{model.name}.label: no column {model.label!r} in {where}{hint}; set label to one of its "
        f"columns: {', '.join(columns)}"
    )


def network_refusal(model: Model, input_size: tuple[int, ...], output_size: int | None) -> str | None:
    """Why the model's architecture cannot take `input_size` or does not give `output_size`, or None."""
    options = tuple(sorted(model.architecture_options.network_kwargs().items()))
    built_for = output_size if output_size is not None or model.task != "classification" else 2
    why, of_output = _probe(
        model.architecture, model.task, tuple(input_size), built_for, model.dropout, options
    )
    if why is None or (of_output and built_for != output_size):  # classes not known yet: input size only
        return None
    return f"models.{model.name}.architecture: {why}"


@functools.lru_cache(maxsize=256)
def _probe(
    name: str, task: str, input_size: tuple[int, ...], output_size: int | None, dropout: float, options: tuple
) -> tuple[str | None, bool]:
    """(why the network cannot be built or run for `input_size`, or gives another output; whether the
    problem is the output), (None, False) when it fits."""
    small = math.prod(input_size) <= SMALL_INPUT
    ours = name not in registry.REGISTRY
    run = small or ours
    with torch.device("cpu" if run else "meta"):
        try:
            net = registry.build_architecture(name, task, input_size, output_size, dropout, dict(options))
        except NeuroexecError as err:
            return str(err), False
        if not run:
            return None, False
        batch = 2 if small else 1
        try:
            with torch.no_grad():
                out = net.eval()(torch.zeros(batch, *input_size))
        except Exception as err:  # noqa: BLE001 - the network's own code
            shown = " x ".join(map(str, input_size))
            return f"{name} cannot take inputs of {shown}: {type(err).__name__}: {err}", False
    why = _output_problem(name, out, batch, input_size, output_size)
    return why, why is not None


def _output_problem(
    name: str, out, batch: int, input_size: tuple[int, ...], output_size: int | None
) -> str | None:
    expected = (batch, output_size) if output_size is not None else (batch, *input_size)
    if not isinstance(out, torch.Tensor):
        return f"{name} returns a {type(out).__name__} in eval mode; it must return one tensor of shape {expected}"
    if tuple(out.shape) != expected:
        what = f"{output_size} output(s) per input" if output_size is not None else "the input's shape"
        return (
            f"{name} returns shape {tuple(out.shape)} for a batch of {batch} inputs of "
            f"{' x '.join(map(str, input_size))}, and the task needs outputs of {expected} ({what})"
        )
    return None
