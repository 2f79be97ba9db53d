"""The files of one interpretation (`interpret-<name>/`, layout in inference/interpret.py): the mean
and std maps per mode index (.pt and NIfTI), the individual maps (.pt, and NIfTI with `save_nifti`),
the whole-image mean map of a part model, and the figures. Every NIfTI carries the source image's
header (inference/nifti_out.py): its qform/sform codes and units, the affine of the map's own grid
(a part's, or the network's reduced grid)."""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch

from neuroexec import atomic
from neuroexec.inference.figure import FigureFacts, save_saliency_figure, save_slice_map
from neuroexec.inference.fold import PartPlace, fold_parts, part_affine, part_volume
from neuroexec.inference.nifti_out import save_map
from neuroexec.inference.task import GroupTask
from neuroexec.maps.info import MapsInfo


@dataclass(frozen=True)
class MapFiles:
    """Writes an interpretation's maps. `affine` and `image_shape` are the maps' grid: the source
    image's, or the network's reduced one (size reduction); `source` gives the header."""

    task: GroupTask
    info: MapsInfo
    source: nib.Nifti1Image
    affine: np.ndarray
    image_shape: tuple[int, ...]
    place: PartPlace

    @property
    def where(self) -> tuple:
        t = self.task
        return (t.split, t.metric, t.group.name, t.interpretation.name)

    def individual(self, participant: str, session: str, k: int, saliency: torch.Tensor) -> None:
        """One item's map (its part `k`): the .pt, and with `save_nifti` its NIfTI beside it."""
        maps, mode = self.task.maps, self.info.mode
        atomic.save_torch(
            maps.individual_map(*self.where, participant, session, mode, k), saliency.detach().cpu().clone()
        )
        if self.task.interpretation.save_nifti:
            self._nifti(maps.individual_nifti(*self.where, participant, session, mode, k), saliency, k)

    def _nifti(self, path, part: torch.Tensor, k: int) -> None:
        mode = self.info.extract_mode
        grid = part_affine(mode, self.affine, self.image_shape, k, self.place)
        save_map(path, part_volume(mode, part.detach().float().cpu()), self.source, grid)

    def means(self, maps: dict, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """Write the mean/std maps (.pt and NIfTI) of every mode index (`maps`, `inputs`: the running
        SaliencyStates); return the whole-image mean map and mean input (3D), folded back from the
        parts for a part model."""
        layout, mode, name = self.task.maps, self.info.extract_mode, self.info.mode
        for k, state in sorted(maps.items()):
            mean, std = state.mean().cpu(), state.std().cpu()
            atomic.save_torch(layout.mean_map(*self.where, name, k), mean.clone())
            atomic.save_torch(layout.std_map(*self.where, name, k), std.clone())
            self._nifti(layout.mean_map(*self.where, name, k, "nii.gz"), mean, k)
            self._nifti(layout.std_map(*self.where, name, k, "nii.gz"), std, k)
        if not mode.has_parts:
            return _volume(maps[0].mean()), _volume(inputs[0].mean())
        whole_map = fold_parts(mode, {k: s.mean() for k, s in maps.items()}, self.image_shape, self.place)
        whole_input = fold_parts(mode, {k: s.mean() for k, s in inputs.items()}, self.image_shape, self.place)
        save_map(layout.mean_map(*self.where, "image", 0, "nii.gz"), whole_map, self.source, self.affine)
        return whole_map, whole_input

    def figure(self, whole_map: np.ndarray, whole_input: np.ndarray, title: str) -> FigureFacts:
        """The PNG of the whole-image mean map over the group's mean input image, or over the group's
        first CAPS image for a region or slice model (its mean input is black outside its parts)."""
        interp, mode = self.task.interpretation, self.info.extract_mode
        if mode.is_roi or mode.is_slice:
            whole_input = np.asarray(self.source.dataobj, dtype=np.float32).reshape(self.image_shape)
        label = f"mean {'|' if interp.absolute else ''}{interp.method}{'|' if interp.absolute else ''}"
        if interp.normalize == "max":
            label += " (each map / its max)"
        return save_saliency_figure(
            self.task.maps.mean_map_figure(*self.where, "image", 0),
            whole_map, whole_input, self.affine, title, label, interp.vmax,
        )  # fmt: skip

    def slice_figures(self, maps: dict, inputs: dict) -> None:
        """A slice model's mean map of each slice index, drawn as a 2D picture over the mean input slice."""
        for k, state in sorted(maps.items()):
            plane, background = (s.mean().detach().cpu() for s in (state, inputs[k]))
            save_slice_map(
                self.task.maps.mean_map_figure(*self.where, "slice", k),
                plane.reshape(-1, *plane.shape[-2:])[0].numpy(),  # the first channel, as in its NIfTI
                background.reshape(-1, *background.shape[-2:])[0].numpy(),
                self.task.interpretation.vmax,
            )


def _volume(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().reshape(t.shape[-3:]).numpy()
