"""Forward passes that produce prediction frames, and the result files of a data group.

Shared by training (validation after each epoch, train/validation results of the best models) and by
the predict step. A `Collector` turns network outputs batch by batch into the rows of a prediction
frame (FORMATS.md "Result tables") plus a per-sample loss, so the training pass can report train
metrics from its own running predictions instead of a second pass over the training set.

    >>> from neuroexec.context import resolve_settings
    >>> from neuroexec.spec.model import Compute
    >>> settings = resolve_settings(Compute(device="cpu", workers=0))  # a step's ctx.settings
    >>> item = {"image": torch.ones(1, 4, 4, 4), "label": torch.tensor(70.0), "participant_id": "sub-01",
    ...         "session_id": "ses-M000", "mode_id": 0}  # an item as ImageDataset gives it
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 1))
    >>> _ = nn.init.ones_(net[1].weight), nn.init.zeros_(net[1].bias)  # predicts the sum of the 64 voxels
    >>> frame, loss = predict_frames(net, [item], "regression", settings, None)
    >>> frame.predicted_label.tolist(), loss  # (70 - 64) ** 2
    ([64.0], 36.0)
    >>> files = write_results(ResultSet(MapsLayout(Path("maps")), 0, "loss", "test", "regression", "image"), frame, loss)
    >>> [str(f) for f in files]
    ['maps/split-0/best-loss/test/test_image_level_prediction.tsv', 'maps/split-0/best-loss/test/test_image_level_metrics.tsv', 'maps/split-0/best-loss/test/description.log']
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from neuroexec import atomic, losses, metrics, ops
from neuroexec.context import Kernels, StepSettings, choose_amp_dtype
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.maps import tables
from neuroexec.maps.layout import MapsLayout

LOSS_COLUMN = "_loss"  # per-sample loss carried by internal frames; never written to a TSV
KEYS = ["participant_id", "session_id"]
PLURAL = {"image": "images", "patch": "patches", "roi": "regions", "slice": "slices"}


class NonFiniteOutputs(InputError):
    """A model whose outputs are NaN or infinite: its weights are not usable (names the model file)."""

    def __init__(self, model_file: Path, bad: int, total: int, mode: str):
        self.bad, self.total = bad, total
        super().__init__(
            model_file,
            f"the model's outputs are NaN or infinite for {bad} of {total} {PLURAL.get(mode, mode + 's')}, "
            "so its predictions would mean nothing; retrain it (a training that diverged: lower "
            "train.learning_rate) or replace this file",
        )


def mode_of(dataset: Dataset) -> str:
    """The items' mode: 'image', 'patch', 'roi' or 'slice' (the datasets' `mode`; 'image' otherwise)."""
    return str(getattr(dataset, "mode", "image"))


def amp_type(settings: StepSettings) -> torch.dtype | None:
    """The autocast type of the step (compute.amp_dtype, chosen by neuroexec.context.choose_amp_dtype),
    None without amp or on the CPU."""
    if not settings.amp or settings.device.type != "cuda":
        return None
    return settings.amp_dtype or choose_amp_dtype("auto", torch.cuda.is_bf16_supported())


def autocast(settings: StepSettings) -> contextlib.AbstractContextManager:
    """Autocast to the step's amp type (`amp_type`); a no-op without amp or on the CPU."""
    dtype = amp_type(settings)
    return contextlib.nullcontext() if dtype is None else torch.autocast("cuda", dtype=dtype)


def reconstruction_range(stats):
    """The stats with the data range PSNR and SSIM take: ClinicaDL's (skimage's PSNR default and its
    SSIM constants) is 1 for images in [0, 1], not the reference's maximum; the two differ when an
    image does not hold its own maximum (size_reduction's box). A reference above 1 (images not
    normalised, which ClinicaDL's PSNR refuses) keeps its maximum.

    >>> from neuroexec.kernels.recon import ReconStats
    >>> reconstruction_range(ReconStats(torch.ones(2), torch.ones(2), torch.tensor([0.5, 3.0]), 4)).ref_max
    tensor([1., 3.])
    """
    return replace(stats, ref_max=stats.ref_max.clamp(min=1.0))


def sample_losses(
    task: str, outputs: torch.Tensor, batch: dict, images: torch.Tensor, loss: str | None = None
) -> torch.Tensor:
    """Per-sample loss (float32, detached) with the model's `train.loss` (None: its task's default,
    cross-entropy or the mean squared error); see neuroexec/losses.py."""
    labels = batch["label"].to(outputs.device)
    return losses.item_losses(task, loss, outputs.detach(), labels, images)


class Collector:
    """Rows of a prediction frame, gathered batch by batch (on the CPU, as float64 numbers)."""

    def __init__(
        self, task: str, mode: str, kernels: Kernels, use_labels: bool = True, loss: str | None = None
    ):
        self.task, self.mode, self.kernels, self.loss = task, mode, kernels, loss  # loss: train.loss
        self.use_labels = use_labels or task == "reconstruction"
        self.participants: list[str] = []
        self.sessions: list[str] = []
        self.mode_ids: list[int] = []
        self.labels: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []  # logits, predictions or [MAE, RMSE, PSNR, SSIM]
        self.losses: list[torch.Tensor] = []
        self.nonfinite = 0  # samples whose network outputs hold a NaN or an infinity

    def add(
        self, batch: dict, outputs: torch.Tensor, images: torch.Tensor, losses: torch.Tensor | None = None
    ) -> None:
        """Record one batch: `outputs` the network's output for `images` (the batch's inputs);
        `losses`: the per-sample losses when the network gives its own (a VAE's), else the task's."""
        outputs = outputs.detach().float()
        self.nonfinite += int((~torch.isfinite(outputs)).reshape(outputs.shape[0], -1).any(dim=1).sum())
        self.participants += list(batch["participant_id"])
        self.sessions += list(batch["session_id"])
        self.mode_ids += [int(i) for i in torch.as_tensor(batch["mode_id"]).reshape(-1)]
        self.labels.append(batch["label"].detach().cpu())
        if losses is not None:
            self.losses.append(losses.detach().float().cpu())
        elif self.use_labels:
            self.losses.append(sample_losses(self.task, outputs, batch, images, self.loss).cpu())
        else:
            self.losses.append(torch.full((outputs.shape[0],), float("nan")))
        if self.task == "reconstruction":
            reference = images.detach().float()
            stats = reconstruction_range(ops.recon_stats(outputs, reference, kernels=self.kernels))
            ssim = metrics.ssim3d(outputs, reference, stats.ref_max)
            columns = (stats.mae(), stats.rmse(), stats.psnr(), ssim)
            self.values.append(torch.stack([c.float() for c in columns], dim=1).cpu())
        else:
            self.values.append(outputs.cpu())

    def frame(self) -> pd.DataFrame:
        """The prediction frame with a `_loss` column (use `split_loss` before writing it)."""
        if not self.participants:
            raise NeuroexecError("no prediction made: the dataset is empty")
        ids = (self.participants, self.sessions, self.mode_ids)
        values = torch.cat(self.values).double().numpy()
        labels = torch.cat(self.labels).numpy()
        if self.task == "classification":
            frame = tables.classification_frame(*ids, labels, values, self.mode)
        elif self.task == "regression":
            frame = tables.regression_frame(*ids, labels, values[:, 0], self.mode)
        else:
            frame = tables.reconstruction_frame(*ids, *values.T, self.mode)
        frame[LOSS_COLUMN] = torch.cat(self.losses).double().numpy()
        return frame


def split_loss(frame: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """(frame without the per-sample loss column, mean loss). Duplicate rows (a distributed sampler
    pads its shards by repeating samples) are dropped first.

    >>> split_loss(pd.DataFrame({"participant_id": ["a"], "session_id": ["s"], "image_id": [0], "_loss": [2.0]}))[1]
    2.0
    """
    ids = [*KEYS, next(c for c in frame.columns if c.endswith("_id") and c not in KEYS)]
    frame = frame.drop_duplicates(subset=ids).reset_index(drop=True)
    # skipna=False: one sample whose loss is not a number makes the mean none either (never hidden)
    return frame.drop(columns=[LOSS_COLUMN]), float(frame[LOSS_COLUMN].mean(skipna=False))


def frame_metrics(frame: pd.DataFrame, task: str, n_classes: int = 0) -> dict[str, float]:
    """Point values of the task's metrics on a prediction frame (no bootstrap): what training logs.

    >>> frame_metrics(pd.DataFrame({"true_label": [0, 1], "predicted_label": [0, 0]}), "classification", 2)["accuracy"]
    0.5
    """
    if task == "classification":
        y_true = frame["true_label"].to_numpy(dtype=np.int64)
        y_pred = frame["predicted_label"].to_numpy(dtype=np.int64)
        return dict(metrics.classification_metrics(y_true, y_pred, n_classes))
    if task == "regression":
        return dict(metrics.regression_metrics(frame["true_label"], frame["predicted_label"]))
    columns = [frame[name].to_numpy(dtype=np.float64) for name in metrics.RECONSTRUCTION_METRICS]
    return dict(metrics.reconstruction_metrics(*columns))


def make_loader(dataset: Dataset, settings: StepSettings, sampler: Sampler | None = None) -> DataLoader:
    """A DataLoader that keeps the device busy (the step's batch size and workers): workers kept alive,
    prefetching, pinned memory on CUDA."""
    extra = {"persistent_workers": True, "prefetch_factor": 4} if settings.workers > 0 else {}
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=settings.workers,
        pin_memory=settings.device.type == "cuda",
        collate_fn=getattr(dataset, "collate_fn", None),  # datasets that fetch whole batches bring their own
        **extra,
    )


def to_device(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=torch.channels_last_3d) if channels_last else images


@torch.no_grad()
def collect(
    model: nn.Module,
    loader: DataLoader,
    collector: Collector,
    settings: StepSettings,
    channels_last: bool = False,
    model_file: Path | None = None,
) -> pd.DataFrame:
    """One evaluation pass (eval mode, no gradients) on the step's device, kernels and amp into
    `collector` (the task, mode and loss of its frame): the frame with per-sample losses. With
    `model_file` (where the weights were read), outputs that are not numbers raise `NonFiniteOutputs`."""
    was_training = model.training
    model.eval()
    loss, mode = collector.loss, collector.mode
    own_losses = getattr(model, "evaluation_losses", None)  # a VAE's loss needs its latent (nn/vae.py)
    try:
        for batch in loader:
            images = to_device(batch["image"], settings.device, channels_last)
            with autocast(settings):
                outputs = model(images)
                losses = None if own_losses is None else own_losses(images, outputs, loss)
            collector.add(batch, outputs, images, losses)
    finally:
        model.train(was_training)
    if model_file is not None and collector.nonfinite:
        raise NonFiniteOutputs(model_file, collector.nonfinite, len(collector.participants), mode)
    return collector.frame()


def predict_frames(
    model: nn.Module,
    dataset: Dataset,
    task: str,
    settings: StepSettings,
    label_code: dict[str, int] | None,
    use_labels: bool = True,
    model_file: Path | None = None,
    loss: str | None = None,
) -> tuple[pd.DataFrame, float | None]:
    """Mode-level prediction frame of `dataset` (in its mode: `mode_of`) and its mean loss (None
    without labels; `loss`: the model's train.loss, None for its task's default). With `model_file`,
    the file the weights come from, an output that is NaN or infinite is an error naming it (a table
    of such predictions would look real: probabilities of NaN logits give BA 0.5).

    >>> from neuroexec.context import resolve_settings
    >>> from neuroexec.spec.model import Compute
    >>> settings = resolve_settings(Compute(device="cpu", workers=0))  # a step's ctx.settings
    >>> item = {"image": torch.ones(1, 4, 4, 4), "label": torch.tensor(1), "participant_id": "sub-01",
    ...         "session_id": "ses-M000", "mode_id": 0}  # an item as ImageDataset gives it
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    >>> frame, loss = predict_frames(net, [item], "classification", settings, {"AD": 0, "CN": 1})
    >>> list(frame.columns)
    ['participant_id', 'session_id', 'image_id', 'true_label', 'predicted_label', 'proba0', 'proba1']
    """
    if task not in tables.TASKS:
        raise NeuroexecError(f"unknown task {task!r}; expected one of {', '.join(tables.TASKS)}")
    if task == "classification" and not label_code:
        raise NeuroexecError("classification predictions need the model's label_code")
    collector = Collector(task, mode_of(dataset), settings.kernels, use_labels, loss)
    frame = collect(model, make_loader(dataset, settings), collector, settings, model_file=model_file)
    frame, mean_loss = split_loss(frame)
    if not use_labels and task != "reconstruction":
        return frame.drop(columns=["true_label"]), None
    return frame, (mean_loss if use_labels else None)


def patch_weights_from_validation(
    maps: MapsLayout,
    split: int,
    metric: str,
    mode: str = "patch",
    selection_threshold: float | None = None,
) -> dict[int, float]:
    """Soft-voting weights from the validation `<mode>`-level predictions of a best model: each
    `<mode>_id`'s validation accuracy, normalised (ClinicaDL's semantics).

    >>> validation = tables.classification_frame(
    ...     ["sub-01"] * 2 + ["sub-02"] * 2, ["ses-M000"] * 4, [0, 1] * 2, [0, 0, 1, 1],
    ...     [[2, 0], [2, 0], [0, 2], [2, 0]], "patch",
    ... )  # patch 0 right twice, patch 1 once
    >>> maps = MapsLayout(Path("maps"))
    >>> _ = write_results(ResultSet(maps, 0, "loss", "validation", "classification", "patch", 2), validation, 0.4)
    >>> patch_weights_from_validation(maps, 0, "loss")
    {0: 0.6666666666666666, 1: 0.3333333333333333}
    """
    path = maps.prediction_tsv(split, metric, "validation", mode)
    if not path.is_file():
        raise InputError(path, f"validation {mode}-level predictions not found (needed for soft voting)")
    frame = pd.read_csv(path, sep="\t")
    if not {"true_label", "predicted_label", f"{mode}_id"} <= set(frame.columns):
        raise InputError(path, f"expected columns true_label, predicted_label, {mode}_id")
    return tables.soft_vote_weights(frame, mode, selection_threshold)


@dataclass(frozen=True)
class ResultSet:
    """One group's results by one best model: where they go (`split-<i>/best-<metric>/<group>/` of
    the MAPS) and how they read (the model's task and mode, its classes, whether the group is labelled).

    >>> ResultSet(MapsLayout(Path("maps")), 0, "loss", "test", "regression", "image").tsv("image")
    PosixPath('maps/split-0/best-loss/test/test_image_level_prediction.tsv')
    """

    maps: MapsLayout
    split: int
    metric: str
    group: str
    task: str
    mode: str
    n_classes: int = 0
    use_labels: bool = True
    selection_threshold: float | None = None  # soft vote: parts below it weigh 0 (ClinicaDL's)

    def tsv(self, level: str, kind: str = "prediction") -> Path:
        """The `<level>`-level prediction or metrics table."""
        where = (self.split, self.metric, self.group, level)
        return self.maps.prediction_tsv(*where) if kind == "prediction" else self.maps.metrics_tsv(*where)


def _image_level(results: ResultSet, frame: pd.DataFrame, weights: dict[int, float] | None) -> pd.DataFrame:
    """Soft vote of a `<mode>`-level frame (classification: validation-accuracy weights)."""
    mode = results.mode
    ids = sorted(int(i) for i in frame[f"{mode}_id"].unique())
    if weights is None and results.task == "classification":
        validation = results.maps.prediction_tsv(results.split, results.metric, "validation", mode)
        threshold = results.selection_threshold
        if results.group == "validation" and results.use_labels:
            weights = tables.soft_vote_weights(frame, mode, threshold)
        elif validation.is_file():
            where = (results.maps, results.split, results.metric, mode)
            weights = patch_weights_from_validation(*where, selection_threshold=threshold)
    weights = weights or {i: 1.0 / len(ids) for i in ids}
    if results.use_labels:
        return tables.soft_vote(frame, weights, mode)
    voted = tables.soft_vote(frame.assign(true_label=-1), weights, mode)
    return voted.drop(columns=["true_label"])


def write_results(
    results: ResultSet,
    frame: pd.DataFrame,
    loss: float | None,
    patch_weights: dict[int, float] | None = None,
    description: str = "",
    part_losses: dict[int, float | None] | None = None,
) -> list[Path]:
    """Write `<group>_<mode>_level_prediction.tsv` (+ `_metrics.tsv` with labels), for patch mode the
    image level by soft voting, and `description.log`, under `split-<i>/best-<metric>/<group>/`.
    Reconstruction in patch mode has no image level (as in ClinicaDL). Returns the files written.
    `part_losses` (a multi-network model: each part's network and loss): the `<mode>`-level metrics
    are one row per part (`part_metrics`).

    >>> frame = tables.classification_frame(["sub-01"], ["ses-M000"], [0], [1], [[0, 2]], "image")
    >>> results = ResultSet(MapsLayout(Path("maps")), 0, "BA", "test", "classification", "image", n_classes=2)
    >>> [f.name for f in write_results(results, frame, 0.1)]
    ['test_image_level_prediction.tsv', 'test_image_level_metrics.tsv', 'description.log']
    """
    r = results
    frame = frame.drop(columns=[LOSS_COLUMN], errors="ignore")
    written: list[Path] = []
    levels = [(r.mode, frame, loss)]
    if r.mode != "image" and r.task != "reconstruction":
        levels.append(("image", _image_level(r, frame, patch_weights), None))
    for level, level_frame, level_loss in levels:
        path = r.tsv(level)
        atomic.write_tsv(path, level_frame)
        written.append(path)
        if r.use_labels:
            if part_losses is not None and level == r.mode:
                table = part_metrics(level_frame, r.task, r.mode, r.n_classes, part_losses)
            else:
                table = tables.metrics_for_predictions(level_frame, r.task, r.n_classes, level_loss)
            path = r.tsv(level, "metrics")
            atomic.write_tsv(path, table, na_rep="N/A")  # ClinicaDL's mark of the loss's missing CI
            written.append(path)
    path = r.maps.description_log(r.split, r.metric, r.group)
    text = description or f"Predictions of group {r.group} by the best-{r.metric} model of split {r.split}."
    atomic.write_text(path, text.rstrip("\n") + "\n")
    written.append(path)
    return written


def part_metrics(
    frame: pd.DataFrame, task: str, mode: str, n_classes: int, losses: dict[int, float | None]
) -> pd.DataFrame:
    """The `<mode>`-level metrics of a multi-network model: one row per part (its network), with
    `<mode>_id` first and the part's loss after the metrics, as ClinicaDL adds a row per network; for
    classification the part's AUC last (metrics.roc_auc of its probabilities).

    >>> frame = tables.classification_frame(["a", "a", "b", "b"], ["s"] * 4, [0, 1, 0, 1], [0, 0, 1, 1],
    ...                                     [[2, 0], [2, 0], [0, 2], [2, 0]], "patch")
    >>> table = part_metrics(frame, "classification", "patch", 2, {0: 0.1, 1: 0.7})
    >>> table[["patch_id", "accuracy", "loss", "AUC"]].values.tolist()
    [[0.0, 1.0, 0.1, 1.0], [1.0, 0.5, 0.7, 0.5]]
    """
    rows = []
    for k, part in frame.groupby(f"{mode}_id", sort=True):
        loss = losses.get(int(k))
        row = {f"{mode}_id": int(k), **frame_metrics(part, task, n_classes), "loss": loss}
        scores = tables.class_probabilities(part, n_classes) if task == "classification" else None
        if scores is not None:
            row["AUC"] = metrics.roc_auc(part["true_label"].to_numpy(dtype=np.int64), scores)
        rows.append(row)
    return pd.DataFrame(rows)


def part_id(frame: pd.DataFrame, mode: str, network: int) -> int:
    """The `<mode>_id` of the rows of one network's frame: its part index as tables write it (for
    slices ClinicaDL's absolute slice index, the first kept slice + network).

    >>> part_id(pd.DataFrame({"slice_id": [7, 7]}), "slice", 2)
    7
    """
    column = f"{mode}_id"
    return int(frame[column].iloc[0]) if column in frame.columns and len(frame) else network
