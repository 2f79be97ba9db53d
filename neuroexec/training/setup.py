"""What a split's training needs before its first epoch: the label code, the datasets, the network
(CNN or its derived autoencoder) and the transferred weights."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import torch
import torch.distributed as dist
from torch import nn

from neuroexec import distributed
from neuroexec.data.caps import CapsLayout
from neuroexec.data.datasets import ImageDataset
from neuroexec.data.mode_datasets import mode_dataset
from neuroexec.data.participants import encode_labels
from neuroexec.data.roi_extract import RoiSource, preprocessing_name
from neuroexec.data.shared_cache import share_images
from neuroexec.errors import DeviceError, InputError, NeuroexecError
from neuroexec.maps.checkpoints import load_model_state
from neuroexec.maps.info import read_maps_info
from neuroexec.maps.layout import MapsLayout
from neuroexec.nn import transfer_weights
from neuroexec.nn.registry import build_architecture
from neuroexec.spec.model import Compute, Dataset, Model, Transfer


def label_code_of(model: Model, maps: MapsLayout) -> dict[str, int] | None:
    """ClinicaDL's label_code of all the model's training data, so that every split shares it: the
    model's own `label_code` (`custom_label_code`), else the sorted labels; None unless the task is
    classification. For regression, checks that the label column is numeric (an InputError names the
    first value that is not)."""
    if model.task not in ("classification", "regression"):
        return None
    path = maps.train_validation_tsv
    frame = pd.read_csv(path, sep="\t", dtype={"participant_id": str, "session_id": str})
    if model.label not in frame.columns:
        raise InputError(path, f"no column {model.label!r} (the model's label)", "label")
    if model.task == "regression":
        numbers = pd.to_numeric(frame[model.label], errors="coerce")
        bad = frame[model.label][numbers.isna() & frame[model.label].notna()]
        if len(bad):
            raise InputError(
                path,
                f"regression needs a numeric label column; {model.label!r} holds {bad.iloc[0]!r} "
                f"({len(bad)} non-numeric value(s))",
                "label",
            )
        return None
    code = encode_labels(frame[model.label].astype(str))
    if len(code) < 2:
        raise InputError(
            path, f"classification needs at least 2 labels in {model.label!r}, found {list(code)}"
        )
    return code if model.label_code is None else custom_label_code(model, code, path)


def custom_label_code(model: Model, sorted_code: dict[str, int], path: Path) -> dict[str, int]:
    """The model's `label_code` for the labels of its training data (`sorted_code`'s keys), the class
    index of each (several labels may share one). The network has one output per label of the data, as
    ClinicaDL's (its output size counts the labels, not the indices): a label without an index, or an
    index no output has, is refused. Labels of the code the data lacks are left out (no item has them).

    >>> model = Model("cnn", Path("maps"), "demo", label_code=(("CN", 1), ("AD", 0), ("MCI", 2)))
    >>> custom_label_code(model, {"AD": 0, "CN": 1}, Path("train.tsv"))
    {'CN': 1, 'AD': 0}
    """
    why = label_code_problem(model, list(sorted_code))
    if why:
        raise InputError(path, why)
    code = dict(model.label_code or ())
    return {label: code[label] for label in code if label in sorted_code}


def label_code_problem(model: Model, labels: list[str]) -> str | None:
    """Why the model's `label_code` does not fit the `labels` of its training data (a label without an
    index, an index beyond the one output per label), or None; the plan asks it too, where the labels
    are known (training/network_check.py)."""
    code = dict(model.label_code or ())
    key = f"models.{model.name}.label_code"
    missing = [label for label in labels if label not in code]
    if missing:
        return (
            f"the {model.label!r} labels {missing} have no class index in {key} ({code}); give each "
            f"label of the training data an index, or remove {key} to number the sorted labels"
        )
    beyond = {label: i for label, i in code.items() if label in labels and i >= len(labels)}
    if beyond:
        return (
            f"{key} gives {beyond}, but the network has {len(labels)} outputs (one per label of the "
            f"training data, as ClinicaDL's): use indices 0 to {len(labels) - 1}"
        )
    return None


def freeze(net: nn.Module, transfer: Transfer | None, source: Path | None) -> list[str]:
    """ClinicaDL's `nb_unfrozen_layer` of a transferred model: every parameter stops requiring a
    gradient except the last 2 * nb_unfrozen_layer in the network's order (a layer's weight and bias),
    so the optimizer, built next, trains those only. Nothing without a transfer source or with 0.
    Returns the names of the parameters left trainable.

    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    >>> freeze(net, Transfer(model="ae", nb_unfrozen_layer=1), Path("ae.pth.tar"))
    ['2.weight', '2.bias']
    >>> net[0].weight.requires_grad
    False
    """
    count = transfer.nb_unfrozen_layer if transfer is not None and source is not None else 0
    named = list(net.named_parameters())
    if not count:
        return [name for name, _ in named]
    for index, (_, parameter) in enumerate(named):
        parameter.requires_grad = index >= len(named) - 2 * count
    return [name for name, parameter in named if parameter.requires_grad]


def make_dataset(
    model: Model,
    ds: Dataset,
    frame: pd.DataFrame,
    label_code: dict | None,
    cache: bool = False,
    warn: Callable[[str], None] | None = None,
    processes: int = 1,
    part_index: int | None = None,
) -> torch.utils.data.Dataset:
    """The torch dataset of one participants frame, in the model's mode (`data/mode_datasets.py`);
    `part_index`: that part of each image only (one network per part). `cache` (image mode) reads
    the images into memory now when they fit (`preload`) in this process's share of the memory, one of
    `processes` training processes on this machine; patch mode reads memory-mapped bundles."""
    caps = {c.name: CapsLayout.of(c.caps, ds) for c in ds.cohorts}  # with the dataset's preprocessing
    label = model.label if model.task != "reconstruction" else None
    common = dict(label=label, label_code=label_code, task=model.task, uncropped=ds.uncropped)
    if model.mode == "patch" and model.patch is None:
        raise NeuroexecError(f"models.{model.name}: mode 'patch' needs patch = {{ size, stride }}")
    discarded = model.slice.discarded if model.slice is not None else (0, 0)
    dataset = mode_dataset(
        model.extract_mode,
        frame,
        caps,
        discarded=discarded,
        part_index=part_index,
        cache=cache and model.mode == "image",
        normalize=ds.normalize,
        roi_source=roi_source_of(model, ds),
        size_reduction=model.size_reduction_factor,
        **common,
    )
    if cache and model.mode == "image":
        preload(dataset, warn=warn, processes=processes)
    return dataset


def roi_source_of(model: Model, ds: Dataset) -> RoiSource | None:
    """Where a ROI model's masks are: the dataset's preprocessing's template, or roi.custom_*."""
    if model.mode != "roi" or model.roi is None:
        return None
    roi = model.roi
    return RoiSource.of(
        preprocessing_name(ds.preprocessing), ds.uncropped, roi.custom_template, roi.custom_mask_pattern
    )


def preload(
    dataset: ImageDataset,
    budget: float = 0.5,
    warn: Callable[[str], None] | None = None,
    processes: int = 1,
) -> bool:
    """compute.cache: read every image into memory now, in this process (DataLoader workers forked
    later share it), when the dataset takes at most `budget` of the available memory; otherwise turn
    the cache off with a warning. Returns whether the dataset is cached.

    Under torchrun (`processes` > 1 on this machine, a process group initialised) the copy is shared
    by the machine's processes through /dev/shm (`shared_cache`), and `dataset.shared_cache` says so.
    Without room there, each process holds its own copy, within `budget / processes`.

    >>> from neuroexec.data.extract import plan_extraction, run_extraction
    >>> from neuroexec.data.participants import load_participants
    >>> from neuroexec.data.synthetic import generate_atrophy_dataset
    >>> data = generate_atrophy_dataset(Path("data"), subjects=2, resolution_mm=8.0)
    >>> frame = load_participants(data.participants_tsv)
    >>> _ = run_extraction(plan_extraction(frame, data.caps_dir, "image"), normalize=True)
    >>> preload(ImageDataset(frame, data.caps_dir, cache=True))  # 2 images of 21 x 26 x 22 voxels
    True
    """
    if not len(dataset):
        return False
    dataset.cache = False  # reading the first image's shape must not start the cache
    shape = dataset.input_size
    need = len(dataset) * math.prod(shape) * 4
    available = available_memory()
    fits = available is None or need <= budget * available
    if processes > 1:
        if dist.is_initialized():
            images = share_images(dataset.paths, shape, dataset.image, distributed.local_rank(), fits)
            if images is not None:
                dataset.cache, dataset.shared_cache = True, True
                dataset._cache.update(enumerate(images))
                return True
        budget /= processes
        fits = available is None or need <= budget * available
    if not fits:
        copies = f" (each of the {processes} training processes on this machine holds its own copy)"
        message = (
            f"compute.cache: the {len(dataset)} images need {need / 2**30:.2f} GiB, more than "
            f"{budget:.0%} of the {available / 2**30:.2f} GiB of available memory"
            f"{copies if processes > 1 else ''}; reading them from disk"
        )
        (warn or (lambda text: warnings.warn(text, stacklevel=3)))(message)
        return False
    dataset.cache = True
    for i in range(len(dataset)):
        dataset.image(i)
    return True


def available_memory() -> int | None:
    """Bytes of memory available now without swapping (psutil's `available`: MemAvailable on Linux),
    None when the platform does not say."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):
        return None


def output_size_of(model: Model, label_code: dict | None) -> int | None:
    if model.task == "classification":
        return len(label_code or {})
    return 1 if model.task == "regression" else None


def build(model: Model, input_size: list[int], output_size: int | None) -> nn.Module:
    """The model's network (nn/registry.py): a CNN, or for reconstruction an autoencoder."""
    return build_architecture(
        model.architecture,
        model.task,
        tuple(input_size),
        output_size,
        model.dropout,
        # weights (resnet18's ImageNet file) given, None included: a network trained, not rebuilt
        model.architecture_options.network_kwargs() | {"weights": model.architecture_options.weights},
    )


def transfer(network: nn.Module, source: Path, source_maps: Path | None, is_autoencoder: bool) -> list[str]:
    """Load `source` (weights_only) into `network`: encoder -> convolutions from an autoencoder,
    everything from a CNN. Returns the names of the tensors copied."""
    if not source.is_file():
        raise InputError(source, "transfer learning source model not found (train the source model first?)")
    state, _epoch, name = load_model_state(source)
    described = source_maps is not None and MapsLayout(source_maps).is_maps
    if described:
        source_is_ae = read_maps_info(source_maps).task == "reconstruction"
    else:  # a bare checkpoint: judge by its architecture name or its tensor names
        source_is_ae = bool(name and name.startswith("AE_")) or any(k.startswith("encoder.") for k in state)
    return transfer_weights(network, state, source_is_ae, is_autoencoder)


def check_compile(compute: Compute, device: torch.device) -> None:
    """compute.compile on the CPU without a C++ compiler (what torch.compile's inductor needs there) is
    refused before the first epoch. The device itself is the step's (`RunContext.settings`).

    >>> check_compile(Compute(compile=False), torch.device("cpu"))
    """
    if compute.compile and device.type == "cpu":
        check_cpu_compiler()


def check_cpu_compiler() -> None:
    """Raise DeviceError unless torch.compile's inductor finds a C++ compiler (CXX or g++ ...)."""
    try:
        from torch._inductor import config
        from torch._inductor.cpp_builder import cpp_compiler_search
    except ImportError:  # another torch layout: let torch.compile report for itself
        return
    search = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    try:
        cpp_compiler_search(search)
    except Exception:  # noqa: BLE001 - inductor's InvalidCxxCompiler or a failing lookup
        tried = ", ".join(str(c) for c in search if c is not None) or "none"
        raise DeviceError(
            "compute.compile = true on the CPU needs a C++ compiler for torch.compile (inductor); "
            f"none works here (tried: {tried}). Install g++ (or set CXX), or set compute.compile = false"
        ) from None


# channels_last_3d pays off on large volumes and costs on tiny ones (measured on CPU: Conv5_FC3 at
# 169x208x179 1.13x faster, TinyCNN at 42x52x45 0.75x); "auto" switches at this many voxels per image.
CHANNELS_LAST_MIN_VOXELS = 1 << 20


def channels_last_for(compute, input_size) -> bool:
    """Whether training uses channels_last_3d: the spec's true/false, or for "auto" the image size;
    never for 2D slices (input size (C, H, W)): channels_last_3d is a layout of volumes, nor under FSDP
    (its flat parameters have no layout; validate refuses `channels_last = true` with it).

    >>> channels_last_for(Compute(channels_last=True), [3, 169, 208])
    False
    """
    if len(input_size) != 4 or compute.fully_sharded_data_parallel:  # FSDP flattens the parameters
        return False
    if compute.channels_last == "auto":
        voxels = 1
        for n in list(input_size)[1:]:
            voxels *= int(n)
        return voxels >= CHANNELS_LAST_MIN_VOXELS
    return bool(compute.channels_last)
