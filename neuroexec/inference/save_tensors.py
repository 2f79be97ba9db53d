"""`save-tensors`: the input and output tensors of every item of a data group, and optionally NIfTIs.

    tensors/<sub>_<ses>_<mode>-<k>_input.pt, _output.pt      one pair per image (patch, roi, slice: per part)
    nifti_images/<sub>_<ses>_image_input.nii.gz, _output.nii.gz   (nifti = true; 3D, source affine;
                                                                   part models: parts folded back)

Each tensor is saved as its own clone, so a file never carries the storage of the whole batch. The
output NIfTI exists only when the output has the input's shape (reconstruction models).
"""

from __future__ import annotations

import numpy as np
import torch

from neuroexec import atomic
from neuroexec.context import RunContext
from neuroexec.evaluation import autocast, make_loader
from neuroexec.extraction_mode import ExtractionMode
from neuroexec.inference.fold import PartPlace, fold_parts
from neuroexec.inference.model_io import (
    group_caps,
    group_dataset,
    load_model,
    nifti_geometry,
    preprocessing_of,
    source_nifti,
    uncropped_of,
)
from neuroexec.inference.task import GroupTask, group_participants


class _Folder:
    """Collects the parts of one image (they come in order, possibly across batches) and hands the
    whole image back once all `n` are in."""

    def __init__(self, n: int):
        self.n = n
        self.inputs: dict[int, torch.Tensor] = {}
        self.outputs: dict[int, torch.Tensor] = {}

    def add(self, k: int, x: torch.Tensor, y: torch.Tensor | None) -> bool:
        self.inputs[k] = x
        if y is not None:
            self.outputs[k] = y
        return len(self.inputs) == self.n

    def fold(
        self, mode: ExtractionMode, image_shape, place: PartPlace
    ) -> tuple[np.ndarray, np.ndarray | None]:
        inputs = fold_parts(mode, self.inputs, image_shape, place)
        complete = len(self.outputs) == self.n
        return inputs, (fold_parts(mode, self.outputs, image_shape, place) if complete else None)


def save_group_tensors(task: GroupTask, ctx: RunContext) -> dict:
    """Write the group's input/output tensors (and NIfTIs with `save_tensors.nifti`).

    It needs a trained model in its MAPS, so the save-tensors step is its example;
    tests/inference/test_save_tensors.py runs it on a tiny MAPS. It returns the step's record summary,
    such as {'images': 8, 'tensors': 16, 'niftis': 16}.
    """

    settings = ctx.with_settings(task.group.compute).settings  # resolved once for the step
    device = settings.device
    model, info = load_model(task.model.maps, task.split, task.metric, device)
    frame = group_participants(task)
    records = frame.to_dict("records")
    dataset = group_dataset(task, info, frame, None)
    nifti = bool(task.group.save_tensors is not None and task.group.save_tensors.nifti)
    caps, uncropped, pre = group_caps(task, info), uncropped_of(task, info), preprocessing_of(task, info)
    mode = info.extract_mode
    per_image = int(getattr(dataset, "n_parts", 1))
    place = PartPlace(settings.kernels, next(iter(caps.values())), uncropped)
    maps, where = task.maps, (task.split, task.metric, task.group.name)
    loader = make_loader(dataset, settings)

    position, saved, niftis = 0, 0, 0
    folder: _Folder | None = None
    warned = False
    for batch in ctx.reporter.iterate(loader, total=len(loader), desc="save tensors"):
        images = batch["image"].to(device, torch.float32)
        with torch.no_grad(), autocast(settings):
            outputs = model(images).float()
        for i in range(images.shape[0]):
            p, s, k = str(batch["participant_id"][i]), str(batch["session_id"][i]), int(batch["mode_id"][i])
            x, y = images[i].detach().cpu().clone(), outputs[i].detach().cpu().clone()
            atomic.save_torch(maps.tensor_file(*where, p, s, info.mode, k, "input"), x)
            atomic.save_torch(maps.tensor_file(*where, p, s, info.mode, k, "output"), y)
            saved += 2
            row = records[position // per_image]
            position += 1
            if not nifti:
                continue
            same = tuple(y.shape) == tuple(x.shape)
            if not same and not warned:
                ctx.reporter.warn(
                    f"outputs of shape {tuple(y.shape)} are not images: only input NIfTIs are written"
                )
                warned = True
            if not mode.has_parts:
                affine, _ = nifti_geometry(source_nifti(row, caps, uncropped, pre))
                volume_in = x.reshape(x.shape[-3:]).numpy()
                volume_out = y.reshape(y.shape[-3:]).numpy() if same else None
            else:
                first = position % per_image == 1 or per_image == 1
                folder = folder if folder is not None and not first else _Folder(per_image)
                if not folder.add(k, x, y if same else None):
                    continue
                affine, image_shape = nifti_geometry(source_nifti(row, caps, uncropped, pre))
                volume_in, volume_out = folder.fold(mode, image_shape, place)
                folder = None
            atomic.save_nifti(maps.nifti_file(*where, p, s, "input"), volume_in, affine)
            niftis += 1
            if volume_out is not None:
                atomic.save_nifti(maps.nifti_file(*where, p, s, "output"), volume_out, affine)
                niftis += 1
    return {"images": len(records), "tensors": saved, "niftis": niftis}
