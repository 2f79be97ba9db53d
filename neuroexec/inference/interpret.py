"""`interpret`: saliency maps of a data group for one model (split, selection metric).

Maps are computed batch by batch and folded into one running `SaliencyState` per mode index through
`ops.saliency_accumulate`: memory holds one batch of maps, never the group's. Outputs, under
`split-<i>/best-<m>/<group>/interpret-<name>/`:

    mean_<mode>-<k>_map.pt, std_<mode>-<k>_map.pt (+ .nii.gz, 3D, the source image's header)
    mean_image-0_map.nii.gz                         (patch models: the patch means folded back)
    <sub>_<ses>_<mode>-<k>_map.pt                   (save_individual; + .nii.gz with save_nifti)
    data.tsv                                        (the items used, with labels and predictions)
    mean_image-0_map.png                            (figure = true: inference/figure.py)
    mean_slice-<k>_map.png                          (figure = true, slice models: each 2D mean map)
    summary.json                                    (counts, method, target, selection, mask mass)

A multi-network model is interpreted network by network, network k on its part k (`<mode>-<k>` maps,
folded back into the image as for one network). ClinicaDL 1.6.1 refuses to interpret a multi-network
model ("not implemented"); neuroexec does it.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from neuroexec import atomic, ops
from neuroexec.context import Kernels, RunContext, StepSettings
from neuroexec.data.size_reduction import reduce_volume, reduced_affine, reduced_shape
from neuroexec.data.synthetic import generated_mask
from neuroexec.errors import InputError, NeuroexecError
from neuroexec.evaluation import make_loader
from neuroexec.inference.fold import PartPlace
from neuroexec.inference.model_io import (
    group_caps,
    group_dataset,
    label_column,
    load_model,
    output_size_of,
    preprocessing_of,
    source_nifti,
    uncropped_of,
)
from neuroexec.inference.networks import network_count
from neuroexec.inference.nifti_out import load_source
from neuroexec.inference.saliency import resolve_target, saliency_batch
from neuroexec.inference.saliency_files import MapFiles
from neuroexec.inference.task import GroupTask, group_participants
from neuroexec.maps.info import MapsInfo
from neuroexec.ops import SaliencyState


@dataclass
class _Accumulator:
    """Running saliency and input sums per mode index, plus the rows of the items used."""

    maps: dict[int, SaliencyState] = field(default_factory=dict)
    inputs: dict[int, SaliencyState] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    skipped: int = 0
    files: MapFiles | None = None  # where the individual maps go (save_individual)

    def add(
        self, k: int, maps: torch.Tensor, images: torch.Tensor, interp, kernels: Kernels
    ) -> torch.Tensor | None:
        if k not in self.maps:
            self.maps[k] = SaliencyState.empty(maps.shape[1:], maps.device)
            self.inputs[k] = SaliencyState.empty(images.shape[1:], images.device)
        normalize = None if interp.normalize in (None, "none") else interp.normalize
        processed = ops.saliency_accumulate(
            maps.float(),
            self.maps[k],
            abs=interp.absolute,
            normalize=normalize,
            return_maps=interp.save_individual,
            kernels=kernels,
        )
        ops.saliency_accumulate(images.float(), self.inputs[k], abs=False, kernels=kernels)
        return processed


def _selected(outputs: torch.Tensor, labels: torch.Tensor, keep_true: bool | None) -> torch.Tensor:
    """Boolean mask of the batch items kept: all, only correctly (True) or only wrongly (False) classified."""
    if keep_true is None:
        return torch.ones(outputs.shape[0], dtype=torch.bool, device=outputs.device)
    correct = outputs.argmax(dim=1) == labels.to(outputs.device)
    return correct if keep_true else ~correct


@dataclass(frozen=True)
class _Explained:
    """The model whose predictions are explained, and what its maps are taken of."""

    model: torch.nn.Module
    info: MapsInfo
    target: int  # the output node explained
    target_name: str | None  # its class name, when it has one
    label: str | None  # the group's true-label column (None: unlabelled)


def interpret_group(task: GroupTask, ctx: RunContext) -> dict:
    """Compute and write the saliency maps of `task.interpretation` for the group (see module doc).

    It needs a trained model in its MAPS, so the interpret step is its example;
    tests/inference/test_interpret.py runs it on a tiny MAPS. It returns the step's record summary, such
    as {'used': 12, 'skipped': 0, ...}.
    """
    interp = task.interpretation
    if interp is None:
        raise NeuroexecError(f"group {task.group.name}: interpret step without an interpretation")
    settings = ctx.with_settings(task.group.compute).settings  # resolved once for the step
    explained = _explained(task, settings.device, 0 if task.info().multi_network else None)
    frame = group_participants(task)
    if frame.empty:
        raise InputError(task.maps.group_data_tsv(task.group.name), "the data group has no participants")
    files = _map_files(task, explained.info, frame, settings.kernels)
    mask_path, mask = _load_mask(task, tuple(files.source.shape[:3]))
    factor = explained.info.size_reduction_factor
    if mask is not None and factor is not None:  # the maps are in the network's reduced grid
        mask = reduce_volume(mask, factor)
    acc = _accumulate_parts(task, explained, frame, settings, ctx, _Accumulator(files=files))
    whole_map, whole_input = files.means(acc.maps, acc.inputs)
    where = (task.split, task.metric, task.group.name, interp.name)
    atomic.write_tsv(task.maps.interpret_data_tsv(*where), pd.DataFrame(acc.rows))
    summary = _summary(task, explained, acc)
    if interp.figure:
        title = f"{interp.method}, {task.group.name}, target {explained.target_name or explained.target}"
        summary["figure"] = files.figure(whole_map, whole_input, title).as_dict()
    if interp.figure and explained.info.extract_mode.is_slice:
        files.slice_figures(acc.maps, acc.inputs)
    if mask is not None:
        summary["mask"] = {"path": str(mask_path), **mask_mass(whole_map, mask, brain_of(whole_input))}
        ctx.reporter.info(_mask_line(task, mask_path, summary["mask"], explained.info.extract_mode.is_roi))
    atomic.write_json(task.maps.interpret_summary(*where), summary)
    return {"used": summary["used"], "skipped": acc.skipped, "mask": summary.get("mask")}


def _map_files(task: GroupTask, info: MapsInfo, frame: pd.DataFrame, kernels: Kernels) -> MapFiles:
    """The writer of the maps: on the grid of the group's first image (its header for every NIfTI),
    or on the network's reduced grid (data/size_reduction.py)."""
    caps = group_caps(task, info)
    path = source_nifti(frame.iloc[0].to_dict(), caps, uncropped_of(task, info), preprocessing_of(task, info))
    source = load_source(path)
    affine, image_shape = np.asarray(source.affine, dtype=np.float64), tuple(int(n) for n in source.shape[:3])
    factor = info.size_reduction_factor
    if factor is not None:
        affine, image_shape = reduced_affine(affine, factor), reduced_shape(factor)
    place = PartPlace(kernels, next(iter(caps.values())), uncropped_of(task, info))
    return MapFiles(task, info, source, affine, image_shape, place)


def _explained(
    task: GroupTask, device: torch.device, network: int | None = None, input_size: list[int] | None = None
) -> _Explained:
    """The best model to explain (`network`: that network of a multi-network model, reading parts of
    `input_size`), its input gradients only, and the target node; a keep_true that the group or the
    model cannot honour is refused here, before any image is read."""
    interp = task.interpretation
    model, info = load_model(task.model.maps, task.split, task.metric, device, network, input_size)
    if info.task == "reconstruction":
        raise NeuroexecError(f"{task.model.maps}: saliency maps are not defined for reconstruction models")
    for p in model.parameters():
        p.requires_grad_(False)  # only input gradients are needed
    target, target_name = resolve_target(
        interp.target, interp.target_node, info.task, info.label_code, output_size_of(info)
    )
    label = label_column(task, info)
    if interp.keep_true is not None and (label is None or info.task != "classification"):
        raise InputError(
            None,
            f"groups.{task.group.name}.interpret '{interp.name}': keep_true needs a labelled "
            "group and a classification model",
            "keep_true",
        )
    return _Explained(model, info, target, target_name, label)


def _accumulate_parts(
    task: GroupTask,
    explained: _Explained,
    frame: pd.DataFrame,
    settings: StepSettings,
    ctx: RunContext,
    acc: _Accumulator,
) -> _Accumulator:
    """The group's running sums, into `acc`: of the model on every item, or of each network of a
    multi-network model on its own part (`explained`: network 0's)."""
    info = explained.info
    if not info.multi_network:
        dataset = group_dataset(task, info, frame, explained.label)
        _accumulate(task, explained, make_loader(dataset, settings), settings, ctx, acc)
        _require_selected(task, acc)
        return acc
    for k in range(network_count(info, task.split, task.metric)):
        dataset = group_dataset(task, info, frame, explained.label, part_index=k)
        network = _explained(task, settings.device, k, dataset.input_size)
        _accumulate(task, network, make_loader(dataset, settings), settings, ctx, acc)
    _require_selected(task, acc)
    return acc


def _accumulate(
    task: GroupTask,
    explained: _Explained,
    loader: torch.utils.data.DataLoader,
    settings: StepSettings,
    ctx: RunContext,
    into: _Accumulator | None = None,
) -> _Accumulator:
    """Saliency maps of every batch folded into the running sums per mode index (see module doc);
    `into`: sums to add to (then an empty selection is the caller's to refuse)."""
    interp, device = task.interpretation, settings.device
    generator = torch.Generator(device=device).manual_seed(int(task.group.compute.seed))
    acc = _Accumulator() if into is None else into
    for batch in ctx.reporter.iterate(loader, total=len(loader), desc=f"interpret {interp.name}"):
        images = batch["image"].to(device, torch.float32)
        raw, outputs = saliency_batch(
            explained.model,
            images,
            interp.method,
            explained.target,
            interp.smoothgrad_samples,
            interp.smoothgrad_noise,
            generator,
        )
        keep = _selected(outputs, batch["label"], interp.keep_true)
        acc.skipped += int((~keep).sum())
        mode_ids = torch.as_tensor(batch["mode_id"]).to(device)
        for k in sorted(set(mode_ids[keep].tolist())):
            index = torch.nonzero(keep & (mode_ids == k)).flatten()
            processed = acc.add(int(k), raw[index], images[index], interp, settings.kernels)
            _keep_items(task, explained, acc, batch, outputs, index, int(k), processed)
    if into is None:
        _require_selected(task, acc)
    return acc


def _require_selected(task: GroupTask, acc: _Accumulator) -> None:
    """Refuse an interpretation that kept no item (keep_true)."""
    if not acc.maps:
        interp = task.interpretation
        raise NeuroexecError(
            f"group {task.group.name}, interpretation '{interp.name}': no image selected "
            f"(keep_true = {interp.keep_true}, {acc.skipped} skipped)"
        )


def _keep_items(
    task: GroupTask,
    explained: _Explained,
    acc: _Accumulator,
    batch: dict,
    outputs: torch.Tensor,
    index: torch.Tensor,
    k: int,
    processed: torch.Tensor | None,
) -> None:
    """The data.tsv rows of the batch items `index` of mode index `k`, and their own maps when
    save_individual asks for them (`processed`)."""
    mode, kind = explained.info.mode, explained.info.task
    for j, i in enumerate(index.tolist()):
        row = _row(batch, i, outputs, mode, kind, explained.label is not None)
        acc.rows.append(row)
        if processed is not None and acc.files is not None:
            acc.files.individual(row["participant_id"], row["session_id"], k, processed[j])


def _summary(task: GroupTask, explained: _Explained, acc: _Accumulator) -> dict:
    """summary.json: what was explained, how, and how many items were used."""
    interp = task.interpretation
    summary = {
        "name": interp.name,
        "method": interp.method,
        "model": str(task.model.maps),
        "split": task.split,
        "selection_metric": task.metric,
        "group": task.group.name,
        "mode": explained.info.mode,
        "target_node": explained.target,
        "target": explained.target_name,
        "keep_true": interp.keep_true,
        "absolute": interp.absolute,
        "normalize": interp.normalize,
        "used": len(acc.rows),
        "skipped": acc.skipped,
        "used_per_mode_index": {str(k): s.count for k, s in sorted(acc.maps.items())},
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    if interp.method == "smoothgrad":
        summary.update(smoothgrad_samples=interp.smoothgrad_samples, smoothgrad_noise=interp.smoothgrad_noise)
    return summary


def _mask_line(task: GroupTask, mask_path: Path, m: dict, roi: bool = False) -> str:
    """The progress line saying how much of the saliency lies in the mask (a ROI model sees only its
    regions: their voxels are its brain)."""
    brain = "the regions the model reads" if roi else "the brain"
    return (
        f"interpret {task.interpretation.name} ({task.group.name}, split-{task.split}): "
        f"{100 * m['mass_inside']:.1f}% of the saliency mass lies in the {mask_path.name.split('.')[0]} "
        f"mask, which covers {100 * m['brain_share']:.1f}% of {brain} ({m['ratio']:.1f}x an even spread)"
    )


def _row(batch: dict, i: int, outputs: torch.Tensor, mode: str, kind: str, labelled: bool) -> dict:
    row = {
        "participant_id": str(batch["participant_id"][i]),
        "session_id": str(batch["session_id"][i]),
        f"{mode}_id": int(batch["mode_id"][i]),
    }
    if labelled:
        row["true_label"] = batch["label"][i].item()
    row["predicted_label"] = int(outputs[i].argmax()) if kind == "classification" else float(outputs[i, 0])
    return row


def _load_mask(task: GroupTask, image_shape: tuple[int, ...]) -> tuple[Path | None, np.ndarray | None]:
    """The interpretation's mask, else the generated dataset's region mask; checked against the images."""
    import nibabel as nib

    path = task.interpretation.mask
    if path is None and task.dataset is not None:
        path = generated_mask(task.dataset)
        if path is not None and not Path(path).is_file():
            return None, None
    if path is None:
        return None, None
    if not Path(path).is_file():
        raise InputError(path, "interpretation mask not found", "mask")
    mask = np.asarray(nib.load(str(path)).get_fdata()) > 0
    mask = mask.reshape(mask.shape[:3]) if mask.ndim == 4 and mask.shape[3] == 1 else mask
    if tuple(mask.shape) != tuple(image_shape):
        raise InputError(
            path, f"mask shape {mask.shape} differs from the images' shape {tuple(image_shape)}", "mask"
        )
    return Path(path), mask


def mask_mass(saliency: np.ndarray, mask: np.ndarray, brain: np.ndarray | None = None) -> dict:
    """Fraction of the saliency mass (|map|) inside `mask`, the mask's share of the image volume and of
    the brain (`brain`: a boolean map, default the whole image), and the ratio of mass to brain share
    (1 = no better than spreading saliency evenly over the brain).

    >>> mask_mass(np.array([[[3.0, 1.0, 0.0]]]), np.array([[[True, False, False]]]), np.array([[[1, 1, 0]]]) > 0)
    {'mass_inside': 0.75, 'volume_share': 0.3333333333333333, 'brain_share': 0.5, 'ratio': 1.5}
    """
    weights = np.abs(np.asarray(saliency, dtype=np.float64))
    total = float(weights.sum())
    inside = float(weights[mask].sum()) / total if total > 0 else 0.0
    brain = np.ones_like(mask, dtype=bool) if brain is None else brain
    brain_share = float((mask & brain).sum()) / max(int(brain.sum()), 1)
    return {
        "mass_inside": inside,
        "volume_share": float(mask.mean()),
        "brain_share": brain_share,
        "ratio": inside / brain_share if brain_share > 0 else float("nan"),
    }


def brain_of(mean_input: np.ndarray) -> np.ndarray:
    """Brain voxels: the mean input image above 10% of its maximum (background is ~0 after min-max)."""
    image = np.asarray(mean_input, dtype=np.float64)
    return image > 0.1 * float(image.max())
