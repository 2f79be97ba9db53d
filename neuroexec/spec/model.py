"""The resolved spec: frozen dataclasses, all defaults applied, all paths absolute. Nothing downstream
reads TOML or raw dicts: steps get these objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from neuroexec.extraction_mode import ExtractionMode

# The cohort of a dataset with one CAPS: ClinicaDL names it "single" (its caps_dict key and the cohort
# column of the tables it writes and reads), so neuroexec's tables say the same.
SINGLE_COHORT = "single"

# ClinicaDL's spelling of selection metrics; `balanced_accuracy` is accepted as an alias of BA.
METRIC_ALIASES = {"balanced_accuracy": "BA"}


def canonical_metric(name: str) -> str:
    return METRIC_ALIASES.get(name, name)


@dataclass(frozen=True)
class Compute:
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"  # "float16" (ClinicaDL's, with a grad scaler), "bfloat16", or auto
    compile: bool = False
    kernels: str = "auto"
    workers: int = 2
    threads: int | None = None  # torch's CPU threads while a step runs (None: torch's default)
    batch_size: int = 8
    seed: int = 0
    deterministic: bool = False
    compensation: str = "memory"  # ClinicaDL's: the cuBLAS workspace of deterministic CUDA runs
    fully_sharded_data_parallel: bool = False
    channels_last: bool | str = "auto"  # "auto": see training.setup.channels_last_for
    cache: bool = False

    def merged(self, overrides: dict[str, Any] | None) -> Compute:
        return replace(self, **(overrides or {}))


@dataclass(frozen=True)
class Generate:
    """A dataset's `generate` table. atrophy and anatomy read the first seven fields; ClinicaDL's kinds
    (trivial, random, shepplogan, hypometabolic, artifacts) their flags' (spec/generate_kinds.py says
    which kind reads which: only those enter the step's fingerprint)."""

    subjects: int | None = None
    kind: str = "atrophy"
    sessions: int = 1
    resolution_mm: float = 4.0
    region: str = "hippocampus"
    seed: int = 0
    subject_offset: int = 0
    caps_directory: Path | None = None
    participants_tsv: Path | None = None
    preprocessing: str = "t1-linear"
    tracer: str | None = None
    suvr_reference_region: str | None = None
    use_uncropped_image: bool = False
    mask_path: Path | None = None
    atrophy_percent: float = 60.0
    mean: float = 0.0
    sigma: float | None = None
    pathology: str = "ad"
    anomaly_degree: float = 30.0
    image_size: int = 128
    cn_subtypes_distribution: tuple[float, ...] = (1.0, 0.0, 0.0)
    ad_subtypes_distribution: tuple[float, ...] = (0.05, 0.85, 0.1)
    smoothing: bool = False
    extract_json: str | None = None
    contrast: bool = False
    gamma: tuple[float, ...] = (-0.2, -0.05)
    motion: bool = False
    translation: tuple[float, ...] = (2.0, 4.0)
    rotation: tuple[float, ...] = (2.0, 4.0)
    num_transforms: int = 2
    noise: bool = False
    noise_std: tuple[float, ...] = (5.0, 15.0)
    n_proc: int = 1  # processes writing the images: in no fingerprint (same bytes for any number)


@dataclass(frozen=True)
class Cohort:
    name: str
    caps: Path
    participants: Path
    generated_by: str | None = None  # the spec dataset whose generate step writes this CAPS
    dataset: str | None = None  # the spec dataset this cohort is (`cohorts = [{ name, dataset }]`)
    key: str = field(default="", compare=False)  # where the spec gives it: 'datasets.d.cohorts[1]'


@dataclass(frozen=True)
class Dataset:
    name: str
    cohorts: tuple[Cohort, ...]
    generate: Generate | None = None
    multi_cohort: bool = False
    preprocessing: str = "t1-linear"
    uncropped: bool = False
    normalize: bool = True
    patch_layout: str = "bundle"
    baseline: bool = False
    tracer: str | None = None  # pet-linear: trc-<tracer>
    suvr_reference_region: str | None = None  # pet-linear: suvr-<region>
    custom_suffix: str | None = None  # custom: the images' names end with it

    @property
    def caps(self) -> Path:
        """The CAPS of a single-cohort dataset (the first cohort otherwise)."""
        return self.cohorts[0].caps

    @property
    def participants(self) -> Path:
        return self.cohorts[0].participants


@dataclass(frozen=True)
class Patch:
    size: int = 50
    stride: int = 50


@dataclass(frozen=True)
class Roi:
    """ROI mode: regions by mask name, found in `<CAPS>/masks/tpl-<template>/` (data/caps.py)."""

    names: tuple[str, ...] = ()
    uncropped: bool = False  # ClinicaDL's uncropped_roi: the masked image at full size
    custom_template: str | None = None  # `custom` preprocessing: the masks' template
    custom_mask_pattern: str | None = None  # `custom` preprocessing: a pattern the mask names contain


@dataclass(frozen=True)
class Slice:
    """Slice mode: 2D slices along `direction` (0 sagittal, 1 coronal, 2 axial)."""

    direction: int = 0
    mode: str = "rgb"  # "rgb": three identical channels; "single": one
    discarded: tuple[int, int] = (0, 0)  # slices left out at the beginning and at the end


@dataclass(frozen=True)
class Split:
    n_splits: int = 2
    splits: tuple[int, ...] | None = None
    seed: int = 0
    directory: Path | None = None
    valid_longitudinal: bool = False

    @property
    def indices(self) -> tuple[int, ...]:
        return self.splits if self.splits is not None else tuple(range(self.n_splits))


@dataclass(frozen=True)
class Transfer:
    model: str | None = None
    maps: Path | None = None
    selection: str = "loss"
    nb_unfrozen_layer: int = 0  # > 0: only the last this many weight/bias tensors train


@dataclass(frozen=True)
class Scheduler:
    """A torch.optim.lr_scheduler class and its keyword arguments (name -> value pairs)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ArchitectureOptions:
    """ClinicaDL's [Architecture] parameters; networks take the ones they know (nn/registry.py)."""

    latent_space_size: int = 128
    feature_size: int = 1024
    n_conv: int = 4
    io_layer_channels: int = 8
    recons_weight: float = 1.0
    kl_weight: float = 1.0
    normalization: str = "batch"
    weights: Path | None = None  # a local pretrained-weights file (resnet18's ImageNet weights)

    def network_kwargs(self) -> dict[str, Any]:
        """The parameters as the networks' keyword arguments (weights excluded)."""
        return {k: v for k, v in asdict(self).items() if k != "weights"}


@dataclass(frozen=True)
class Train:
    epochs: int = 20
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    optimizer: str = "Adam"
    selection_metrics: tuple[str, ...] = ("loss",)
    patience: int = 0
    tolerance: float = 0.0
    accumulation_steps: int = 1
    visualization: bool = False
    tensorboard: bool = True
    loss: str | None = None  # None: the task's default (CrossEntropyLoss, MSELoss)
    adaptive_learning_rate: bool = False
    scheduler: Scheduler | None = None
    evaluation_steps: int = 0
    save_all_models: bool = False
    sampler: str = "random"
    data_augmentation: tuple[str, ...] = ()
    # Observers: they do not change the model (kept out of the training fingerprint).
    profiler: bool = False
    track_exp: str | None = None
    calculate_emissions: bool = False


@dataclass(frozen=True)
class Model:
    name: str
    maps: Path
    dataset: str | None
    task: str = "classification"
    mode: str = "image"
    patch: Patch | None = None
    roi: Roi | None = None
    slice: Slice | None = None
    multi_network: bool = False  # one network per part (patch, roi, slice), ensembled to the image
    selection_threshold: float = 0.0  # soft vote: parts below this validation accuracy weigh 0
    label: str = "diagnosis"
    diagnoses: tuple[str, ...] | None = None
    label_code: tuple[tuple[str, int], ...] | None = None  # classification: label -> class index
    architecture: str = "Conv5_FC3"
    architecture_options: ArchitectureOptions = field(default_factory=ArchitectureOptions)
    dropout: float = 0.5
    size_reduction_factor: int | None = None  # image mode: ClinicaDL's size_reduction
    split: Split = field(default_factory=Split)
    transfer: Transfer | None = None
    train: Train = field(default_factory=Train)
    compute: Compute = field(default_factory=Compute)
    # Retrain into a MAPS neuroexec did not train for this model, replacing it (plan/ownership.py).
    overwrite: bool = False

    @property
    def pretrained(self) -> bool:
        """A model without a dataset is an existing MAPS used as is (no training)."""
        return self.dataset is None

    @property
    def extract_mode(self) -> ExtractionMode:
        """The tensor extraction this model reads: whole images, patches, regions or slices."""
        if self.mode == "patch" and self.patch is not None:
            return ExtractionMode.patch(self.patch.size, self.patch.stride)
        if self.mode == "roi" and self.roi is not None:
            return ExtractionMode.roi(self.roi.names, self.roi.uncropped)
        if self.mode == "slice" and self.slice is not None:
            return ExtractionMode.slice(self.slice.direction, self.slice.mode)
        return ExtractionMode.IMAGE


@dataclass(frozen=True)
class Interpretation:
    name: str
    method: str = "gradients"
    target_node: int = 0
    target: str | None = None
    save_individual: bool = False
    save_nifti: bool = False  # the individual maps as NIfTI too (ClinicaDL's interpret --save_nifti)
    keep_true: bool | None = None
    absolute: bool = True
    normalize: str = "none"
    vmax: float = 0.5
    figure: bool = True
    smoothgrad_samples: int = 10
    smoothgrad_noise: float = 0.1
    mask: Path | None = None


@dataclass(frozen=True)
class SaveTensors:
    tensors: bool = True  # tensors/ (false: only the NIfTIs or latents, as ClinicaDL's --save_nifti alone)
    nifti: bool = False
    latent: bool = False  # an autoencoder's codes (ClinicaDL's predict --save_latent_tensor)


@dataclass(frozen=True)
class Group:
    name: str
    models: tuple[str, ...]
    dataset: str | None = None
    from_training: str | None = None
    splits: tuple[int, ...] | None = None
    selection_metrics: tuple[str, ...] = ("loss",)
    use_labels: bool = True
    label: str | None = None
    diagnoses: tuple[str, ...] | None = None
    skip_leak_check: bool = False
    overwrite: bool = False
    keep_other_splits: bool = False  # with overwrite and splits: the other splits' old results stay (stale)
    predict: bool = True
    save_tensors: SaveTensors | None = None
    interpret: tuple[Interpretation, ...] = ()
    compute: Compute = field(default_factory=Compute)


@dataclass(frozen=True)
class Spec:
    path: Path
    version: int
    compute: Compute
    datasets: dict[str, Dataset]
    models: dict[str, Model]
    groups: dict[str, Group]
    # The `[cluster]` table as written (SLURM resources of `apply --slurm`, read by neuroexec/cluster/):
    # no step's config holds it, so it is in no fingerprint.
    cluster: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def dir(self) -> Path:
        return self.path.parent


def as_config(obj: Any) -> Any:
    """A dataclass as plain JSON-able data (paths as strings): what fingerprints and state records hold."""
    return _plain(asdict(obj)) if hasattr(obj, "__dataclass_fields__") else _plain(obj)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
