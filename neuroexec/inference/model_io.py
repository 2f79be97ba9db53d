"""What every result step of a data group needs: the trained network of one (split, selection metric),
the group's images as a dataset, and the source NIfTI geometry (affine, shape) for NIfTI outputs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from neuroexec.data.caps import CapsLayout
from neuroexec.data.participants import SINGLE_COHORT, caps_layouts, cohort_of
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.inference.task import GroupTask
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import MapsInfo, best_model_file, read_maps_info, recorded_path
from neuroexec.maps.layout import LegacyMapsLayout, MapsLayout
from neuroexec.preprocessings import T1_LINEAR, Preprocessing


def output_size_of(info: MapsInfo) -> int:
    """Output nodes: maps.json's output_size, else the number of classes (classification) or 1."""
    if info.output_size:
        return int(info.output_size)
    if info.task == "classification":
        if not info.label_code:
            raise InputError(
                MapsLayout(info.root).maps_json, "classification model without output_size nor label_code"
            )
        return len(info.label_code)
    return 1


def input_size_of(info: MapsInfo) -> tuple[int, ...]:
    """(C, D, H, W) the network takes: maps.json's input_size, else (1, s, s, s) for a patch model."""
    if info.input_size:
        return tuple(int(s) for s in info.input_size)
    if info.mode == "patch" and info.patch_size:
        size = int(info.patch_size)
        return (1, size, size, size)
    if info.mode == "slice":
        raise InputError(
            MapsLayout(info.root).maps_json,
            "input_size is missing: a slice model's input size depends on the images (C, H, W)",
            field="input_size",
        )
    raise InputError(
        MapsLayout(info.root).maps_json,
        "input_size is missing: cannot rebuild the network",
        field="input_size",
    )


def build_model(info: MapsInfo) -> nn.Module:
    """The (untrained) network a MAPS describes (its architecture, built with the MAPS's [Architecture]
    options): a CNN, or its AutoEncoder for reconstruction.

    `build_model(read_maps_info(Path("maps/cnn"))).architecture_name` is 'Conv5_FC3' for a MAPS of that
    architecture (tests/inference/test_model_io.py).
    """
    from neuroexec.nn.registry import build_architecture

    try:
        return build_architecture(
            info.architecture,
            info.task,
            input_size_of(info),
            # a reconstruction gives back its input (ClinicaDL records that size as output_size, a list)
            None if info.task == "reconstruction" else output_size_of(info),
            info.dropout,
            options=info.architecture_options,
        )
    except NeuroexecError as err:
        raise InputError(MapsLayout(info.root).maps_json, str(err)) from None


def _existing_best(root: Path, split: int) -> list[str]:
    layout = MapsLayout(root)
    names = [layout.best_dir(split, metric).name for metric in layout.best_metrics(split)]
    return sorted(names + LegacyMapsLayout(root).best_dir_names(split))


def load_model(
    maps_root: Path,
    split: int,
    metric: str,
    device: torch.device | str = "cpu",
    network: int | None = None,
    input_size: Sequence[int] | None = None,
) -> tuple[nn.Module, MapsInfo]:
    """The best model of `split` for selection `metric`, in eval mode on `device`, and its MapsInfo;
    `network`: network k of a multi-network model (`best-<metric>/network-<k>_model.pth.tar`), with
    `input_size` its part's (regions of different boxes; maps.json records network 0's).

    `model, info = load_model(Path("maps/cnn"), 0, "loss", "cpu")` needs a trained MAPS
    (tests/inference/test_model_io.py).
    """
    maps_root = Path(maps_root)
    info = read_maps_info(maps_root)
    path = best_model_file(maps_root, split, metric)
    if network is not None:
        path = MapsLayout(maps_root).best_model(split, metric, network)
    if not path.is_file():
        found = _existing_best(maps_root, split)
        listed = ", ".join(found) if found else "none"
        raise InputError(
            path,
            f"no model for split {split} and selection metric '{metric}'; best-* folders found: {listed}",
        )
    built = info if input_size is None else dataclasses.replace(info, input_size=tuple(input_size))
    model = build_model(built)
    state, _, _ = load_model_state(path)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches: the weights were trained for another input size
        detail = str(err).strip().splitlines()[-1].strip()
        raise InputError(
            path,
            f"weights do not fit architecture {info.architecture} with input {input_size_of(built)}: {detail}",
        ) from None
    if missing or unexpected:
        raise InputError(
            path,
            f"weights do not match architecture {info.architecture} with input {input_size_of(built)}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}",
        )
    return model.to(device).eval(), info


# --- the group's images -----------------------------------------------------------------------------


def group_caps(task: GroupTask, info: MapsInfo) -> dict[str, Path]:
    """cohort -> CAPS of a group: the spec dataset's cohorts, or for the training groups the CAPS the
    model was trained on (maps.json `caps_directory`)."""
    if task.dataset is not None:
        return {c.name: Path(c.caps) for c in task.dataset.cohorts}
    caps = info.caps_directory
    where = MapsLayout(info.root).maps_json
    if not caps:
        raise InputError(
            where, f"group '{task.group.name}': caps_directory is missing, cannot find the training images"
        )
    if isinstance(caps, (list, tuple)):
        raise InputError(
            where, f"group '{task.group.name}': multi-cohort training data is not supported here yet"
        )
    if str(caps).endswith(".tsv"):  # ClinicaDL's multi-cohort table: cohort, path
        table = pd.read_csv(recorded_path(caps, info.root), sep="\t", dtype=str)
        return {row["cohort"]: recorded_path(row["path"], info.root) for row in table.to_dict("records")}
    if _trained_multi_cohort(info.root):
        # One CAPS for several cohorts would read every image from the first cohort's CAPS.
        raise InputError(
            where,
            f"group '{task.group.name}': the model was trained on a multi-cohort dataset but "
            f"caps_directory names one CAPS ({caps}), so the images of the other cohorts cannot be "
            "found; evaluate them through a group with `dataset = ...` instead",
            "caps_directory",
        )
    return {SINGLE_COHORT: recorded_path(caps, info.root)}


def _trained_multi_cohort(root: Path) -> bool:
    """maps.json's `multi_cohort` flag (False when unreadable: read_maps_info reports that)."""
    try:
        return bool(json.loads(MapsLayout(Path(root)).maps_json.read_text()).get("multi_cohort"))
    except (OSError, ValueError, AttributeError):
        return False


def uncropped_of(task: GroupTask, info: MapsInfo) -> bool:
    return bool(task.dataset.uncropped) if task.dataset is not None else info.uncropped


def preprocessing_of(task: GroupTask, info: MapsInfo) -> Preprocessing:
    """The preprocessing of the images a group reads: its dataset's, which must be the model's (the
    maps.json preprocessing_dict), or the model's; InputError naming both when they differ."""
    trained = Preprocessing.from_record(
        info.raw.get("preprocessing_dict") or {}, MapsLayout(info.root).maps_json
    )
    if task.dataset is None:
        return trained
    wanted = Preprocessing.of(task.dataset)
    if wanted != trained:
        raise InputError(
            MapsLayout(info.root).maps_json,
            f"group '{task.group.name}': the model was trained on {trained} images, dataset "
            f"'{task.dataset.name}' holds {wanted} ones; give the group a dataset of the model's preprocessing",
            "preprocessing",
        )
    return wanted


def source_nifti(
    row: dict, caps: dict[str, Path], uncropped: bool, preprocessing: Preprocessing = T1_LINEAR
) -> Path:
    """The NIfTI (t1-linear by default) an item's tensor was extracted from."""
    layout = CapsLayout(caps[cohort_of(row, caps)], preprocessing)
    return layout.t1_linear_nifti(str(row["participant_id"]), str(row["session_id"]), uncropped)


def nifti_geometry(path: Path) -> tuple[np.ndarray, tuple[int, ...]]:
    """(affine, 3D shape) of a NIfTI, read from its header only."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except Exception as err:  # nibabel raises several unrelated types for a bad file
        raise InputError(path, f"cannot read the NIfTI header: {err}") from None
    return np.asarray(image.affine, dtype=np.float64), tuple(int(s) for s in image.shape[:3])


def group_dataset(
    task: GroupTask, info: MapsInfo, frame: pd.DataFrame, label: str | None, part_index: int | None = None
):
    """The group's items in the model's mode, read from the extracted tensors (`part_index`: that part
    of each image only, for network `part_index` of a multi-network model)."""
    from neuroexec.data.mode_datasets import mode_dataset

    caps = caps_layouts(group_caps(task, info), preprocessing_of(task, info))
    # Items normalised as the model saw them in training (each image, or each patch).
    common = dict(
        label=label,
        label_code=info.label_code,
        task=info.task,
        uncropped=uncropped_of(task, info),
        normalize=info.normalize,
        size_reduction=info.size_reduction_factor,  # the reduced images the network was trained on
    )
    if info.mode not in ("image", "patch", "roi", "slice"):
        raise InputError(
            MapsLayout(info.root).maps_json,
            f"mode '{info.mode}' is not supported (image, patch, roi or slice)",
            "mode",
        )
    if info.mode == "patch" and not info.patch_size:
        raise InputError(MapsLayout(info.root).maps_json, "patch mode without patch_size", "patch_size")
    if info.mode == "roi" and not info.roi_list:
        raise InputError(MapsLayout(info.root).maps_json, "roi mode without roi_list", "roi_list")
    return mode_dataset(
        info.extract_mode, frame, caps, discarded=info.discarded_slices, part_index=part_index, **common
    )


def label_column(task: GroupTask, info: MapsInfo) -> str | None:
    """The true-label column of a group (None when the group has no labels or the task has none)."""
    if not task.group.use_labels or info.task == "reconstruction":
        return None
    return task.group.label or info.label
