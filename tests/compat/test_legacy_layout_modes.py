"""The older interpret's map of a slice or ROI model: the parts' maps the engine wrote, placed back into
the image grid (slices at ClinicaDL's slice index, regions inside their mask), or one slice's 2D map as
map.jpg."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from neuroexec.compat.legacy_layout import LegacyTarget, _image_map, _map_files, _write_map
from neuroexec.data.caps import CapsLayout
from neuroexec.data.participants import SINGLE_COHORT
from neuroexec.maps.info import MapsInfo
from neuroexec.maps.layout import MapsLayout

ROW = {"participant_id": "sub-0000", "session_id": "ses-M000"}


def target(tmp_path: Path, caps: Path, **info) -> LegacyTarget:
    maps_info = MapsInfo(root=tmp_path / "model", task="classification", architecture="Conv4_FC3", label=None,
                         label_code=None, output_size=2, input_size=None, legacy=True, **info)  # fmt: skip
    return LegacyTarget(model_path=tmp_path / "model", info=maps_info, group="g", name="n", split=0,
                        selection="best_loss", metric="loss", level="group", caps={SINGLE_COHORT: caps},
                        uncropped=False, template=None, vmax=0.5, commandline={})  # fmt: skip


def write_mean_maps(t: LegacyTarget, parts: dict[int, torch.Tensor]) -> None:
    layout = MapsLayout(t.model_path)
    for k, value in parts.items():
        path = layout.mean_map(t.split, t.metric, t.group, t.name, t.info.mode, k)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(value, path)


def image_shape(caps: Path) -> tuple[int, ...]:
    return nib.load(CapsLayout(caps).t1_linear_nifti("sub-0000", "ses-M000")).shape


def test_slice_maps_go_back_at_their_slice_index(tmp_path, tiny_data):
    caps = tiny_data["caps"]
    x, y, z = image_shape(caps)
    t = target(tmp_path, caps, mode="slice", slice_direction=2, slice_mode="single", discarded_slices=(3, 3))
    write_mean_maps(t, {k: torch.full((1, x, y), float(k)) for k in range(3, z - 3)})
    files = _map_files(t)
    assert sorted(files) == list(range(3, z - 3))  # ClinicaDL's slice index, not 0..n-1
    volume = _image_map(t, files, ROW)
    assert volume.shape == (x, y, z)
    assert np.all(volume[:, :, 5] == 5.0) and np.all(volume[:, :, :3] == 0.0)


def test_a_single_slice_map_is_written_as_jpg(tmp_path, tiny_data):
    caps = tiny_data["caps"]
    x, y, _ = image_shape(caps)
    t = target(tmp_path, caps, mode="slice", slice_direction=2, slice_mode="rgb", discarded_slices=(0, 0))
    write_mean_maps(t, {7: torch.rand(3, x, y)})
    array = _image_map(t, _map_files(t), ROW)
    assert array.shape == (x, y)
    out = tmp_path / "out"
    out.mkdir()
    _write_map(lambda ext: out / f"map.{ext}", array, lambda: np.eye(4), 0.5)
    assert (out / "map.jpg").is_file() and not (out / "map.nii.gz").exists()


def test_roi_maps_go_back_at_their_masks_box(tmp_path, tiny_data):
    caps = tiny_data["caps"]
    shape = image_shape(caps)
    mask = next((caps / "masks" / "tpl-MNI152NLin2009cSym").glob("*desc-Crop*leftHippocampus*"))
    inside = np.argwhere(np.asarray(nib.load(mask).dataobj) > 0)
    low, high = inside.min(axis=0), inside.max(axis=0) + 1
    box = tuple(slice(a, b) for a, b in zip(low, high))
    t = target(tmp_path, caps, mode="roi", roi_list=("leftHippocampus",), uncropped_roi=False)
    write_mean_maps(t, {0: torch.ones(1, *(high - low))})
    volume = _image_map(t, _map_files(t), ROW)
    assert volume.shape == shape and volume[box].min() == 1.0
    volume[box] = 0.0
    assert volume.max() == 0.0  # nothing outside the mask's bounding box
