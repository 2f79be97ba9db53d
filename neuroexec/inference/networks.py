"""Multi-network models at inference: network k (`best-<m>/network-<k>_model.pth.tar`, neuroexec's
or ClinicaDL 1.6.1's layout) run on part k of every image, as ClinicaDL's `predict` does with
`cnn_index`. Predict writes the `<mode>`-level rows of all networks, one metrics row per network and
the image level by soft voting (`evaluation.write_results`); save-tensors writes each part's tensors
and folds the parts of an image back into image space; interpret (`inference/interpret.py`) sums each
network's maps on its own part.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from neuroexec import atomic, evaluation
from neuroexec.context import RunContext, StepSettings
from neuroexec.errors import InputError
from neuroexec.inference.fold import PartPlace, fold_parts
from neuroexec.inference.model_io import (
    group_caps,
    group_dataset,
    load_model,
    preprocessing_of,
    source_nifti,
    uncropped_of,
)
from neuroexec.inference.nifti_out import load_source, save_map
from neuroexec.inference.save_tensors import latent_code
from neuroexec.inference.task import GroupTask, group_participants
from neuroexec.losses import recorded_loss
from neuroexec.maps.info import MapsInfo
from neuroexec.maps.layout import MapsLayout


def network_count(info: MapsInfo, split: int, metric: str) -> int:
    """The networks of a multi-network model: maps.json's `num_networks`, else the network files of
    best-<metric>; InputError naming the folder when one of them is missing."""
    maps = MapsLayout(info.root)
    found = [k for k, _ in maps.best_network_models(split, metric)]
    recorded = info.raw.get("num_networks")
    count = recorded if isinstance(recorded, int) and recorded > 1 else len(found)
    missing = [k for k in range(count) if k not in found]
    if count < 1 or missing:
        names = (
            ", ".join(maps.best_model(split, metric, k).name for k in missing) or "network-0_model.pth.tar"
        )
        raise InputError(
            maps.best_dir(split, metric),
            f"multi-network model with {count or 'no'} networks: {names} not found (train the split, "
            "or copy the network files back)",
        )
    return count


def predict_networks(
    task: GroupTask, info: MapsInfo, frame: pd.DataFrame, label: str | None, settings: StepSettings
) -> tuple[pd.DataFrame, dict[int, float | None], int]:
    """(the `<mode>`-level rows of every network on its part, network by network as ClinicaDL appends
    them; each network's loss; the items predicted)."""
    use_labels = info.task == "reconstruction" or label is not None
    frames, losses, items = [], {}, 0
    for k in range(network_count(info, task.split, task.metric)):
        dataset = group_dataset(task, info, frame, label, part_index=k)
        model, _ = load_model(
            task.model.maps, task.split, task.metric, settings.device, k, dataset.input_size
        )
        predictions, loss = evaluation.predict_frames(
            model, dataset, info.task, settings, info.label_code, use_labels=use_labels,
            loss=recorded_loss(info.task, info.raw.get("loss")),
            model_file=task.maps.best_model(task.split, task.metric, k),
        )  # fmt: skip
        frames.append(predictions)
        losses[evaluation.part_id(predictions, info.mode, k)] = loss
        items += len(dataset)
    return pd.concat(frames, ignore_index=True), losses, items


def save_network_tensors(task: GroupTask, ctx: RunContext) -> dict:
    """save-tensors of a multi-network model: for each image, each network's input and output tensors
    on its part (`<sub>_<ses>_<mode>-<k>_input.pt` / `_output.pt`), with `latent` each network's code of
    its part (`latent_tensors/<sub>_<ses>_<mode>-<k>_latent.pt`, as ClinicaDL 1.6.1's predict writes
    them network by network), and with `nifti` the parts folded back into image space with the source
    affine. Returns the step's record summary."""
    settings = ctx.with_settings(task.group.compute).settings
    info = task.info()
    count = network_count(info, task.split, task.metric)
    frame = group_participants(task)
    datasets = [group_dataset(task, info, frame, None, part_index=k) for k in range(count)]
    models = [
        load_model(task.model.maps, task.split, task.metric, settings.device, k, datasets[k].input_size)[0]
        for k in range(count)
    ]
    save = task.group.save_tensors
    nifti, latent = bool(save is not None and save.nifti), bool(save is not None and save.latent)
    tensors = save is None or save.tensors
    caps, uncropped = group_caps(task, info), uncropped_of(task, info)
    preprocessing = preprocessing_of(task, info)
    place = PartPlace(settings.kernels, next(iter(caps.values())), uncropped)
    where = (task.split, task.metric, task.group.name)
    saved = niftis = latents = 0
    records = frame.to_dict("records")
    for i, row in enumerate(ctx.reporter.iterate(records, total=len(records), desc="save tensors")):
        parts = [
            _part(models[k], datasets[k][i], settings, task.model.maps if latent else None)
            for k in range(count)
        ]
        for k_id, p, s, x, y, code in parts:
            if tensors:
                atomic.save_torch(task.maps.tensor_file(*where, p, s, info.mode, k_id, "input"), x)
                atomic.save_torch(task.maps.tensor_file(*where, p, s, info.mode, k_id, "output"), y)
                saved += 2
            if code is not None:
                atomic.save_torch(task.maps.latent_file(*where, p, s, info.mode, k_id), code)
                latents += 1
        if not nifti:
            continue
        source = load_source(source_nifti(row, caps, uncropped, preprocessing))
        p, s = parts[0][1], parts[0][2]
        folded = {"input": {part[0]: part[3] for part in parts}}
        if all(tuple(part[3].shape) == tuple(part[4].shape) for part in parts):  # reconstructions
            folded["output"] = {part[0]: part[4] for part in parts}
        for kind, pieces in folded.items():
            volume = fold_parts(info.extract_mode, pieces, source.shape[:3], place)
            save_map(task.maps.nifti_file(*where, p, s, kind), volume, source)
            niftis += 1
    counts = {"images": len(records), "networks": count, "tensors": saved, "niftis": niftis}
    return {**counts, "latents": latents} if latent else counts


def _part(
    model: torch.nn.Module, item: dict, settings: StepSettings, latent_of: Path | None
) -> tuple[int, str, str, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(part index, participant, session, input, output, latent code or None) of one item through its
    network; the code when `latent_of` (the MAPS, named if the network has no encoder) is given."""
    x = item["image"].unsqueeze(0).to(settings.device, torch.float32)
    with torch.no_grad(), evaluation.autocast(settings):
        y = model(x).float()
        code = latent_code(model, x, latent_of)[0].float().detach().cpu().clone() if latent_of else None
    pid, sid = str(item["participant_id"]), str(item["session_id"])
    return int(item["mode_id"]), pid, sid, x[0].detach().cpu().clone(), y[0].detach().cpu().clone(), code
