"""What a split's training needs before its first epoch: the label code, the datasets, the network
(CNN or its derived autoencoder) and the transferred weights."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torch import nn

from neuroexec.context import resolve_device
from neuroexec.data.datasets import ImageDataset, PatchDataset
from neuroexec.data.participants import encode_labels
from neuroexec.errors import DeviceError, InputError, NeuroexecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import build_autoencoder, build_network, transfer_weights
from neuroexec.spec.model import Compute, Dataset, Model


def label_code_of(model: Model, maps: MapsLayout) -> dict[str, int] | None:
    """ClinicaDL's label_code (sorted labels) of all the model's training data, so that every split
    shares it; None unless the task is classification."""
    if model.task != "classification":
        return None
    path = maps.train_validation_tsv
    frame = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
    if model.label not in frame.columns:
        raise InputError(path, f"no column {model.label!r} (the model's label)", "label")
    code = encode_labels(frame[model.label].astype(str))
    if len(code) < 2:
        raise InputError(
            path, f"classification needs at least 2 labels in {model.label!r}, found {list(code)}"
        )
    return code


def make_dataset(
    model: Model, ds: Dataset, frame: pd.DataFrame, label_code: dict | None, cache: bool = False
) -> ImageDataset | PatchDataset:
    """The torch dataset of one participants frame (image or patch mode)."""
    caps = {c.name: c.caps for c in ds.cohorts}
    label = model.label if model.task != "reconstruction" else None
    common = dict(label=label, label_code=label_code, task=model.task, uncropped=ds.uncropped)
    if model.mode == "patch":
        patch = model.patch
        if patch is None:
            raise NeuroexecError(f"models.{model.name}: mode 'patch' needs patch = {{ size, stride }}")
        return PatchDataset(frame, caps, size=patch.size, stride=patch.stride, **common)
    if model.mode != "image":
        raise NeuroexecError(f"models.{model.name}: mode {model.mode!r} is not supported (image or patch)")
    return ImageDataset(frame, caps, cache=cache, **common)


def output_size_of(model: Model, label_code: dict | None) -> int | None:
    if model.task == "classification":
        return len(label_code or {})
    return 1 if model.task == "regression" else None


def build(model: Model, input_size: list[int], output_size: int | None) -> nn.Module:
    """The CNN of the architecture, or for reconstruction the autoencoder derived from it."""
    if model.task == "reconstruction":
        return build_autoencoder(model.architecture, tuple(input_size), model.dropout)
    return build_network(model.architecture, tuple(input_size), int(output_size or 1), model.dropout)


def transfer(network: nn.Module, source: Path, source_maps: Path | None, is_autoencoder: bool) -> list[str]:
    """Load `source` (weights_only) into `network`: encoder -> convolutions from an autoencoder,
    everything from a CNN. Returns the names of the tensors copied."""
    if not source.is_file():
        raise InputError(source, "transfer learning source model not found (train the source model first?)")
    state, _epoch, name = load_model_state(source)
    described = source_maps is not None and any(
        (source_maps / name).is_file() for name in ("maps.json", "commandline.json")
    )
    if described:
        source_is_ae = read_maps_info(source_maps).task == "reconstruction"
    else:  # a bare checkpoint: judge by its architecture name or its tensor names
        source_is_ae = bool(name and name.startswith("AE_")) or any(k.startswith("encoder.") for k in state)
    return transfer_weights(network, state, source_is_ae, is_autoencoder)


def device_of(compute: Compute, rank: int = 0, world_size: int = 1) -> torch.device:
    """The training device (under DDP on GPUs: this rank's GPU); amp on the CPU is refused."""
    device = resolve_device(compute.device)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    if compute.amp and device.type != "cuda":
        raise DeviceError("compute.amp = true needs a CUDA GPU; this training would run on the CPU")
    return device
