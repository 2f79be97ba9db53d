"""`save-tensors`: the input and output tensors of every item of a data group, and optionally NIfTIs.

    tensors/<sub>_<ses>_<mode>-<k>_input.pt, _output.pt      one pair per image (patch, roi, slice: per part;
                                                             tensors = false: none, as ClinicaDL's predict
                                                             --save_nifti/--save_latent_tensor alone)
    nifti_images/<sub>_<ses>_image_input.nii.gz, _output.nii.gz   (nifti = true; 3D, source header;
                                                                   part models: parts folded back)
    latent_tensors/<sub>_<ses>_<mode>-<k>_latent.pt    (latent = true: an autoencoder's code, a VAE's mean)

Each tensor is saved as its own clone, so a file never carries the storage of the whole batch. The
output NIfTI exists only when the output has the input's shape (reconstruction models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuroexec import atomic
from neuroexec.context import RunContext
from neuroexec.data.size_reduction import reduced_affine
from neuroexec.errors import InputError
from neuroexec.evaluation import autocast, make_loader
from neuroexec.extraction_mode import ExtractionMode
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


class _Niftis:
    """The NIfTIs of save-tensors: per image its input, and its output when the output is an image,
    in image space with the source image's header (a part model's parts folded back once all are in)."""

    def __init__(self, task: GroupTask, info, kernels, per_image: int, warn):
        self.task, self.info, self.per_image, self.warn = task, info, per_image, warn
        self.caps, self.uncropped = group_caps(task, info), uncropped_of(task, info)
        self.preprocessing = preprocessing_of(task, info)
        self.place = PartPlace(kernels, next(iter(self.caps.values())), self.uncropped)
        self.folder: _Folder | None = None
        self.warned, self.written = False, 0

    def _source(self, row: dict):
        return source_nifti(row, self.caps, self.uncropped, self.preprocessing)

    def add(self, row: dict, k: int, x: torch.Tensor, y: torch.Tensor, first: bool) -> None:
        """Item `k` of an image (`first`: its first item); writes the image's NIfTIs once complete."""
        same = tuple(y.shape) == tuple(x.shape)
        if not same and not self.warned:
            self.warn(f"outputs of shape {tuple(y.shape)} are not images: only input NIfTIs are written")
            self.warned = True
        mode, affine = self.info.extract_mode, None  # None: checked to be the source image's grid
        if not mode.has_parts:
            source = load_source(self._source(row))
            affine = source.affine  # the tensor's grid: the image's, or the network's reduced one
            if self.info.size_reduction_factor is not None:
                affine = reduced_affine(source.affine, self.info.size_reduction_factor)
            volume_in = x.reshape(x.shape[-3:]).numpy()
            volume_out = y.reshape(y.shape[-3:]).numpy() if same else None
        else:
            if first or self.folder is None:
                self.folder = _Folder(self.per_image)
            if not self.folder.add(k, x, y if same else None):
                return
            source = load_source(self._source(row))
            volume_in, volume_out = self.folder.fold(mode, source.shape[:3], self.place)
            self.folder = None
        t = self.task
        where = (t.split, t.metric, t.group.name, str(row["participant_id"]), str(row["session_id"]))
        save_map(t.maps.nifti_file(*where, "input"), volume_in, source, affine)
        self.written += 1
        if volume_out is not None:
            save_map(t.maps.nifti_file(*where, "output"), volume_out, source, affine)
            self.written += 1


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
    save = task.group.save_tensors
    nifti, latent = bool(save is not None and save.nifti), bool(save is not None and save.latent)
    tensors = save is None or save.tensors
    per_image = int(getattr(dataset, "n_parts", 1))
    niftis = _Niftis(task, info, settings.kernels, per_image, ctx.reporter.warn)
    maps, where = task.maps, (task.split, task.metric, task.group.name)
    loader = make_loader(dataset, settings)

    position, saved, latents = 0, 0, 0
    for batch in ctx.reporter.iterate(loader, total=len(loader), desc="save tensors"):
        images = batch["image"].to(device, torch.float32)
        with torch.no_grad(), autocast(settings):
            outputs = model(images).float()
            codes = latent_code(model, images, task.model.maps).float() if latent else None
        for i in range(images.shape[0]):
            p, s, k = str(batch["participant_id"][i]), str(batch["session_id"][i]), int(batch["mode_id"][i])
            x, y = images[i].detach().cpu().clone(), outputs[i].detach().cpu().clone()
            if tensors:
                atomic.save_torch(maps.tensor_file(*where, p, s, info.mode, k, "input"), x)
                atomic.save_torch(maps.tensor_file(*where, p, s, info.mode, k, "output"), y)
                saved += 2
            if codes is not None:
                atomic.save_torch(
                    maps.latent_file(*where, p, s, info.mode, k), codes[i].detach().cpu().clone()
                )
                latents += 1
            if nifti:
                niftis.add(records[position // per_image], k, x, y, first=position % per_image == 0)
            position += 1
    counts = {"images": len(records), "tensors": saved, "niftis": niftis.written}
    return {**counts, "latents": latents} if latent else counts


def latent_code(model: torch.nn.Module, images: torch.Tensor, maps: Path) -> torch.Tensor:
    """The latent tensors of a batch: an autoencoder's code (its encoder's output), a VAE's mean (no
    sampling), as ClinicaDL's `--save_latent_tensor` writes them; a network without an encoder (a
    U-Net's skips are no code) is refused, naming the MAPS."""
    encode = getattr(model, "encode", None)
    if callable(encode):
        code = encode(images)
        return code[0] if isinstance(code, tuple) else code
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, torch.nn.Module):
        return encoder(images)
    name = getattr(model, "architecture_name", type(model).__name__)
    raise InputError(
        maps, f"network {name} has no latent code (no encoder): remove save_tensors.latent for this model"
    )
